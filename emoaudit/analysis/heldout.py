"""Scoring vectors on held-out sentences that no vector was built from."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.metrics import roc_auc_score

from emoaudit.analysis.geometry import unit


@dataclass(frozen=True)
class HeldoutScore:
    accuracy: float  # 20-way: the emotion whose vector is closest is the right one
    top3: float
    valence_auc: float  # pleasant against unpleasant emotions, along the valence-weighted vector sum


def heldout_score(activations: np.ndarray, y: np.ndarray, vectors: np.ndarray, valence: np.ndarray) -> HeldoutScore:
    """`activations` [n, hidden] of held-out emotional texts, centred on their own (label-free) mean.

    `y` indexes rows of `vectors` [emotions, hidden]; `valence` holds the reference rating per emotion.
    """
    centred = activations - activations.mean(axis=0)
    unit_vectors = unit(vectors)
    sim = centred @ unit_vectors.T
    ranks = (-sim).argsort(axis=1)
    accuracy = float((ranks[:, 0] == y).mean())
    top3 = float((ranks[:, :3] == y[:, None]).any(axis=1).mean())
    axis = valence @ unit_vectors
    polar = valence[y] != 0
    auc = float(roc_auc_score(valence[y][polar] > 0, (centred @ axis)[polar]))
    return HeldoutScore(accuracy, top3, auc)
