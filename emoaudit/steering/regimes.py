"""What steering did to a text: degradation measures and the regime each trial falls in.

* surgical: coherent (perplexity ratio and repetition within bounds) and on target: the judge's score of
  the target rose by the margin, ranks among the k largest rises of the emotions, and exceeds what
  random-direction controls of the same size produce (see `steering.specificity`);
* repetitive_collapse: the text loops (few distinct n-grams, one n-gram repeated back to back, a phrase said
  again further on, or one content word over and over: `steering.fluency`);
* explosive: the text degrades into improbable tokens (perplexity ratio far above the unsteered text);
* no_effect: coherent, but the judge does not see the target emotion rise specifically (also the regime
  of every coherent random-direction control, which has no target).
Thresholds live in the audit specification and are justified by the measurements in its comments.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

from emoaudit.results.steering import Regime, Thresholds
from emoaudit.steering.fluency import Fluency


@dataclass(frozen=True)
class TextShape:
    tokens: int
    distinct2: float
    repeat_share: float


def distinct_n(tokens: Sequence[Hashable], n: int = 2) -> float:
    """Distinct n-grams over all n-grams; 1.0 for texts too short to have two."""
    grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    return len(set(grams)) / len(grams) if len(grams) > 1 else 1.0


def repeat_share(tokens: Sequence[Hashable], max_n: int = 8) -> float:
    """Share of tokens covered by runs where an n-gram (n ≤ max_n) repeats back to back at least twice."""
    covered = [False] * len(tokens)
    for n in range(1, max_n + 1):
        i = 0
        while i + 2 * n <= len(tokens):
            j = i
            while j + 2 * n <= len(tokens) and tokens[j : j + n] == tokens[j + n : j + 2 * n]:
                j += n
            if j > i:
                for k in range(i, j + n):
                    covered[k] = True
                i = j + n
            else:
                i += 1
    return sum(covered) / len(tokens) if tokens else 0.0


def shape(tokens: Sequence[Hashable]) -> TextShape:
    return TextShape(len(tokens), distinct_n(tokens, 2), repeat_share(tokens))


def perplexity_ratio(steered_nll: float | None, unsteered_nll: float | None) -> float | None:
    """exp(mean NLL of the steered text − mean NLL of the unsteered text), both under the unsteered model."""
    if steered_nll is None or unsteered_nll is None:
        return None
    return math.exp(steered_nll - unsteered_nll)


def classify(
    text: TextShape, ppl_ratio: float | None, on_target: bool, t: Thresholds, loops: Fluency | None = None
) -> Regime:
    """The trial's regime; `on_target` is `specificity.on_target` for the trial's emotion (False for a control);
    `loops` the text's `fluency` measures (None: not checked)."""
    if text.tokens >= t.min_tokens and (
        text.distinct2 < t.distinct2_min or text.repeat_share > t.repeat_share_max or _loops(loops, t)
    ):
        return "repetitive_collapse"
    if ppl_ratio is not None and ppl_ratio > t.perplexity_ratio_max:
        return "explosive"
    return "surgical" if on_target else "no_effect"


def _loops(loops: Fluency | None, t: Thresholds) -> bool:
    if loops is None:
        return False
    echo = t.echo_share_max is not None and loops.echo_share > t.echo_share_max
    return echo or (t.word_repeats_max is not None and loops.word_repeats > t.word_repeats_max)
