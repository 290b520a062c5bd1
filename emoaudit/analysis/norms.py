"""Human valence and arousal norms, supplied by the user (`--norms FILE`), against the vectors' geometry.

The published norms are licensed for research or non-commercial use only, so emoaudit ships none. Two
layouts are read, told apart by the first line:

- NRC VAD (Mohammad 2018; v2.1 2025): tab-separated `word, valence, arousal, dominance`, one word (or
  phrase) a line; the published files start with a header line (`Word	Valence	Arousal	Dominance`, or
  `term	valence	arousal	dominance` in v2), which is optional here. Scores 0..1 (v1) or -1..1 (v2).
- Warriner, Kuperman & Brysbaert (2013): the CSV with columns `Word`, `V.Mean.Sum`, `A.Mean.Sum`, ...
  (and an unnamed row-number column first in the published file). Scores 1..9.

The statistic is Spearman's rho over the audit's emotion words, between each rating and the vectors'
scores on each of their first two principal components (fitted on all the audit's vectors at the emotion
layer), with a 95% interval from Fisher's z with the Bonett & Wright (2000) variance (1 + rho²/2)/(n - 3).
Ranks, because the two layouts rate on different scales (0..1, -1..1, 1..9) and twenty points are few
enough for one outlying emotion to carry Pearson's r; Fisher's z rather than a bootstrap, because with
about twenty pairs a percentile bootstrap of a correlation covers less than it claims, and a closed form
needs no seed. The components are fixed (the first two), not the best of several, so the interval is not
widened by a choice made on the same data.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats

from emoaudit.analysis.geometry import centred_pc_scores
from emoaudit.errors import EmoauditError
from emoaudit.results.norms import MethodNorms, NormCorrelation, Norms
from emoaudit.storage import sha256_file

# Fewest of the audit's emotions the file must rate: Fisher's z needs n > 3 (at n = 4 the interval spans
# nearly all of -1..1, and says so).
MIN_MATCHED = 4
COMPONENTS = 2
STATISTIC = "Spearman's rho, 95% interval by Fisher's z with the Bonett-Wright variance (1 + rho^2/2)/(n - 3)"
_WARRINER = ("Word", "V.Mean.Sum", "A.Mean.Sum")


@dataclass(frozen=True)
class Lexicon:
    """Ratings by lower-cased word: (valence, arousal) in the file's own units."""

    file: str
    sha256: str
    layout: str  # "nrc-vad" or "warriner"
    ratings: dict[str, tuple[float, float]]


