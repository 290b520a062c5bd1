"""The external judge of steered text: an emotion classifier that is never the audited model.

`Judge` is what the steering stage asks of one: a name and kind for the results, the labels it
scores, and a score per text and label. Two are neural models (`judge_models`): the default, zero-shot
against emotion prototypes, and any Hugging Face text-classification model. `FixedJudge` counts
keywords, so that tests and examples can run a whole audit without a judge model.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
from scipy.stats import binomtest

from emoaudit.results.steering import JudgeValidation

_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)*")


@runtime_checkable
class Judge(Protocol):
    """Scores texts by emotion: higher means more of that label. Implementations need no base class."""

    name: str  # recorded in results.json
    kind: str  # how it judges, in words, for the report
    labels: list[str]  # the columns of `scores`

    def scores(self, texts: Sequence[str]) -> np.ndarray:
        """Finite scores [n_texts, n_labels], each row that text's alone (batching must not change it)."""
        ...


@dataclass(frozen=True)
class FixedJudge:
    """A judge without a model, for tests and examples: a label's score is the share of the text's words
    that are among its keywords (whole words, any case), so a text scores 0 on a label it never names.

    Deterministic and cheap, and it still tells a target effect from none: a steered text that names the
    target emotion more often than the unsteered text did gains on that label, one that does not, gains
    nothing. A label with no keywords (the neutral reference, say) always scores 0.
    """

    keywords: Mapping[str, Sequence[str]]  # label -> its keywords; the labels in this order
    name: str = "fixed-keywords"
    kind: str = "keyword share (fixed, for tests)"

    @property
    def labels(self) -> list[str]:
        return list(self.keywords)

    def scores(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), len(self.keywords)))
        sets = [{w.lower() for w in words} for words in self.keywords.values()]
        for row, text in enumerate(texts):
            words = [w.lower() for w in _WORD.findall(text)]
            if words:
                out[row] = [sum(w in kw for w in words) / len(words) for kw in sets]
        return out


def predict(judge: Judge, texts: Sequence[str]) -> list[str]:
    """The top label of each text (the first of tied ones)."""
    return [judge.labels[i] for i in np.argmax(judge.scores(texts), axis=1)]


def validate(judge: Judge, labelled: Mapping[str, Sequence[str]]) -> JudgeValidation:
    """Accuracy on a labelled set that was not used to build the judge (the audit's held-out sentences),
    over the labels the judge and the set share. Raises ValueError when they share no sentence."""
    labels = [label for label in judge.labels if label in labelled and labelled[label]]
    if not labels:
        raise ValueError("the judge shares no labelled sentence with the validation set")
    texts = [t for label in labels for t in labelled[label]]
    truth = np.array([judge.labels.index(label) for label in labels for _ in labelled[label]])
    ranks = (-judge.scores(texts)).argsort(axis=1, kind="stable")  # ties: the first label, as `predict`
    hit = ranks[:, 0] == truth
    hit3 = (ranks[:, :3] == truth[:, None]).any(axis=1)
    rows = {label: truth == judge.labels.index(label) for label in labels}
    confusion = {}
    for label, r in rows.items():
        top, counts = np.unique(ranks[r, 0], return_counts=True)
        confusion[label] = {judge.labels[int(i)]: int(c) for i, c in zip(top, counts, strict=True)}
    low, high = _wilson(int(hit.sum()), len(hit))
    low3, high3 = _wilson(int(hit3.sum()), len(hit3))
    return JudgeValidation(
        accuracy=float(hit.mean()),
        ci_low=low,
        ci_high=high,
        top3=float(hit3.mean()),
        top3_ci_low=low3,
        top3_ci_high=high3,
        n=len(texts),
        per_label={label: float(hit[r].mean()) for label, r in rows.items()},
        per_label_top3={label: float(hit3[r].mean()) for label, r in rows.items()},
        confusion=confusion,
    )


def _wilson(successes: int, trials: int) -> tuple[float, float]:
    """The 95% Wilson score interval (low, high) of a proportion."""
    ci = binomtest(successes, trials).proportion_ci(confidence_level=0.95, method="wilson")
    return float(ci.low), float(ci.high)
