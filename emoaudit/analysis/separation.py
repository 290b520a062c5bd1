"""How well emotions separate in one layer's activations, and which layer separates them best."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import linalg
from sklearn.model_selection import StratifiedKFold

from emoaudit.analysis.geometry import class_means, standardise, unit


@dataclass(frozen=True)
class CentroidScores:
    """Cross-validated classification of samples by cosine to the class mean directions (the vectors)."""

    accuracy: float
    margins: np.ndarray  # per sample: cosine to its own class direction minus the best other one
    predictions: np.ndarray


def check_classes(y: np.ndarray) -> None:
    """Raise ValueError unless labels 0..C-1 [n] name at least two classes, each with two samples or more:
    what separation between classes, and a fold that holds every class out once, need to be defined."""
    counts = np.bincount(y) if len(y) else np.zeros(0, dtype=int)
    if (counts > 0).sum() < 2 or counts.min() < 2:
        raise ValueError(f"separation needs two classes or more with two samples each, not counts {counts.tolist()}")


def folds(y: np.ndarray, n_folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    check_classes(y)
    smallest = int(np.bincount(y).min())
    splitter = StratifiedKFold(n_splits=max(2, min(n_folds, smallest)), shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros(len(y)), y))


def probe_accuracy(x: np.ndarray, y: np.ndarray, n_folds: int, components: int, seed: int) -> float:
    """Cross-validated accuracy of a linear probe (shrinkage LDA) on the layer's leading principal components.

    The components are fit once on all samples without their labels, so no label leaks across
    folds, and the shuffled-label refits of the baseline share them. Shrinkage LDA rather than
    logistic regression: with a few hundred samples it is as accurate and has a closed form.
    """
    return probe_accuracy_on(principal_components(x, components), y, n_folds, seed)


def probe_accuracy_on(scores: np.ndarray, y: np.ndarray, n_folds: int, seed: int) -> float:
    """The probe's cross-validated accuracy on given features (e.g. principal component scores)."""
    accuracies = [
        float((shrinkage_lda_predictions(scores[train], y[train], scores[test]) == y[test]).mean())
        for train, test in folds(y, n_folds, seed)
    ]
    return float(np.mean(accuracies))


def shrinkage_lda_predictions(x: np.ndarray, y: np.ndarray, test: np.ndarray) -> np.ndarray:
    """Classes 0..C-1 predicted for `test` [m, k] by a shrinkage LDA fit on `x` [n, k], labels `y` [n].

    The computation of scikit-learn's `LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto")`
    (Ledoit-Wolf covariance of each class's standardised features, rescaled, weighted by the class
    priors; Duda, Hart & Stork 2001, 2.6.2), written out: its per-fit validation and per-class
    estimator objects cost more than the arithmetic, 20 fits per layer and method. Every class in
    0..C-1 must occur in `y`; tests/test_separation.py holds it to scikit-learn's predictions.
    """
    n, k = x.shape
    classes = int(y.max()) + 1
    counts = np.bincount(y, minlength=classes)
    priors = counts / n
    means = np.stack([x[y == c].mean(axis=0) for c in range(classes)])
    covariance = np.zeros((k, k))
    for c in range(classes):
        covariance += priors[c] * _ledoit_wolf_standardised(x[y == c])
    coef = linalg.lstsq(covariance, means.T)[0].T
    intercept = -0.5 * np.diag(means @ coef.T) + np.log(priors)
    return (test @ coef.T + intercept).argmax(axis=1)


def _ledoit_wolf_standardised(x: np.ndarray) -> np.ndarray:
    """scikit-learn's `_cov(x, "auto")`: the Ledoit-Wolf covariance [k, k] of standardised x, rescaled."""
    scale = x.std(axis=0)
    scale[scale < 10 * np.finfo(scale.dtype).eps] = 1.0
    z = (x - x.mean(axis=0)) / scale
    z = z - z.mean(axis=0)
    n, k = z.shape
    z2 = z**2
    trace = z2.sum(axis=0) / n
    mu = trace.sum() / k
    beta_sum = np.sum(z2.T @ z2)
    delta_sum = np.sum((z.T @ z) ** 2) / n**2
    beta = (beta_sum / n - delta_sum) / (k * n)
    delta = (delta_sum - 2.0 * mu * trace.sum() + k * mu**2) / k
    shrinkage = 0.0 if min(beta, delta) == 0 else min(beta, delta) / delta
    empirical = z.T @ z / n
    shrunk = (1.0 - shrinkage) * empirical
    shrunk.flat[:: k + 1] += shrinkage * np.trace(empirical) / k
    return scale[:, None] * shrunk * scale[None, :]


