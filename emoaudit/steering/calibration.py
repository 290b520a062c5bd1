"""Calibrating steering strength per model: the strength at which the next-token distribution moves by a
target KL divergence, so that one grid of multipliers means the same on a 135M and on a 7B model."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from emoaudit.model.hooks import add_to_blocks
from emoaudit.model.loaded import LoadedModel
from emoaudit.model.logits import final_logits
from emoaudit.model.runtime import pad_batch, pad_id, run_body
from emoaudit.results.steering import Calibration
from emoaudit.vectors import unit_deltas


def next_token_kl(
    lm: LoadedModel,
    prompts: Sequence[Sequence[int]],
    layer: int,
    deltas: torch.Tensor,
    base: torch.Tensor | None = None,
) -> np.ndarray:
    """KL(unsteered ‖ steered) of the next-token distribution after each prompt, one delta per prompt.

    `base`, the unsteered log-probabilities, may be passed in when several strengths share it.
    """
    base = _next_token_logprobs(lm, prompts) if base is None else base
    with add_to_blocks(lm.stream, [layer], deltas):
        steered = _next_token_logprobs(lm, prompts)
    return (base.exp() * (base - steered)).sum(dim=-1).cpu().numpy()


def _next_token_logprobs(lm: LoadedModel, prompts: Sequence[Sequence[int]]) -> torch.Tensor:
    ids, mask = pad_batch(prompts, pad_id(lm), "left")
    hidden = run_body(lm, ids, mask)
    with torch.inference_mode():
        return torch.log_softmax(final_logits(lm, hidden[:, -1]), dim=-1)


def calibrate(
    lm: LoadedModel,
    prompts: Sequence[Sequence[int]],
    layer: int,
    directions: torch.Tensor,
    mean_norm: float,
    target_kl: float,
    probe_strengths: Sequence[float],
) -> Calibration:
    """Interpolate, on a log scale, the strength whose mean next-token KL reaches `target_kl`."""
    probed = []
    n = len(prompts) * len(directions)
    rows = [p for p in prompts for _ in directions]
    dirs = directions.repeat(len(prompts), 1)
    base = _next_token_logprobs(lm, rows)
    for strength in probe_strengths:
        kl = next_token_kl(lm, rows, layer, unit_deltas(dirs, [strength] * n, mean_norm), base)
        probed.append((float(strength), float(kl.mean())))
    strengths = np.log([s for s, _ in probed])
    kls = np.maximum.accumulate(np.array([k for _, k in probed]))  # KL grows with strength; ignore wiggles
    if kls[-1] < target_kl:
        unit = float(np.exp(strengths[-1]))
    elif kls[0] >= target_kl:
        unit = float(np.exp(strengths[0]))
    else:
        unit = float(np.exp(np.interp(target_kl, kls, strengths)))
    return Calibration(unit, target_kl, probed)
