"""The external judge of steered text: an emotion classifier that is never the audited model.

The default is zero-shot: a sentence encoder (all-MiniLM-L6-v2, pulled with pip) embeds a text, and
its scores are the cosines to each emotion's prototype centroid (prototypes kept in `audits/`). A
user may name any Hugging Face text-classification model instead; its labels are matched by name.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer

from emoaudit.model import registry
from emoaudit.errors import EmoauditError

DEFAULT_JUDGE = "minilm-l6-v2"


@dataclass
class Judge:
    """Scores [n_texts, n_labels]: higher means more of that emotion. NaN columns: labels it cannot judge."""

    name: str
    labels: list[str]
    kind: str
    _model: torch.nn.Module
    _tokenizer: object
    _prototypes: np.ndarray | None  # [labels, dim] unit centroids, for the zero-shot kind
    _columns: list[int | None] | None  # classifier output index per label, for the classifier kind
    # Small batches of texts of like length: little padding, and a transient peak of about 40 MB where
    # unsorted batches of 64 took 160 MB, at the same speed (600 steering outputs, CPU).
    batch_size: int = 16

    def scores(self, texts: Sequence[str]) -> np.ndarray:
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.zeros((len(texts), len(self.labels)))
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            out[rows] = self._batch_scores([texts[i] for i in rows])
        return out

    def predict(self, texts: Sequence[str]) -> list[str]:
        return [self.labels[i] for i in np.nanargmax(self.scores(texts), axis=1)]

    def embed(self, texts: list[str]) -> np.ndarray:
        """Unit sentence embeddings: the encoder's mean-pooled last layer (the zero-shot kind only)."""
        enc = self._tokenizer(texts, padding=True, truncation=True, max_length=256, return_tensors="pt")  # type: ignore[operator]
        with torch.inference_mode():
            hidden = self._model(**enc).last_hidden_state
        mask = enc["attention_mask"][..., None].float()
        return torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1).numpy()

    def _batch_scores(self, texts: list[str]) -> np.ndarray:
        if self._prototypes is not None:
            return self.embed(texts) @ self._prototypes.T
        enc = self._tokenizer(texts, padding=True, truncation=True, max_length=256, return_tensors="pt")  # type: ignore[operator]
        with torch.inference_mode():
            probs = torch.softmax(self._model(**enc).logits.float(), dim=-1).numpy()
        assert self._columns is not None
        return np.stack([probs[:, c] if c is not None else np.full(len(texts), np.nan) for c in self._columns], axis=1)


def load_judge(name: str, labels: list[str], prototypes: dict[str, list[str]]) -> Judge:
    """The default zero-shot judge, or a Hugging Face text-classification model (ID or directory)."""
    if name in registry.load_judges():
        return _prototype_judge(name, registry.pull_judge(registry.load_judges()[name], quiet=True), labels, prototypes)
    try:
        tokenizer = AutoTokenizer.from_pretrained(name)
        model = AutoModelForSequenceClassification.from_pretrained(name, use_safetensors=True).eval()
    except (OSError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise EmoauditError(f"cannot load judge {name!r} ({first}); the offline default is {DEFAULT_JUDGE}") from exc
    names = {str(v).lower(): int(k) for k, v in model.config.id2label.items()}
    columns = [names.get(label.lower()) for label in labels]
    if all(c is None for c in columns):
        raise EmoauditError(f"judge {name!r} has none of the audited labels among its own: {', '.join(names)}")
    return Judge(name, labels, "classifier", model, tokenizer, None, columns)


def _prototype_judge(name: str, directory: Path, labels: list[str], prototypes: dict[str, list[str]]) -> Judge:
    tokenizer = AutoTokenizer.from_pretrained(directory)
    model = AutoModel.from_pretrained(directory, use_safetensors=True).eval()
    judge = Judge(name, labels, "zero-shot prototypes", model, tokenizer, None, None)
    centroids = []
    for label in labels:
        if not prototypes.get(label):
            raise EmoauditError(f"the judge has no prototypes for {label!r}")
        emb = judge.embed(prototypes[label])
        centroid = emb.mean(axis=0)
        centroids.append(centroid / np.linalg.norm(centroid))
    judge._prototypes = np.stack(centroids)
    return judge


@dataclass(frozen=True)
class JudgeValidation:
    accuracy: float
    top3: float
    n: int
    per_label: dict[str, float]


def validate(judge: Judge, labelled: dict[str, list[str]]) -> JudgeValidation:
    """Accuracy on a labelled set that was not used to build the judge (our held-out sentences)."""
    labels = [label for label in judge.labels if label in labelled]
    texts = [t for label in labels for t in labelled[label]]
    truth = np.array([judge.labels.index(label) for label in labels for _ in labelled[label]])
    scores = np.nan_to_num(judge.scores(texts), nan=-np.inf)
    ranks = (-scores).argsort(axis=1)
    hit = ranks[:, 0] == truth
    per_label = {label: float(hit[truth == judge.labels.index(label)].mean()) for label in labels}
    return JudgeValidation(
        float(hit.mean()), float((ranks[:, :3] == truth[:, None]).any(axis=1).mean()), len(texts), per_label
    )