def principal_components(x: np.ndarray, components: int) -> np.ndarray:
    """Scores [n, k] on the leading principal components of standardised features."""
    return gram_components(standardised_gram(x), components)


def standardised_gram(x: np.ndarray) -> np.ndarray:
    """The Gram matrix [n, n] of the standardised rows of x [n, d]: what the Fisher ratio, its null and the
    probe's principal components all derive from, computed once per layer."""
    z = standardise(x)
    return z @ z.T


def gram_components(gram: np.ndarray, components: int) -> np.ndarray:
    """Scores [n, k] on the k leading principal components of centred rows, from their Gram matrix [n, n].

    The scores are U·S of the rows' SVD, each component up to its sign (which no probe here depends
    on); from the n × n eigenproblem rather than the n × d SVD, so their cost does not grow with the
    hidden size. Eigenvalues below zero are rounding and give zero scores.
    """
    values, vectors = np.linalg.eigh(gram)
    k = min(components, len(values))
    top = np.argsort(values)[::-1][:k]
    return vectors[:, top] * np.sqrt(np.clip(values[top], 0.0, None))


def centroid_scores(x: np.ndarray, y: np.ndarray, n_folds: int, seed: int) -> CentroidScores:
    """Classify held-out folds by cosine to class directions learnt on the other folds."""
    n_classes = int(y.max()) + 1
    margins = np.zeros(len(y))
    predictions = np.zeros(len(y), dtype=int)
    for train, test in folds(y, n_folds, seed):
        means = class_means(x[train], y[train], n_classes)
        centre = means.mean(axis=0)
        dirs = unit(means - centre)
        sim = unit(x[test] - centre) @ dirs.T
        own = sim[np.arange(len(test)), y[test]]
        sim_others = sim.copy()
        sim_others[np.arange(len(test)), y[test]] = -np.inf
        margins[test] = own - sim_others.max(axis=1)
        predictions[test] = sim.argmax(axis=1)
    return CentroidScores(float((predictions == y).mean()), margins, predictions)


def fisher_ratio(x: np.ndarray, y: np.ndarray) -> float:
    """Between-class over within-class variance per degree of freedom, on standardised features; inf or NaN
    in the degenerate cases `fisher_from_gram` names."""
    check_classes(y)
    return float(fisher_from_gram(standardised_gram(x), one_hot(y))[0])


def fisher_from_gram(gram: np.ndarray, onehots: np.ndarray) -> np.ndarray:
    """Fisher ratios for one or many label assignments [.., n, C] from the Gram matrix of centred data.

    Degenerate cases, told apart for the callers that record them (`sweep.layer_score`): +inf where no
    sample differs from its class's mean but the classes differ (unbounded), NaN where no sample differs
    at all (undefined: 0/0)."""
    onehots = onehots if onehots.ndim == 3 else onehots[None]
    counts = onehots.sum(axis=1)  # [P, C]
    p, n, c = onehots.shape
    # One [n, n] × [n, P·C] product rather than P small ones.
    spread = (gram @ onehots.transpose(1, 0, 2).reshape(n, p * c)).reshape(n, p, c).transpose(1, 0, 2)
    between = (onehots * spread).sum(axis=1) / counts
    total = np.trace(gram)
    between_sum = between.sum(axis=1)
    # Rounding leaves a within-class sum of ~1e-16 × total where the classes' samples coincide.
    within = np.where(total - between_sum > 1e-9 * max(total, 1e-300), total - between_sum, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = (between_sum / (c - 1)) / (within / (n - c))
    return np.where(within > 0, ratio, np.where(between_sum > 1e-9 * max(total, 1e-300), np.inf, np.nan))


def one_hot(y: np.ndarray) -> np.ndarray:
    return np.eye(int(y.max()) + 1)[y]
