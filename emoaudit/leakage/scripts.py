"""Scripts and languages of text: the share of letters per Unicode script, and langdetect's verdict."""

from __future__ import annotations

import os
from collections import Counter

from langdetect import DetectorFactory, LangDetectException, detect_langs
from langdetect.detector_factory import PROFILES_DIRECTORY

# The languages langdetect tells apart, by ISO 639-1 code without its regional variants (zh-cn, zh-tw: zh).
LANGUAGES = frozenset(name.split("-")[0] for name in os.listdir(PROFILES_DIRECTORY))

# (first, last, script) code point ranges of the scripts worth telling apart; letters elsewhere
# count as "Other", and non-letters (digits, punctuation, emoji, spaces) are not counted at all.
SCRIPT_RANGES: tuple[tuple[int, int, str], ...] = (
    (0x0041, 0x024F, "Latin"),
    (0x1E00, 0x1EFF, "Latin"),
    (0x0370, 0x03FF, "Greek"),
    (0x0400, 0x052F, "Cyrillic"),
    (0x0590, 0x05FF, "Hebrew"),
    (0x0600, 0x06FF, "Arabic"),
    (0x0750, 0x077F, "Arabic"),
    (0x0900, 0x097F, "Devanagari"),
    (0x0E00, 0x0E7F, "Thai"),
    (0x1100, 0x11FF, "Hangul"),
    (0x3130, 0x318F, "Hangul"),
    (0xAC00, 0xD7AF, "Hangul"),
    (0x3040, 0x309F, "Hiragana"),
    (0x30A0, 0x30FF, "Katakana"),
    (0x3400, 0x4DBF, "Han"),
    (0x4E00, 0x9FFF, "Han"),
    (0xF900, 0xFAFF, "Han"),
    (0x20000, 0x2FA1F, "Han"),
)


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
