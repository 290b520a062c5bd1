"""The scripts and languages a specification may name: Unicode script ranges, and langdetect's languages."""

from __future__ import annotations

import os

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
