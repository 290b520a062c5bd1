"""Scripts and languages of text: the share of letters per Unicode script, and langdetect's verdict."""

from __future__ import annotations

from collections import Counter

from langdetect import DetectorFactory, LangDetectException, detect_langs

from emoaudit.spec.scripts import SCRIPT_RANGES


def script_of(char: str) -> str | None:
    """The script of a letter, or None for anything that is not a letter."""
    if not char.isalpha():
        return None
    point = ord(char)
    for first, last, script in SCRIPT_RANGES:
        if first <= point <= last:
            return script
    return "Other"


def script_shares(text: str) -> dict[str, float]:
    """Share of the text's letters in each script (empty for a text without letters)."""
    counts = Counter(s for s in map(script_of, text) if s is not None)
    total = sum(counts.values())
    return {script: n / total for script, n in counts.most_common()} if total else {}


def foreign_share(text: str, expected: str = "Latin") -> float:
    """Share of the text's letters outside the expected script (0 for a text without letters)."""
    shares = script_shares(text)
    return 1.0 - shares.get(expected, 0.0) if shares else 0.0


def foreign_spans(text: str, expected: str = "Latin", context: int = 12) -> list[str]:
    """Each run of foreign-script letters (with the punctuation inside it), with some context, as evidence."""

    def foreign(i: int) -> bool:
        return script_of(text[i]) not in (None, expected)

    spans: list[str] = []
    i = 0
    while i < len(text):
        if not foreign(i):
            i += 1
            continue
        end = j = i + 1
        while j < len(text) and (foreign(j) or (script_of(text[j]) is None and not text[j].isspace())):
            end = j + 1 if foreign(j) else end
            j += 1
        spans.append(text[max(0, i - context) : min(len(text), end + context)])
        i = j
    return list(dict.fromkeys(spans))


def detect_language(text: str, seed: int = 0, *, min_letters: int = 1) -> tuple[str, float]:
    """(language code, probability) by langdetect, seeded so that results repeat; ("unknown", 0) when it
    cannot tell, or when the text has fewer than `min_letters` letters.

    langdetect names a language for any input, with confidence: emoji and U+FFFD come out "bn" at 1.00,
    a lone U+FFFD "hi". A text without letters has no language; a few letters are too few to tell one.
    """
    if sum(c.isalpha() for c in text) < max(min_letters, 1):
        return "unknown", 0.0
    DetectorFactory.seed = seed  # langdetect's only way to make its sampling repeatable
    try:
        best = detect_langs(text)[0]
    except LangDetectException:
        return "unknown", 0.0
    return str(best.lang), float(best.prob)


def token_script(token: str) -> str | None:
    """The dominant script of a token's letters, or None for a token without letters."""
    shares = script_shares(token)
    return max(shares, key=shares.__getitem__) if shares else None
