"""Pooled activations of one extraction method: what a resumed audit reloads instead of running the model."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from emoaudit.storage import write_with


@dataclass
class Activations:
    """Pooled activations of one method: values [n_samples, n_layers, hidden], one label and text per sample."""

    method: str
    labels: list[str]
    texts: list[str]
    values: torch.Tensor
    token_norms: torch.Tensor  # [n_samples, n_layers]: mean norm of the pooled tokens
    pooling: str
    prompts: list[str] | None = None
    embedding: torch.Tensor | None = None  # [n_samples, hidden]: the same pooling of the input to block 0

    def of(self, label: str) -> torch.Tensor:
        return self.values[[i for i, lab in enumerate(self.labels) if lab == label]]

    def select(self, rows: list[int]) -> Activations:
        """The activations of these samples only, in this order."""
        pick = lambda items: None if items is None else [items[i] for i in rows]  # noqa: E731
        embedding = None if self.embedding is None else self.embedding[rows]
        return Activations(
            self.method,
            [self.labels[i] for i in rows],
            [self.texts[i] for i in rows],
            self.values[rows],
            self.token_norms[rows],
            self.pooling,
            pick(self.prompts),
            embedding,
        )

    def save(self, path: Path) -> None:
        meta = {
            "method": self.method,
            "pooling": self.pooling,
            "labels": json.dumps(self.labels),
            "texts": json.dumps(self.texts),
            "prompts": json.dumps(self.prompts),
        }
        tensors = {"values": self.values.contiguous(), "token_norms": self.token_norms.contiguous()}
        if self.embedding is not None:
            tensors["embedding"] = self.embedding.contiguous()
        write_with(path, lambda tmp: save_file(tensors, str(tmp), metadata=meta))

    @classmethod
    def load(cls, path: Path) -> Activations:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata()
            values, norms = f.get_tensor("values"), f.get_tensor("token_norms")
            embedding = f.get_tensor("embedding") if "embedding" in f.keys() else None  # noqa: SIM118
        return cls(
            meta["method"],
            json.loads(meta["labels"]),
            json.loads(meta["texts"]),
            values,
            norms,
            meta["pooling"],
            json.loads(meta["prompts"]),
            embedding,
        )
