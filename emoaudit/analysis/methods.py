"""Comparing the two extraction methods (generation against comprehension), and the vectors' geometry
against reference affect ratings."""

from __future__ import annotations


import numpy as np
from scipy import stats

from emoaudit.results.extraction import AffectAxis, MethodComparison
from emoaudit.analysis.geometry import centred_pc_scores, cosine_matrix, unit


def cohens_d(a: np.ndarray, b: np.ndarray) -> float:
    pooled = np.sqrt(((len(a) - 1) * a.var(ddof=1) + (len(b) - 1) * b.var(ddof=1)) / (len(a) + len(b) - 2))
    return float((a.mean() - b.mean()) / pooled) if pooled > 0 else 0.0


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
    rho = stats.spearmanr(cosine_matrix(vectors[0])[upper], cosine_matrix(vectors[1])[upper])
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
        similarity_spearman=float(rho.statistic),
        similarity_spearman_p=float(rho.pvalue),
        vector_cosine_mean=float((unit_a * unit_b).sum(axis=1).mean()),
    )


def affect_alignment(vectors: np.ndarray, ratings: dict[str, np.ndarray], components: int = 3) -> dict[str, AffectAxis]:
    """For each rating (valence, arousal): the leading principal component of the vectors that tracks it best.

    `vectors`: [emotions, hidden]; `ratings`: one value per emotion for each rating.
    """
    scores, explained = centred_pc_scores(vectors - vectors.mean(axis=0), components)
    k = scores.shape[1]
    out = {}
    for name, rating in ratings.items():
        rs = [float(np.corrcoef(scores[:, i], rating)[0, 1]) for i in range(k)]
        best = int(np.argmax(np.abs(rs)))
        out[name] = AffectAxis(component=best + 1, r=rs[best], explained_variance=float(explained[best]))
    return out
