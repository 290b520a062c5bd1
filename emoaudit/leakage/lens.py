"""The logit lens at the steering layer: which tokens a residual state promotes, and in which script."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from emoaudit.leakage.scripts import token_script
from emoaudit.model.hooks import block_hooks
from emoaudit.model.loaded import LoadedModel
from emoaudit.model.runtime import pad_batch, pad_id, run_body


@dataclass(frozen=True)
class LensReading:
    """Top tokens of a logit-lens reading and how many are in a foreign script."""

    tokens: list[str]
    scripts: list[str | None]
    foreign_share: float

    def foreign_tokens(self) -> list[str]:
        return [t for t, s in zip(self.tokens, self.scripts, strict=True) if s not in (None, "Latin")]


def read_lens(lm: LoadedModel, logits: torch.Tensor, k: int, expected: str = "Latin") -> list[LensReading]:
    readings = []
    for row in logits:
        top = torch.topk(row, k).indices.tolist()
        tokens = [str(lm.tokenizer.decode([t])) for t in top]
        scripts = [token_script(t) for t in tokens]
        lettered = [s for s in scripts if s is not None]
        foreign = sum(s != expected for s in lettered) / len(lettered) if lettered else 0.0
        readings.append(LensReading(tokens, scripts, foreign))
    return readings


def last_prompt_states(lm: LoadedModel, prompts: Sequence[Sequence[int]], layer: int) -> torch.Tensor:
    """The residual stream after block `layer` at each prompt's last token: [n, hidden]."""
    ids, mask = pad_batch(prompts, pad_id(lm), "left")
    captured: list[torch.Tensor] = []

    def read(_layer: int, hidden: torch.Tensor) -> None:
        captured.append(hidden[:, -1].float().cpu())

    with block_hooks(lm.stream, {layer: read}):
        run_body(lm, ids, mask)
    return captured[0]
