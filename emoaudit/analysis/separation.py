"""How well emotions separate in one layer's activations, and which layer separates them best."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn import config_context
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.model_selection import StratifiedKFold

from emoaudit.analysis.geometry import centred_pc_scores, class_means, standardise, unit


@dataclass(frozen=True)
class CentroidScores:
    """Cross-validated classification of samples by cosine to the class mean directions (the vectors)."""

    accuracy: float
    margins: np.ndarray  # per sample: cosine to its own class direction minus the best other one
    predictions: np.ndarray


def folds(y: np.ndarray, n_folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
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
    # A plain loop under skipped validation: cross_val_score's per-fit machinery (clone, scorer, parameter
    # and array checks) took longer than the fits themselves, 1,200 times per audit.
    accuracies = []
    with config_context(assume_finite=True, skip_parameter_validation=True):
        for train, test in folds(y, n_folds, seed):
            probe = LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto").fit(scores[train], y[train])
            accuracies.append(float((probe.predict(scores[test]) == y[test]).mean()))
    return float(np.mean(accuracies))


def principal_components(x: np.ndarray, components: int) -> np.ndarray:
    """Scores on the leading principal components of standardised features."""
    return centred_pc_scores(standardise(x), components)[0]


def centroid_scores(
    x: np.ndarray, y: np.ndarray, n_folds: int, seed: int, directions: np.ndarray | None = None
) -> CentroidScores:
    """Classify held-out folds by cosine to class directions learnt on the other folds.

    With `directions` given (e.g. random ones), those fixed directions replace the learnt ones.
    """
    n_classes = int(y.max()) + 1
    margins = np.zeros(len(y))
    predictions = np.zeros(len(y), dtype=int)
    for train, test in folds(y, n_folds, seed):
        means = class_means(x[train], y[train], n_classes)
        centre = means.mean(axis=0)
        dirs = unit(means - centre if directions is None else directions)
        sim = unit(x[test] - centre) @ dirs.T
        own = sim[np.arange(len(test)), y[test]]
        sim_others = sim.copy()
        sim_others[np.arange(len(test)), y[test]] = -np.inf
        margins[test] = own - sim_others.max(axis=1)
        predictions[test] = sim.argmax(axis=1)
    return CentroidScores(float((predictions == y).mean()), margins, predictions)


def fisher_ratio(x: np.ndarray, y: np.ndarray) -> float:
    """Between-class over within-class variance per degree of freedom, on standardised features."""
    z = standardise(x)
    return float(fisher_from_gram(z @ z.T, one_hot(y))[0])


def fisher_from_gram(gram: np.ndarray, onehots: np.ndarray) -> np.ndarray:
    """Fisher ratios for one or many label assignments [.., n, C] from the Gram matrix of centred data."""
    onehots = onehots if onehots.ndim == 3 else onehots[None]
    counts = onehots.sum(axis=1)  # [P, C]
    between = (onehots * np.matmul(gram, onehots)).sum(axis=1) / counts  # BLAS, not einsum's loops
    n, c = onehots.shape[1], onehots.shape[2]
    total = np.trace(gram)
    between_sum = between.sum(axis=1)
    within = total - between_sum
    return (between_sum / (c - 1)) / (within / (n - c))


def one_hot(y: np.ndarray) -> np.ndarray:
    return np.eye(int(y.max()) + 1)[y]
