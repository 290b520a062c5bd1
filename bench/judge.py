"""Steering judges compared on the audit's held-out sentences, which none of them is built from.

    python bench/judge.py --json bench/results/judge-comparison.json [--encoder NAME=DIR ...]

Each sentence encoder (the offline judges of emoaudit/audits/models.toml always; others given as a
sentence-transformers directory) is tried three ways:

* prototypes: cosine to each label's centroid of the judge prototypes (emoaudit/audits/default/judge.json), the
  default judge as it stands;
* prototypes+passages: the same, the centroids also over the extraction passages (passages.json);
* logistic: a multinomial logistic regression (scikit-learn, C=1) on the unit embeddings of the
  prototypes and passages, scores its class probabilities.

Printed and written: top-1 and top-3 accuracy with 95% Wilson intervals, and the per-label top-1.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression

from emoaudit.model import registry
from emoaudit.spec import load_spec
from emoaudit.steering.judge import validate
from emoaudit.steering.judge_models import PrototypeJudge, _prototype_judge


@dataclass
class LogisticJudge:
    """Class probabilities [n_texts, n_labels] of a logistic regression on an encoder's unit embeddings."""

    name: str
    labels: list[str]
    encoder: PrototypeJudge
    model: LogisticRegression
    kind: str = "logistic regression on prototype embeddings"

    def scores(self, texts: Sequence[str]) -> np.ndarray:
        return self.model.predict_proba(self.encoder.embed(list(texts)))


def candidates(name: str, directory: Path, labels: list[str], prototypes: Mapping[str, list[str]],
               passages: Mapping[str, list[str]]) -> list[object]:  # fmt: skip
    both = {label: [*prototypes[label], *passages.get(label, [])] for label in labels}
    plain = _prototype_judge(f"{name} prototypes", directory, labels, prototypes)
    wider = _prototype_judge(f"{name} prototypes+passages", directory, labels, both)
    texts = [t for label in labels for t in both[label]]
    y = [label for label in labels for _ in both[label]]
    classifier = LogisticRegression(C=1.0, max_iter=2000).fit(plain.embed(texts), y)
    assert list(classifier.classes_) == sorted(labels)
    ordered = LogisticRegression()  # the same model, its columns in the judge's label order
    order = [list(classifier.classes_).index(label) for label in labels]
    ordered.classes_ = np.array(labels)
    ordered.coef_, ordered.intercept_ = classifier.coef_[order], classifier.intercept_[order]
    return [plain, wider, LogisticJudge(f"{name} logistic", labels, plain, ordered)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--encoder", action="append", default=[], help="NAME=DIR of a sentence-transformers encoder")
    parser.add_argument("--json", type=Path, help="write the comparison here")
    args = parser.parse_args()
    spec = load_spec()
    labels = spec.labels
    held = {t for texts in spec.heldout.values() for t in texts}
    built_from = {t for source in (spec.judge_prototypes, spec.passages) for texts in source.values() for t in texts}
    assert not held & built_from, "a held-out sentence is among the texts a judge is built from"
    encoders = {alias: registry.pull_judge(judge) for alias, judge in registry.load_judges().items()}
    encoders |= {n: Path(d) for n, d in (e.split("=", 1) for e in args.encoder)}
    rows = []
    for name, directory in encoders.items():
        for judge in candidates(name, directory, labels, spec.judge_prototypes, spec.passages):
            start = time.perf_counter()
            v = validate(judge, spec.heldout)  # type: ignore[arg-type]
            seconds = time.perf_counter() - start
            rows.append({"judge": judge.name, "seconds": round(seconds, 2), **asdict(v)})  # type: ignore[attr-defined]
            print(
                f"{judge.name:40s} top-1 {v.accuracy:.3f} [{v.ci_low:.3f}, {v.ci_high:.3f}]  "  # type: ignore[attr-defined]
                f"top-3 {v.top3:.3f} [{v.top3_ci_low:.3f}, {v.top3_ci_high:.3f}]  n={v.n}  {seconds:.1f} s",
                file=sys.stderr,
            )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
