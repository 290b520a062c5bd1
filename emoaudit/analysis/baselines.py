"""Anisotropy baselines: what separation looks like without emotion.

Hidden states share a few dominant directions, so any two texts' activations have a high cosine
and even random labels separate somewhat in a few hundred dimensions. A method's separation counts
only above these references: neutral text, shuffled labels and random unit directions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from emoaudit.analysis.geometry import mean_pairwise_cosine, standardise
from emoaudit.analysis.separation import (
    centroid_scores,
    fisher_from_gram,
    one_hot,
    principal_components,
    probe_accuracy_on,
)


@dataclass(frozen=True)
class FisherNull:
    mean: float
    p_value: float


def reference_cosine(reference: np.ndarray) -> float:
    """Mean pairwise cosine of raw neutral-text activations: how alike any two texts look at this layer."""
    return mean_pairwise_cosine(reference)


def shuffled_probe_accuracy(
    x: np.ndarray, y: np.ndarray, n_folds: int, components: int, shuffles: int, seed: int
) -> float:
    """The probe's accuracy with the labels shuffled: what the probe finds in structure-free labels."""
    rng = np.random.default_rng(seed)
    scores = principal_components(x, components)
    return float(np.mean([probe_accuracy_on(scores, rng.permutation(y), n_folds, seed) for _ in range(shuffles)]))


def fisher_null(x: np.ndarray, y: np.ndarray, permutations: int, seed: int) -> FisherNull:
    """Permutation null of the Fisher ratio: its mean under shuffled labels and the observed ratio's p-value."""
    z = standardise(x)
    gram = z @ z.T
    observed = fisher_from_gram(gram, one_hot(y))[0]
    rng = np.random.default_rng(seed)
    onehot = one_hot(y)
    null = np.concatenate(
        [
            fisher_from_gram(gram, np.stack([onehot[rng.permutation(len(y))] for _ in range(chunk)]))
            for chunk in _chunks(permutations, 50)
        ]
    )
    return FisherNull(float(null.mean()), float((1 + (null >= observed).sum()) / (1 + permutations)))


def random_directions(x: np.ndarray, y: np.ndarray, draws: int, n_folds: int, seed: int) -> tuple[float, float]:
    """(mean pairwise cosine, centroid accuracy) when the emotion vectors are random unit directions."""
    rng = np.random.default_rng(seed)
    n_classes = int(y.max()) + 1
    cosines, accuracies = [], []
    for _ in range(draws):
        directions = rng.standard_normal((n_classes, x.shape[1]))
        cosines.append(mean_pairwise_cosine(directions))
        accuracies.append(centroid_scores(x, y, n_folds, seed, directions=directions).accuracy)
    return float(np.mean(cosines)), float(np.mean(accuracies))


def _chunks(total: int, size: int) -> list[int]:
    return [min(size, total - start) for start in range(0, total, size)]
