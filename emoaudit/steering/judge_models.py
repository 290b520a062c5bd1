"""The judges that are models: the default zero-shot judge and Hugging Face text classifiers.

The default is zero-shot: a sentence encoder (all-mpnet-base-v2, pulled with pip; the offline judges
are in `emoaudit/audits/models.toml`) embeds a text, and its scores are the cosines to each emotion's prototype
centroid (prototypes kept in `emoaudit/audits/`). A user may name any Hugging Face text-classification model
instead; its labels are matched by name (any case). Either must score every audited emotion; the
reference label is scored where it can be.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification, AutoTokenizer, PretrainedConfig

from emoaudit.errors import EmoauditError
from emoaudit.model import registry
from emoaudit.steering.judge import Judge

# Small batches of texts of like length: little padding, and a transient peak of about 40 MB where
# unsorted batches of 64 took 160 MB, at the same speed (600 steering outputs, CPU).
_BATCH = 16
_MAX_TOKENS = 256


@dataclass
class PrototypeJudge:
    """Zero-shot: scores are cosines [n_texts, n_labels] between a text's sentence embedding and each
    label's prototype centroid, embeddings mean-pooled over tokens as sentence-transformers pools this encoder."""

    name: str
    labels: list[str]
    model: torch.nn.Module
    tokenizer: Callable[..., dict[str, torch.Tensor]]
    prototypes: np.ndarray = field(init=False)  # [labels, dim] unit centroids
    kind: str = "zero-shot prototypes"

    def embed(self, texts: list[str]) -> np.ndarray:
        """Unit sentence embeddings [n_texts, dim]: the encoder's mean-pooled last layer."""
        enc = self.tokenizer(texts, padding=True, truncation=True, max_length=_MAX_TOKENS, return_tensors="pt")
        with torch.inference_mode():
            hidden = self.model(**enc).last_hidden_state
        mask = enc["attention_mask"][..., None].float()
        return torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1).numpy()

    def scores(self, texts: Sequence[str]) -> np.ndarray:
        return _by_length(texts, lambda batch: self.embed(batch) @ self.prototypes.T, len(self.labels))


@dataclass
class ClassifierJudge:
    """A Hugging Face text classifier: scores are its softmax probabilities [n_texts, n_labels] of the
    audit's labels (its other labels share the probability mass, but are not reported)."""

    name: str
    labels: list[str]
    model: torch.nn.Module
    tokenizer: Callable[..., dict[str, torch.Tensor]]
    columns: list[int]  # the classifier's output index of each label
    kind: str = "classifier"
    max_tokens: int = _MAX_TOKENS  # texts are truncated to this many tokens, at most the classifier's positions

    def scores(self, texts: Sequence[str]) -> np.ndarray:
        def batch_scores(batch: list[str]) -> np.ndarray:
            enc = self.tokenizer(batch, padding=True, truncation=True, max_length=self.max_tokens, return_tensors="pt")
            with torch.inference_mode():
                probs = torch.softmax(self.model(**enc).logits.float(), dim=-1).numpy()
            return probs[:, self.columns]

        return _by_length(texts, batch_scores, len(self.labels))


def check_judge(choice: str | Judge, emotions: Sequence[str], prototypes: Mapping[str, Sequence[str]]) -> None:
    """Refuse a judge that cannot score every audited emotion, from its configuration alone (no weights).

    Raises EmoauditError naming the missing labels, or when a named judge cannot be found or does not classify text.
    """
    have = {label.lower() for label in judge_labels(choice, prototypes)}
    missing = [e for e in emotions if e.lower() not in have]
    if missing:
        name = choice if isinstance(choice, str) else choice.name
        raise EmoauditError(
            f"judge {name!r} has no label for {', '.join(missing)} (its labels: {', '.join(sorted(have)) or 'none'}); "
            "a judge must score every audited emotion"
        )


def judge_labels(choice: str | Judge, prototypes: Mapping[str, Sequence[str]]) -> list[str]:
    """The labels a judge scores: its own, the labels with prototypes for the default kind, or a
    classifier's `id2label` (read from its config)."""
    if not isinstance(choice, str):
        return list(choice.labels)
    if choice in registry.load_judges():
        return [label for label, texts in prototypes.items() if texts]
    return [str(label) for label in (_classifier_config(choice).id2label or {}).values()]


def load_judge(
    choice: str | Judge, emotions: Sequence[str], reference: str, prototypes: Mapping[str, Sequence[str]]
) -> Judge:
    """The judge to score steered text: a Judge object as given, the default zero-shot judge by its alias,
    or a Hugging Face text-classification model (ID or directory). It scores the emotions, then the
    reference where it can. Raises EmoauditError as `check_judge` does, or when the judge cannot load."""
    check_judge(choice, emotions, prototypes)
    if not isinstance(choice, str):
        return choice
    labels = [*emotions, reference]
    if choice in registry.load_judges():
        directory = registry.pull_judge(registry.load_judges()[choice], quiet=True)
        return _prototype_judge(choice, directory, [label for label in labels if prototypes.get(label)], prototypes)
    try:
        tokenizer = AutoTokenizer.from_pretrained(choice)
        model = AutoModelForSequenceClassification.from_pretrained(choice, use_safetensors=True).eval()
    except (OSError, ValueError) as exc:
        raise EmoauditError(_cannot_load(choice, exc)) from exc
    index = {str(v).lower(): int(k) for k, v in model.config.id2label.items()}
    kept = [label for label in labels if label.lower() in index]
    # A classifier with fewer positions than our default length cannot read that far (it would fail mid-audit).
    positions = getattr(model.config, "max_position_embeddings", None) or _MAX_TOKENS
    limit = min(_MAX_TOKENS, positions, int(min(tokenizer.model_max_length, _MAX_TOKENS)))
    return ClassifierJudge(choice, kept, model, tokenizer, [index[label.lower()] for label in kept], max_tokens=limit)


def _prototype_judge(
    name: str, directory: Path, labels: list[str], prototypes: Mapping[str, Sequence[str]]
) -> PrototypeJudge:
    tokenizer = AutoTokenizer.from_pretrained(directory)
    model = AutoModel.from_pretrained(directory, use_safetensors=True).eval()
    judge = PrototypeJudge(name, labels, model, tokenizer)
    centroids = [judge.embed(list(prototypes[label])).mean(axis=0) for label in labels]
    judge.prototypes = np.stack([c / np.linalg.norm(c) for c in centroids])
    return judge


def _classifier_config(name: str) -> PretrainedConfig:
    try:
        config = AutoConfig.from_pretrained(name)
    except (OSError, ValueError) as exc:
        raise EmoauditError(_cannot_load(name, exc)) from exc
    architectures = config.architectures or []
    if architectures and not any(a.endswith("ForSequenceClassification") for a in architectures):
        raise EmoauditError(f"judge {name!r} is not a text-classification model ({', '.join(architectures)})")
    return config


def _cannot_load(name: str, exc: Exception) -> str:
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    offline = ", ".join(registry.load_judges())
    return f"cannot load judge {name!r} ({first}); the offline judges are {offline}"


def _by_length(texts: Sequence[str], score: Callable[[list[str]], np.ndarray], n_labels: int) -> np.ndarray:
    """Scores [n_texts, n_labels] computed in batches of texts of like length, rows in the texts' order."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = np.zeros((len(texts), n_labels))
    for start in range(0, len(order), _BATCH):
        rows = order[start : start + _BATCH]
        out[rows] = score([texts[i] for i in rows])
    return out
