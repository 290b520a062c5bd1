"""Linear-algebra helpers the analyses share: unit vectors, cosines, class means, principal components."""

from __future__ import annotations

import numpy as np


def unit(x: np.ndarray) -> np.ndarray:
    """Rows [..., d] scaled to unit L2 norm; zero rows stay zero."""
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


def cosine_matrix(vectors: np.ndarray) -> np.ndarray:
    """Cosine of every pair of rows [n, d] -> [n, n]."""
    u = unit(vectors)
    return u @ u.T


def mean_pairwise_cosine(vectors: np.ndarray) -> float:
    """Mean cosine over distinct pairs of rows; for N centred vectors it sits near -1/(N-1). A zero row has
    cosine 0 with every row. ValueError with fewer than two rows (no pair)."""
    n = len(vectors)
    if n < 2:
        raise ValueError(f"a mean pairwise cosine needs two rows or more, not {n}")
    sim = cosine_matrix(vectors)
    return float((sim.sum() - np.trace(sim)) / (n * (n - 1)))


def cosine_floor(n: int) -> float:
    """The mean pairwise cosine of n vectors that sum to zero and have equal norms."""
    return -1.0 / (n - 1)


def class_means(x: np.ndarray, y: np.ndarray, n_classes: int) -> np.ndarray:
    """Mean of the rows of each class: [n, ...] with labels y in 0..n_classes-1 -> [n_classes, ...]."""
    return np.stack([x[y == c].mean(axis=0) for c in range(n_classes)])


def standardise(x: np.ndarray) -> np.ndarray:
    """Columns centred and scaled to unit standard deviation (constant columns only centred)."""
    scale = x.std(axis=0)
    return (x - x.mean(axis=0)) / np.where(scale > 0, scale, 1.0)


def centred_pc_scores(centred: np.ndarray, components: int) -> tuple[np.ndarray, np.ndarray]:
    """Scores [n, k] of already-centred rows on their k leading principal components, and the share of
    variance [min(n, d)] each component explains (by SVD); all zero when the rows do not vary."""
    u, s, _ = np.linalg.svd(centred, full_matrices=False)
    k = min(components, len(s))
    total = (s**2).sum()
    return u[:, :k] * s[:k], s**2 / total if total > 0 else np.zeros_like(s)


def pc_scores(x: np.ndarray, components: int) -> np.ndarray:
    """Scores [n, k] of rows [n, d] on their k leading principal components (centred, not scaled)."""
    return centred_pc_scores(x - x.mean(axis=0), components)[0]
