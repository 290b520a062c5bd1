"""Logits from residual states, with every final transform the model's own forward applies.

emoaudit computes logits itself where it needs only some positions (perplexity, calibration, the
logit lens); these must equal `model(...).logits` there. The transforms after the unembedding that
supported families apply: Gemma 2/3's final soft-capping (`final_logit_softcapping`) and Granite's
`logits_scaling` (logits divided by it).
"""

from __future__ import annotations

import torch

from emoaudit.model.hooks import module_device
from emoaudit.model.loaded import LoadedModel


def final_logits(lm: LoadedModel, normed: torch.Tensor) -> torch.Tensor:
    """float32 logits [..., vocab] from final-normed hidden states [..., hidden]."""
    logits = lm.stream.unembed(normed).float()
    config = lm.model.config
    scaling = getattr(config, "logits_scaling", None)
    if scaling:
        logits = logits / scaling
    cap = getattr(config, "final_logit_softcapping", None)
    return torch.tanh(logits / cap) * cap if cap else logits


def lens_logits(lm: LoadedModel, states: torch.Tensor) -> torch.Tensor:
    """The logit lens: residual states [n, hidden] read through the final norm and the unembedding,
    float32 logits [n, vocab] on the CPU (nostalgebraist 2020)."""
    # where the LM head runs, the lens runs (its weights may sit on the meta device, offloaded to disk)
    head = lm.stream.unembed
    dtype = next(p.dtype for p in head.parameters() if p.dtype.is_floating_point)
    with torch.inference_mode():
        normed = lm.stream.final_norm(states.to(module_device(head), dtype))
        return final_logits(lm, normed).cpu()
