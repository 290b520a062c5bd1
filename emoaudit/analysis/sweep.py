"""The layer sweep: separation and its baselines at every layer for each method, the rule that picks
the emotion layer, and what is measured at that layer (held-out scores, the method comparison)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from emoaudit.analysis import baselines
from emoaudit.analysis.geometry import class_means, cosine_floor, cosine_matrix, mean_pairwise_cosine, pc_scores
from emoaudit.analysis.heldout import heldout_score
from emoaudit.analysis.methods import affect_alignment, compare_methods
from emoaudit.results.extraction import MethodComparison
from emoaudit.analysis.separation import (
    centroid_scores,
    fisher_from_gram,
    gram_components,
    one_hot,
    probe_accuracy_on,
    standardised_gram,
)
from emoaudit.results.extraction import AtLayer, Curves, HeldoutCurves, LayerSweep
from emoaudit.capture.activations import Activations
from emoaudit.errors import EmoauditError
from emoaudit.capture.stimuli import METHODS
from emoaudit.spec import AuditSpec, Profile
from emoaudit.vectors import EmotionVectors


def smooth(curve: Sequence[float | None], width: int) -> list[float | None]:
    """Moving average with the window shrunk at the ends, so every layer keeps a value; undefined layers
    (None) are left out of each window, and a window of only undefined layers stays None."""
    half = max(width, 1) // 2
    windows = [[v for v in curve[max(0, i - half) : i + half + 1] if v is not None] for i in range(len(curve))]
    return [float(np.mean(w)) if w else None for w in windows]


def best_layer(score: Sequence[float | None], width: int) -> int | None:
    """The layer, final block excluded, whose smoothed baseline-corrected separation is highest (the first
    of equals); None when no such layer has a defined score."""
    smoothed = smooth(score, width)[:-1]
    defined = [(v, -i) for i, v in enumerate(smoothed) if v is not None]
    return -max(defined)[1] if defined else None


def choose_layer(score: Sequence[float | None], width: int) -> int:
    """`best_layer`, where a layer must be chosen. Raises EmoauditError when no layer has a defined score
    (no layer's samples vary: e.g. a model that writes the same text whatever it is asked)."""
    chosen = best_layer(score, width)
    if chosen is None:
        raise EmoauditError(
            "no layer has a defined separation score: the activations do not vary between emotions at any "
            "layer (does the model write the same text whatever it is asked?)"
        )
    return chosen


def layer_rule(method: str, width: int) -> str:
    """How `choose_layer` chose, in words, for results.json."""
    return (
        f"argmax over layers but the last of the {method} method's "
        f"log(Fisher ratio / its shuffled-label null mean), moving average of {width} layers"
    )


@dataclass(frozen=True)
class LayerScore:
    """One layer's Fisher ratio, its shuffled-label null and the layer score log(ratio / null mean); the
    ratio and score are None where undefined or unbounded, `undefined` saying why."""

    fisher: float | None
    null: baselines.FisherNull
    score: float | None
    undefined: str | None


def layer_score(gram: np.ndarray, y: np.ndarray, permutations: int, seed: int) -> LayerScore:
    """`LayerScore` of one layer, from the `standardised_gram` [n, n] of its samples."""
    ratio = float(fisher_from_gram(gram, one_hot(y))[0])
    null = baselines.fisher_null(gram, y, permutations, seed)
    if np.isnan(ratio):
        return LayerScore(None, null, None, "no sample differs from another: the Fisher ratio is 0/0")
    if np.isinf(ratio):
        return LayerScore(None, null, None, "every emotion's samples coincide: the Fisher ratio is unbounded")
    if null.mean is None or null.mean <= 0 or ratio <= 0:
        return LayerScore(ratio, null, None, "the Fisher ratio or its null mean is 0: log(ratio / null) is undefined")
    return LayerScore(ratio, null, float(np.log(ratio / null.mean)), None)


def analyse_method(
    acts: Activations, vectors: EmotionVectors, spec: AuditSpec, profile: Profile, seed: int, tick: Callable[[], None]
) -> LayerSweep:
    """Separation curves and their baselines over every layer for one method; `tick` after each layer."""
    x_all, y = emotion_samples(acts, spec)
    reference = acts.of(spec.reference).numpy()
    emotions = spec.emotion_names
    analysis = spec.analysis
    curves: dict[str, list[float]] = {
        k: []
        for k in (
            "cosine_mean",
            "raw_cosine_mean",
            "reference_cosine",
            "similarity_above_reference",
            "probe_accuracy",
            "probe_accuracy_shuffled",
            "centroid_accuracy",
            "random_direction_accuracy",
            "random_direction_cosine",
            "fisher_p",
        )
    }
    # None where a layer's ratio is undefined or unbounded (`layer_score`), the reason in `undefined`
    ratios: dict[str, list[float | None]] = {"fisher_ratio": [], "fisher_null_mean": [], "score": []}
    undefined: dict[int, str] = {}
    for layer in range(x_all.shape[1]):
        x = x_all[:, layer].astype(np.float64)
        raw_cos = mean_pairwise_cosine(class_means(x, y, len(emotions)))
        ref_cos = baselines.reference_cosine(reference[:, layer].astype(np.float64))
        # The standardised Gram matrix and the principal components derived from it are shared by the
        # Fisher ratio, its null, the probe and its shuffled-label refits: one n × n problem per layer.
        gram = standardised_gram(x)
        components = gram_components(gram, analysis.probe_components)
        scored = layer_score(gram, y, profile.permutations, seed)
        if scored.undefined:
            undefined[layer] = scored.undefined
        rand_cos, rand_acc = baselines.random_directions(x, y, analysis.random_draws, profile.cv_folds, seed)
        values = {
            "cosine_mean": mean_pairwise_cosine(vectors.vectors[:, layer].numpy().astype(np.float64)),
            "raw_cosine_mean": raw_cos,
            "reference_cosine": ref_cos,
            "similarity_above_reference": raw_cos - ref_cos,
            "probe_accuracy": probe_accuracy_on(components, y, profile.cv_folds, seed),
            "probe_accuracy_shuffled": baselines.shuffled_probe_accuracy(
                components, y, profile.cv_folds, analysis.probe_shuffles, seed
            ),
            "centroid_accuracy": centroid_scores(x, y, profile.cv_folds, seed).accuracy,
            "random_direction_accuracy": rand_acc,
            "random_direction_cosine": rand_cos,
            "fisher_p": scored.null.p_value,
        }
        for key, value in values.items():
            curves[key].append(float(value))
        ratios["fisher_ratio"].append(scored.fisher)
        ratios["fisher_null_mean"].append(scored.null.mean)
        ratios["score"].append(scored.score)
        tick()
    scores = ratios["score"]
    chosen = best_layer(scores, analysis.layer_smoothing)
    return LayerSweep(
        n_samples=int(len(acts.labels)),
        pooling=acts.pooling,
        cosine_floor=cosine_floor(len(emotions)),
        chance_accuracy=1.0 / len(emotions),
        curves=Curves(
            cosine_mean=curves["cosine_mean"],
            raw_cosine_mean=curves["raw_cosine_mean"],
            reference_cosine=curves["reference_cosine"],
            similarity_above_reference=curves["similarity_above_reference"],
            probe_accuracy=curves["probe_accuracy"],
            probe_accuracy_shuffled=curves["probe_accuracy_shuffled"],
            centroid_accuracy=curves["centroid_accuracy"],
            random_direction_accuracy=curves["random_direction_accuracy"],
            random_direction_cosine=curves["random_direction_cosine"],
            fisher_ratio=ratios["fisher_ratio"],
            fisher_null_mean=ratios["fisher_null_mean"],
            fisher_p=curves["fisher_p"],
            score=ratios["score"],
            undefined=undefined or None,
        ),
        score=scores,
        chosen_layer=chosen,
        chosen_relative_depth=chosen / max(len(scores) - 1, 1) if chosen is not None else None,
        removed_neutral_components=list(vectors.origin.removed_components),
    )


def heldout_curves(held: Activations, vectors: EmotionVectors, spec: AuditSpec) -> HeldoutCurves:
    """The vectors' held-out scores at every layer (`heldout_score`)."""
    x_all, y = emotion_samples(held, spec)
    valence = np.array([e.valence for e in spec.emotions])
    scores = [
        heldout_score(
            x_all[:, layer].astype(np.float64), y, vectors.vectors[:, layer].numpy().astype(np.float64), valence
        )
        for layer in range(x_all.shape[1])
    ]
    return HeldoutCurves(
        accuracy=[s.accuracy for s in scores],
        top3=[s.top3 for s in scores],
        valence_auc=[s.valence_auc for s in scores],
        n_samples=int(len(y)),
        chance_accuracy=1.0 / len(spec.emotions),
    )


def at_layer(
    acts: Activations, vectors: EmotionVectors, spec: AuditSpec, layer: int, profile: Profile, seed: int
) -> AtLayer:
    """Cross-validated centroid margins and recall per emotion, and the vectors' geometry, at `layer`."""
    x_all, y = emotion_samples(acts, spec)
    scores = centroid_scores(x_all[:, layer].astype(np.float64), y, profile.cv_folds, seed)
    v = vectors.vectors[:, layer].numpy().astype(np.float64)
    ratings = {
        "valence": np.array([e.valence for e in spec.emotions]),
        "arousal": np.array([e.arousal for e in spec.emotions]),
    }
    n = len(spec.emotions)
    recall = [float((scores.predictions[y == c] == c).mean()) for c in range(n)]
    return AtLayer(
        layer=layer,
        per_emotion_margin=class_means(scores.margins, y, n).tolist(),
        per_emotion_recall=recall,
        similarity=cosine_matrix(v).round(4).tolist(),
        affect=affect_alignment(v, ratings),
        pc_scores=pc_scores(v, 3).round(4).tolist(),  # affect_alignment picks among the first three
    )


def compare_at_layer(at_layers: dict[str, AtLayer], vectors: dict[str, EmotionVectors], layer: int) -> MethodComparison:
    """The two methods at the emotion layer, on the per-emotion margins `at_layer` already measured."""
    margins = [np.array(at_layers[m].per_emotion_margin) for m in METHODS]
    return compare_methods(
        (METHODS[0], METHODS[1]),
        (margins[0], margins[1]),
        (
            vectors[METHODS[0]].vectors[:, layer].numpy().astype(np.float64),
            vectors[METHODS[1]].vectors[:, layer].numpy().astype(np.float64),
        ),
        layer,
        "per-emotion mean cross-validated centroid margin",
    )


def emotion_samples(acts: Activations, spec: AuditSpec) -> tuple[np.ndarray, np.ndarray]:
    """Activations [n, layers, hidden] and class indices of the emotion samples (the reference left out)."""
    index = {e: i for i, e in enumerate(spec.emotion_names)}
    rows = [i for i, label in enumerate(acts.labels) if label in index]
    return acts.values[rows].numpy(), np.array([index[acts.labels[i]] for i in rows])
