"""Anisotropy baselines: what separation looks like without emotion.

Hidden states share a few dominant directions, so any two texts' activations have a high cosine
and even random labels separate somewhat in a few hundred dimensions. A method's separation counts
only above these references: neutral text, shuffled labels and random unit directions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from emoaudit.analysis.geometry import class_means, mean_pairwise_cosine, unit
from emoaudit.analysis.separation import check_classes, fisher_from_gram, folds, one_hot, probe_accuracy_on


@dataclass(frozen=True)
class FisherNull:
    mean: float | None  # None when no shuffled labelling has a defined ratio (no sample varies)
    p_value: float  # 1.0 when the observed ratio is undefined: no separation is shown


def reference_cosine(reference: np.ndarray) -> float:
    """Mean pairwise cosine of raw neutral-text activations: how alike any two texts look at this layer."""
    return mean_pairwise_cosine(reference)


def shuffled_probe_accuracy(scores: np.ndarray, y: np.ndarray, n_folds: int, shuffles: int, seed: int) -> float:
    """The probe's accuracy with the labels shuffled: what the probe finds in structure-free labels.

    `scores` [n, k] are the principal component scores the real probe reads (`principal_components`).
    """
    rng = np.random.default_rng(seed)
    return float(np.mean([probe_accuracy_on(scores, rng.permutation(y), n_folds, seed) for _ in range(shuffles)]))


def fisher_null(gram: np.ndarray, y: np.ndarray, permutations: int, seed: int) -> FisherNull:
    """Permutation null of the Fisher ratio: its mean under shuffled labels and the observed ratio's p-value.

    `gram` [n, n] is `standardised_gram` of the layer's samples. An unbounded observed ratio (+inf: every
    class's samples coincide) lies above every shuffled one; an undefined one (NaN) shows nothing, p = 1.
    """
    observed = fisher_from_gram(gram, one_hot(y))[0]
    rng = np.random.default_rng(seed)
    onehot = one_hot(y)
    null = np.concatenate(
        [
            fisher_from_gram(gram, np.stack([onehot[rng.permutation(len(y))] for _ in range(chunk)]))
            for chunk in _chunks(permutations, 50)
        ]
    )
    finite = null[np.isfinite(null)]
    mean = float(finite.mean()) if len(finite) else None
    if np.isnan(observed):
        return FisherNull(mean, 1.0)
    return FisherNull(mean, float((1 + (null >= observed).sum()) / (1 + permutations)))


def random_directions(x: np.ndarray, y: np.ndarray, draws: int, n_folds: int, seed: int) -> tuple[float, float]:
    """(mean pairwise cosine, centroid accuracy) when the emotion vectors are random unit directions.

    Each draw is scored as `centroid_scores(..., directions=draw)` would, all draws at once per fold.
    """
    check_classes(y)
    rng = np.random.default_rng(seed)
    n_classes = int(y.max()) + 1
    # One call draws what `draws` successive calls of shape [classes, hidden] would, in the same order.
    dirs = unit(rng.standard_normal((draws, n_classes, x.shape[1])))
    sim = dirs @ dirs.transpose(0, 2, 1)  # [draws, classes, classes]: `mean_pairwise_cosine` of each draw
    cosines = (sim.sum(axis=(1, 2)) - np.trace(sim, axis1=1, axis2=2)) / (n_classes * (n_classes - 1))
    # A sample's cosine to each direction is its projection divided by its own norm, which no argmax over
    # the directions depends on: every sample is projected once, and each fold subtracts its centre's.
    projected = (dirs.reshape(draws * n_classes, -1) @ x.T).reshape(draws, n_classes, len(y))
    correct = np.zeros(draws)
    for train, test in folds(y, n_folds, seed):
        centre = class_means(x[train], y[train], n_classes).mean(axis=0)
        sim = projected[:, :, test] - (dirs @ centre)[:, :, None]
        correct += (sim.argmax(axis=1) == y[test]).sum(axis=1)
    return float(np.mean(cosines)), float(np.mean(correct / len(y)))


def _chunks(total: int, size: int) -> list[int]:
    return [min(size, total - start) for start in range(0, total, size)]
