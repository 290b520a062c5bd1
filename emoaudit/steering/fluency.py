"""Loops a reader sees that distinct-2 and back-to-back repeats miss: a phrase said again further on.

Steering at the strengths where it starts to work often writes a phrase, a few words of something else,
then the same phrase ("a small piece of my mother, where I was left, a small piece of my mother, where I
was left"; "the dull, grey horizon was a dull, grey horizon"), or one content word over and over ("a
\\"furious\\" of winds that were \\"furious\\" and \\"furious\\""). Such text keeps distinct-2 high and its
repeats are not adjacent, so the shape rules of `regimes` call it coherent; read one by one, 10 of 30
surgical trials of smollm2-135m (standard) were broken this way. Both measures are of words (lowercased
letters and digits), so they do not depend on the model's tokenizer; their thresholds are tuned on the
development half of the labelled set tests/data/coherence.jsonl (docs/coherence.md).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

_WORD = re.compile(r"[^\W_]+")
# Words that recur in any fluent English text; a repeated one is no sign of a loop.
_FUNCTION_WORDS = frozenset(
    "a an the and or but of to in on at by for with from as is was were be been are it its this that these those "
    "he she they we you i me him her them us my his their our your not no so if then than there here what which "
    "who when where how all one had has have do did would could will can just into out up about over".split()
)


@dataclass(frozen=True)
class Fluency:
    echo_share: float  # share of words inside a word n-gram that already occurred earlier in the text
    word_repeats: int  # recurrences of one content word within WINDOW words, beyond its first (the most of any)


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def echo_share(tokens: list[str], n: int = 3) -> float:
    """Share of `tokens` covered by an n-gram that started earlier in the text (0 for texts under 2n)."""
    if len(tokens) < 2 * n:
        return 0.0
    seen: set[tuple[str, ...]] = set()
    covered = [False] * len(tokens)
    for i in range(len(tokens) - n + 1):
        gram = tuple(tokens[i : i + n])
        if gram in seen:
            covered[i : i + n] = [True] * n
        seen.add(gram)
    return sum(covered) / len(tokens)


def word_repeats(tokens: list[str], window: int = 16) -> int:
    """How often one content word (not a function word, over 3 letters) recurs after its first within any
    `window` consecutive words: a name said three times in a paragraph is prose, in one sentence a loop."""
    most = 0
    for start in range(max(len(tokens) - window, 0) + 1):
        counts = Counter(t for t in tokens[start : start + window] if len(t) > 3 and t not in _FUNCTION_WORDS)
        most = max(most, max(counts.values(), default=1) - 1)
    return most


def fluency(text: str, n: int = 3) -> Fluency:
    tokens = words(text)
    return Fluency(echo_share(tokens, n), word_repeats(tokens))
