"""Which tokens of a sequence enter its pooled activation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from emoaudit.errors import EmoauditError

if TYPE_CHECKING:  # only tensor methods are called: the audit specification parses Pooling without torch
    import torch


@dataclass(frozen=True)
class Pooling:
    """Which tokens of a sequence enter its activation.

    `mean` averages the real tokens from `start` on (counted among real tokens, so padding never
    shifts it). `last` takes the last real token.
    """

    kind: Literal["mean", "last"] = "mean"
    start: int = 0

    @classmethod
    def parse(cls, text: str) -> Pooling:
        """`mean`, `mean:K` (mean from token K on) or `last`; anything else raises EmoauditError."""
        kind, _, start = text.partition(":")
        if kind not in ("mean", "last") or (start and (kind == "last" or not start.isdigit())):
            raise EmoauditError(f"unknown pooling {text!r}: use mean, mean:K (from token K on) or last")
        return cls("mean" if kind == "mean" else "last", int(start or 0))

    def __str__(self) -> str:
        return f"mean:{self.start}" if self.kind == "mean" and self.start else self.kind


def pooling_weights(mask: torch.Tensor, pooling: Pooling) -> torch.Tensor:
    """Per-token weights [batch, tokens] that sum to one over the pooled real tokens of each row."""
    mask = mask.bool()
    position = mask.long().cumsum(dim=1) - 1  # index among real tokens, whichever side pads
    if pooling.kind == "last":
        selected = mask & (position == mask.sum(dim=1, keepdim=True) - 1)
    else:
        selected = mask & (position >= pooling.start)
    counts = selected.sum(dim=1, keepdim=True)
    if bool((counts == 0).any()):
        raise EmoauditError("a sequence has no tokens left to pool: its start lies beyond its end")
    return selected.float() / counts
