"""Is a steered text's change specific to its target, and larger than steering in a random direction?

A steered text's *rises* are the judge's score of each emotion minus its score of the unsteered text of
the same scenario. The target is on target when (1) its rise reaches the judge margin, (2) it ranks among
the `top_k` largest rises of all the judge's emotions (0-based rank < k: the judge saw *this* emotion move,
not emotional text in general), and (3) it exceeds the `control_percentile`-th percentile of that
emotion's rise under random-direction controls at the same strength, pooled over scenarios and directions
(the shift that any perturbation of that size produces). The controls are seeded unit directions drawn
from an isotropic Gaussian and scaled exactly like the emotion vectors (strength × mean‖h‖ × unit): a
perturbation of the same size that means nothing, so whatever it does to the judge is the null.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from emoaudit.results.steering import Thresholds

Rises = dict[str, float]  # emotion -> judge score of the steered text minus that of the unsteered text
ControlThresholds = dict[str, dict[str, float]]  # emotion -> str(multiplier) -> the controls' percentile rise


def random_directions(n: int, hidden: int, seed: int) -> torch.Tensor:
    """[n, hidden] seeded unit directions, uniform on the sphere (normalised isotropic Gaussian draws)."""
    draws = torch.randn(n, hidden, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return (draws / draws.norm(dim=-1, keepdim=True)).float()


def rises(scores: Mapping[str, float], unsteered: Mapping[str, float], emotions: Sequence[str]) -> Rises:
    """Each emotion's judge score minus its score of the unsteered text of the same scenario."""
    return {e: scores[e] - unsteered[e] for e in emotions}


def rank(rise: Rises, emotion: str) -> int:
    """0-based rank of `emotion`'s rise among all the emotions' (ties rank in its favour)."""
    return sum(r > rise[emotion] for e, r in rise.items() if e != emotion)


def control_thresholds(
    control_rises: Sequence[tuple[float, Rises]], emotions: Sequence[str], percentile: float
) -> ControlThresholds:
    """Per emotion and multiplier, the `percentile`-th percentile (linear interpolation) of that emotion's
    rise over the random-direction control trials at that multiplier: (multiplier, rises) pairs."""
    multipliers = sorted({m for m, _ in control_rises})
    return {
        e: {str(m): float(np.percentile([r[e] for mm, r in control_rises if mm == m], percentile)) for m in multipliers}
        for e in emotions
    }


def on_target(rise: Rises, emotion: str, control_threshold: float, t: Thresholds) -> bool:
    """The three conditions of the module docstring, for `emotion` as the target."""
    gain = rise[emotion]
    return gain >= t.judge_margin and rank(rise, emotion) < t.top_k and gain > control_threshold
