"""The coherence rule against a reader: precision and recall of "coherent" on the labelled set.

tests/data/coherence.jsonl holds continuations from real scans (steered, random-direction controls and
unsteered), each read one by one and labelled coherent or broken, with the measures the scan recorded
(tokens, distinct-2, repeat share, perplexity ratio). Each is in the development half or the test half
by a seeded hash of its text (`split`); thresholds are tuned on the development half only, and the figures
docs/coherence.md quotes are of the test half:

    .venv/bin/python -m bench.coherence            # both halves, the rule of emoaudit/audits/default.toml
    .venv/bin/python -m bench.coherence --without-loops   # the rule before steering/fluency.py
"""

from __future__ import annotations

import argparse
import hashlib
import json
from dataclasses import dataclass, replace
from pathlib import Path

from emoaudit.spec import load_spec
from emoaudit.steering.fluency import fluency
from emoaudit.results.steering import Thresholds
from emoaudit.steering.regimes import TextShape, classify
from emoaudit.steering.statistics import wilson

SET = Path(__file__).resolve().parent.parent / "tests" / "data" / "coherence.jsonl"
SALT = "emoaudit-coherence-v1"


@dataclass(frozen=True)
class Labelled:
    text: str
    source: str  # run, regime the scan gave it, multiplier, emotion or control
    label: str  # "coherent" or "broken", as read
    split: str  # "dev" or "test"
    tokens: int
    distinct2: float
    repeat_share: float
    perplexity_ratio: float | None


@dataclass(frozen=True)
class Score:
    n: int
    true_coherent: int  # labelled coherent, called coherent
    called_coherent: int
    labelled_coherent: int

    @property
    def precision(self) -> tuple[float, float, float]:
        return _rate(self.true_coherent, self.called_coherent)

    @property
    def recall(self) -> tuple[float, float, float]:
        return _rate(self.true_coherent, self.labelled_coherent)


def split_of(text: str) -> str:
    """dev or test, fixed by a seeded hash of the text: never chosen, never moved."""
    return "dev" if hashlib.sha256(f"{SALT}:{text}".encode()).digest()[0] % 2 == 0 else "test"


def load(path: Path = SET) -> list[Labelled]:
    return [Labelled(**json.loads(line)) for line in path.read_text(encoding="utf-8").splitlines() if line]


def coherent(item: Labelled, t: Thresholds) -> bool:
    """What the rule calls the text: not repetitive_collapse and not explosive (the target plays no part)."""
    shape = TextShape(item.tokens, item.distinct2, item.repeat_share)
    return classify(shape, item.perplexity_ratio, True, t, fluency(item.text)) == "surgical"


def score(items: list[Labelled], t: Thresholds) -> Score:
    called = [coherent(i, t) for i in items]
    labelled = [i.label == "coherent" for i in items]
    return Score(
        len(items), sum(c and lab for c, lab in zip(called, labelled, strict=True)), sum(called), sum(labelled)
    )


def _rate(k: int, n: int) -> tuple[float, float, float]:
    if not n:
        return float("nan"), float("nan"), float("nan")
    low, high = wilson(k, n)
    return k / n, low, high


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--without-loops", action="store_true", help="the rule before steering/fluency.py")
    args = parser.parse_args()
    t = load_spec().steering.thresholds
    if args.without_loops:
        t = replace(t, echo_share_max=None, word_repeats_max=None)
    items = load()
    for half in ("dev", "test"):
        s = score([i for i in items if i.split == half], t)
        p, r = s.precision, s.recall
        print(
            f"{half}: n = {s.n}, labelled coherent {s.labelled_coherent}, called coherent {s.called_coherent}; "
            f"precision {p[0]:.2f} [{p[1]:.2f}, {p[2]:.2f}] ({s.true_coherent}/{s.called_coherent}), "
            f"recall {r[0]:.2f} [{r[1]:.2f}, {r[2]:.2f}] ({s.true_coherent}/{s.labelled_coherent})"
        )


if __name__ == "__main__":
    main()