def read_norms(path: Path) -> Lexicon:
    """The lexicon in `path`, either layout. Raises EmoauditError (one line, naming the file and the line)
    for a missing or unreadable file, a layout that is neither, a malformed line or a word rated twice
    with different values."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise EmoauditError(f"--norms {path}: no such file") from None
    except (IsADirectoryError, PermissionError) as exc:
        raise EmoauditError(f"--norms {path}: cannot read it ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise EmoauditError(f"--norms {path}: not UTF-8 text (byte {exc.start})") from None
    first = next((line for line in text.splitlines() if line.strip()), "")
    if "\t" in first:
        layout, rows = "nrc-vad", _nrc_rows(path, text)
    elif all(column in first for column in _WARRINER):
        layout, rows = "warriner", _warriner_rows(path, text)
    else:
        raise EmoauditError(
            f"--norms {path}: neither the NRC VAD layout (word, valence, arousal, dominance, tab-separated) "
            f"nor the Warriner et al. CSV (columns {', '.join(_WARRINER)})"
        )
    ratings: dict[str, tuple[float, float]] = {}
    for number, word, valence, arousal in rows:
        key = word.strip().lower()
        if ratings.get(key, (valence, arousal)) != (valence, arousal):
            raise EmoauditError(f"--norms {path}: line {number}: {word!r} is rated twice, with different values")
        ratings[key] = (valence, arousal)
    if not ratings:
        raise EmoauditError(f"--norms {path}: no rated word in it")
    return Lexicon(str(path), sha256_file(path), layout, ratings)


def _number(path: Path, number: int, field: str, value: str) -> float:
    try:
        parsed = float(value)
    except ValueError:
        parsed = math.nan
    if not math.isfinite(parsed):
        raise EmoauditError(f"--norms {path}: line {number}: {field} {value.strip()!r} is not a number")
    return parsed


def _nrc_rows(path: Path, text: str) -> list[tuple[int, str, float, float]]:
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.rstrip("\r").split("\t")
        if len(fields) != 4 or not fields[0].strip():
            raise EmoauditError(
                f"--norms {path}: line {number}: {len(fields)} tab-separated fields, not the NRC VAD layout's 4 "
                "(word, valence, arousal, dominance)"
            )
        if number == 1 and fields[1].strip().lower() == "valence":
            continue  # the published header, Word/term Valence Arousal Dominance
        valence = _number(path, number, "valence", fields[1])
        rows.append((number, fields[0], valence, _number(path, number, "arousal", fields[2])))
        _number(path, number, "dominance", fields[3])
    return rows


def _warriner_rows(path: Path, text: str) -> list[tuple[int, str, float, float]]:
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in _WARRINER if c not in (reader.fieldnames or [])]
    if missing:
        raise EmoauditError(f"--norms {path}: line 1: the Warriner et al. header lacks {', '.join(missing)}")
    rows = []
    for record in reader:
        number = reader.line_num
        word = record.get("Word") or ""
        if not word.strip():
            raise EmoauditError(f"--norms {path}: line {number}: no Word")
        valence = _number(path, number, "V.Mean.Sum", record.get("V.Mean.Sum") or "")
        rows.append((number, word, valence, _number(path, number, "A.Mean.Sum", record.get("A.Mean.Sum") or "")))
    return rows


def check_coverage(lexicon: Lexicon, emotions: list[str]) -> None:
    """EmoauditError when the lexicon rates fewer than MIN_MATCHED of the audit's emotion words."""
    matched = [e for e in emotions if e.lower() in lexicon.ratings]
    if len(matched) < MIN_MATCHED:
        raise EmoauditError(
            f"--norms {lexicon.file}: rates {len(matched)} of the audit's {len(emotions)} emotion words "
            f"({', '.join(matched) or 'none'}); a correlation needs at least {MIN_MATCHED}"
        )


def spearman_interval(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float, float]:
    """(rho, low, high, p) for paired samples of n >= 4: the 95% Fisher-z interval with the Bonett-Wright
    variance (Bonett & Wright 2000, Psychometrika 65:23-28), and scipy's two-sided p-value."""
    n = len(x)
    result = stats.spearmanr(x, y)
    rho = float(result.statistic) if np.isfinite(result.statistic) else 0.0
    p = float(result.pvalue) if np.isfinite(result.pvalue) else 1.0
    z = math.atanh(max(min(rho, 0.999999), -0.999999))
    half = stats.norm.ppf(0.975) * math.sqrt((1 + rho**2 / 2) / (n - 3))
    return rho, math.tanh(z - half), math.tanh(z + half), p


def norms_alignment(lexicon: Lexicon, emotions: list[str], vectors: dict[str, np.ndarray], layer: int) -> Norms:
    """Each method's vectors [emotions, hidden] at `layer`: their first two principal components (fitted on
    all the emotions) against the lexicon's valence and arousal, over the emotions it rates."""
    check_coverage(lexicon, emotions)
    rows = [i for i, e in enumerate(emotions) if e.lower() in lexicon.ratings]
    rated = np.array([lexicon.ratings[emotions[i].lower()] for i in rows])
    methods = {}
    for method, v in vectors.items():
        scores, explained = centred_pc_scores(v - v.mean(axis=0), COMPONENTS)
        correlations = [
            _correlation(k + 1, rating, scores[rows, k], rated[:, j])
            for k in range(scores.shape[1])
            for j, rating in enumerate(("valence", "arousal"))
        ]
        methods[method] = MethodNorms([round(float(e), 4) for e in explained[:COMPONENTS]], correlations)
    return Norms(
        file=lexicon.file,
        sha256=lexicon.sha256,
        layout=lexicon.layout,
        entries=len(lexicon.ratings),
        matched=[emotions[i] for i in rows],
        missing=[e for e in emotions if e.lower() not in lexicon.ratings],
        layer=layer,
        statistic=STATISTIC,
        methods=methods,
    )


def _correlation(component: int, rating: str, scores: np.ndarray, rated: np.ndarray) -> NormCorrelation:
    rho, low, high, p = spearman_interval(scores, rated)
    return NormCorrelation(component, rating, round(rho, 4), round(low, 4), round(high, 4), p)
