"""The statistics on synthetic activations whose structure is known."""

import numpy as np
import pytest

from emoaudit.analysis import baselines
from emoaudit.analysis.methods import affect_alignment, cohens_d, compare_methods
from emoaudit.analysis.heldout import heldout_score
from emoaudit.analysis.geometry import cosine_floor, mean_pairwise_cosine
from emoaudit.analysis.separation import (
    centroid_scores,
    fisher_ratio,
    principal_components,
    probe_accuracy,
    standardised_gram,
)
from emoaudit.analysis.sweep import choose_layer

N_CLASSES, PER_CLASS, HIDDEN, N_LAYERS, PLANTED = 8, 12, 48, 7, 4


def synthetic(seed: int = 0, strength: float = 2.0, offset: float = 30.0) -> tuple[np.ndarray, np.ndarray]:
    """Activations [n, layers, hidden] with a shared offset (anisotropy) and class structure peaking at PLANTED."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(N_CLASSES), PER_CLASS)
    centres = rng.standard_normal((N_CLASSES, HIDDEN))
    shared = rng.standard_normal(HIDDEN) * offset
    layers = []
    for layer in range(N_LAYERS):
        signal = strength * max(0.0, 1 - abs(layer - PLANTED) / 3)
        layers.append(shared + signal * centres[y] + rng.standard_normal((len(y), HIDDEN)))
    return np.stack(layers, axis=1), y


def score_curve(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.array(
        [
            np.log(fisher_ratio(x[:, i], y) / baselines.fisher_null(standardised_gram(x[:, i]), y, 50, 0).mean)
            for i in range(x.shape[1])
        ]
    )


def test_planted_separation_is_found_at_the_planted_layer() -> None:
    x, y = synthetic()
    assert choose_layer(score_curve(x, y), 3) == PLANTED
    at = x[:, PLANTED]
    assert probe_accuracy(at, y, 4, 16, 0) > 0.9
    assert centroid_scores(at, y, 4, 0).accuracy > 0.9
    assert baselines.fisher_null(standardised_gram(at), y, 100, 0).p_value < 0.02


def test_pure_noise_is_not_called_separated() -> None:
    x, y = synthetic(strength=0.0)
    at = x[:, PLANTED]
    assert baselines.fisher_null(standardised_gram(at), y, 200, 1).p_value > 0.05
    assert probe_accuracy(at, y, 4, 16, 0) < 0.3
    assert abs(score_curve(x, y)).max() < 0.15


def test_anisotropy_baselines_see_the_shared_offset() -> None:
    x, y = synthetic(strength=0.0)
    raw_means = np.stack([x[y == c, 0].mean(axis=0) for c in range(N_CLASSES)])
    # The raw-cosine metric of the literature calls pure noise "similar": the reference explains it away.
    assert mean_pairwise_cosine(raw_means) > 0.9
    assert baselines.reference_cosine(x[:PER_CLASS, 0]) > 0.9
    cos, acc = baselines.random_directions(x[:, PLANTED], y, 10, 4, 0)
    assert abs(cos) < 0.1 and acc < 0.3
    centred = raw_means - raw_means.mean(axis=0)
    assert mean_pairwise_cosine(centred) == pytest.approx(cosine_floor(N_CLASSES), abs=0.05)


def test_shuffled_probe_is_at_chance_where_the_real_probe_is_not() -> None:
    x, y = synthetic()
    assert baselines.shuffled_probe_accuracy(principal_components(x[:, PLANTED], 16), y, 4, 3, 0) < 0.3


def test_method_comparison_statistics() -> None:
    rng = np.random.default_rng(0)
    better, worse = rng.normal(1.0, 0.2, 20), rng.normal(0.0, 0.2, 20)
    vectors = rng.standard_normal((20, 16))
    result = compare_methods(
        ("a", "b"), (better, worse), (vectors, vectors + 0.01 * rng.standard_normal((20, 16))), 3, "margin"
    )
    assert result.mann_whitney_p < 1e-5 and result.cohens_d > 3
    assert result.similarity_spearman > 0.95 and result.vector_cosine_mean > 0.99
    assert cohens_d(worse, better) == pytest.approx(-result.cohens_d)


def test_affect_alignment_and_heldout_scoring_recover_planted_valence() -> None:
    rng = np.random.default_rng(0)
    valence = np.linspace(-1, 1, 10)
    axis = rng.standard_normal(32)
    vectors = np.outer(valence, axis) * 3 + rng.standard_normal((10, 32)) * 0.5
    alignment = affect_alignment(vectors, {"valence": valence})
    assert alignment["valence"].component == 1 and abs(alignment["valence"].r) > 0.9
    y = np.repeat(np.arange(10), 5)
    samples = 50 + vectors[y] + rng.standard_normal((50, 32)) * 0.5
    score = heldout_score(samples, y, vectors, valence)
    assert score.accuracy > 0.8 and score.top3 >= score.accuracy and score.valence_auc > 0.95


def test_probe_is_scikit_learns_shrinkage_lda() -> None:
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    from emoaudit.analysis.separation import shrinkage_lda_predictions

    x, y = synthetic(strength=0.4)
    scores = principal_components(x[:, PLANTED], 16)
    train, test = np.arange(len(y)) % 4 != 0, np.arange(len(y)) % 4 == 0
    lda = LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto").fit(scores[train], y[train])
    ours = shrinkage_lda_predictions(scores[train], y[train], scores[test])
    assert 0.2 < (ours == y[test]).mean() < 1.0  # neither trivial nor perfect: the decisions are tested
    np.testing.assert_array_equal(ours, lda.predict(scores[test]))
