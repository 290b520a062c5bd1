"""Comparing the two extraction methods (generation against comprehension), and the vectors' geometry
against reference affect ratings."""

from __future__ import annotations


import numpy as np
from scipy import stats

from emoaudit.results.extraction import AffectAxis, MethodComparison
from emoaudit.analysis.geometry import centred_pc_scores, cosine_matrix, unit


def cohens_d(a: np.ndarray, b: np.ndarray) -> float | None:
    """(mean a - mean b) / pooled standard deviation. With no spread: 0.0 when the means are equal, None
    when they differ (unbounded). ValueError with fewer than two values on either side (no spread to pool)."""
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"Cohen's d needs two values or more on each side, not {len(a)} and {len(b)}")
    pooled = np.sqrt(((len(a) - 1) * a.var(ddof=1) + (len(b) - 1) * b.var(ddof=1)) / (len(a) + len(b) - 2))
    if pooled > 0:
        return float((a.mean() - b.mean()) / pooled)
    return 0.0 if a.mean() == b.mean() else None


def compare_methods(
    names: tuple[str, str],
    separation: tuple[np.ndarray, np.ndarray],
    vectors: tuple[np.ndarray, np.ndarray],
    layer: int,
    statistic: str,
) -> MethodComparison:
    """`separation`: one value per emotion for each method, the `statistic` named; `vectors`: [emotions,
    hidden] for each, both at `layer`. Mann-Whitney U (two-sided) on the separations, Spearman's rho between
    the two emotion-similarity matrices (upper triangles)."""
    a, b = separation
    test = stats.mannwhitneyu(a, b, alternative="two-sided")
    upper = np.triu_indices(len(vectors[0]), k=1)
    sims = cosine_matrix(vectors[0])[upper], cosine_matrix(vectors[1])[upper]
    varies = all(len(s) > 1 and np.ptp(s) > 0 for s in sims)
    rho = stats.spearmanr(*sims) if varies else None
    unit_a, unit_b = unit(vectors[0]), unit(vectors[1])
    return MethodComparison(
        layer=layer,
        statistic=statistic,
        method_a=names[0],
        method_b=names[1],
        mean_a=float(a.mean()),
        mean_b=float(b.mean()),
        mann_whitney_u=float(test.statistic),
        mann_whitney_p=float(test.pvalue),
        cohens_d=cohens_d(a, b),
        similarity_spearman=float(rho.statistic) if rho is not None else None,
        similarity_spearman_p=float(rho.pvalue) if rho is not None else None,
        vector_cosine_mean=float((unit_a * unit_b).sum(axis=1).mean()),
    )


def affect_alignment(vectors: np.ndarray, ratings: dict[str, np.ndarray], components: int = 3) -> dict[str, AffectAxis]:
    """For each rating (valence, arousal): the leading principal component of the vectors that tracks it best.

    `vectors`: [emotions, hidden]; `ratings`: one value per emotion for each rating. A component whose
    scores do not vary, or a constant rating, has no correlation (None); the first such component is kept
    only when none has one.
    """
    scores, explained = centred_pc_scores(vectors - vectors.mean(axis=0), components)
    k = scores.shape[1]
    out = {}
    for name, rating in ratings.items():
        rs = [_pearson(scores[:, i], rating) for i in range(k)]
        best = int(np.argmax([abs(r) if r is not None else -1.0 for r in rs]))
        out[name] = AffectAxis(component=best + 1, r=rs[best], explained_variance=float(explained[best]))
    return out


def _pearson(a: np.ndarray, b: np.ndarray) -> float | None:
    """Pearson r, or None when either side is constant (0/0)."""
    if np.ptp(a) <= 1e-12 * max(float(np.abs(a).max()), 1e-300) or np.ptp(b) == 0:
        return None
    return float(np.corrcoef(a, b)[0, 1])
