"""The study's figures, as inline SVG strings (matplotlib escapes every text it writes)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

# pyplot as the report's plots import it: with the Agg backend, chosen before pyplot loads.
from emoaudit.report.plots import METHOD_COLOURS, REGIME_COLOURS, plt, to_svg
from emoaudit.results.evidence import ModelEvidence
from emoaudit.results.steering import REGIMES, Regime


def depth_curves(models: Sequence[tuple[str, ModelEvidence]], band: tuple[float, float] | None) -> str:
    """Each model's layer score against relative depth, its emotion layer marked; `band`: the mid-depth claim's."""
    fig, ax = plt.subplots(figsize=(8, 3.8))
    if band is not None:
        ax.axvspan(*band, color="#eeeeee", label=f"mid-depth [{band[0]:g}, {band[1]:g}]")
    for name, e in models:
        depth = np.arange(e.n_layers) / max(e.n_layers - 1, 1)
        curve = [float("nan") if v is None else v for v in e.score]  # undefined layers: gaps
        (line,) = ax.plot(depth, curve, label=f"{name} ({e.n_layers} layers)")
        ax.plot([e.relative_depth], [curve[e.emotion_layer]], marker="o", color=line.get_color())
    ax.axhline(0, color="grey", linewidth=0.6)
    ax.set_xlabel("relative depth: layer / (layers - 1)")
    ax.set_ylabel("log(Fisher ratio / shuffled null)")
    ax.set_title("Layer score of the method that chooses the emotion layer (dot: emotion layer)", fontsize=10)
    ax.legend(fontsize=7, loc="best")
    return to_svg(fig)


def method_effects(models: Sequence[tuple[str, float, float | None]]) -> str:
    """Cohen's d of generation over comprehension per model, labelled with its corrected p."""
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(models) + 1.4))
    y = np.arange(len(models))
    d = [m[1] for m in models]
    ax.barh(y, d, color=[METHOD_COLOURS["generation"] if v > 0 else METHOD_COLOURS["comprehension"] for v in d])
    for i, (_, value, p) in enumerate(models):
        # Right of the zero line or of a positive bar, where no bar hides the label.
        label = f"p_BH {p:.2g}" if p is not None else ""
        ax.annotate(label, (max(value, 0.0), i), fontsize=7, xytext=(4, -3), textcoords="offset points")
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_yticks(y, [m[0] for m in models], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("Cohen's d: > 0 generation separates better, < 0 comprehension")
    return to_svg(fig)


def regime_shares(rows: Sequence[tuple[str, Mapping[Regime, int]]]) -> str:
    """Stacked bars: the share of steering trials in each regime, per model or family."""
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(rows) + 1.4))
    y = np.arange(len(rows))
    left = np.zeros(len(rows))
    for regime in REGIMES:
        share = np.array([counts[regime] / max(sum(counts.values()), 1) for _, counts in rows])
        ax.barh(y, share, left=left, color=REGIME_COLOURS[regime], label=regime)
        left += share
    ax.set_yticks(y, [name for name, _ in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of steering trials")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    return to_svg(fig)


def heldout_accuracy(models: Sequence[tuple[str, ModelEvidence]]) -> str:
    """Held-out accuracy of each method's vectors at the emotion layer, per model, against chance."""
    fig, ax = plt.subplots(figsize=(7, 0.55 * len(models) + 1.4))
    y = np.arange(len(models))
    methods = list(METHOD_COLOURS)
    height = 0.8 / len(methods)
    for k, method in enumerate(methods):
        accuracy = [e.methods[method].heldout_accuracy for _, e in models]
        ax.barh(y + (k - 0.5) * height, accuracy, height=height, color=METHOD_COLOURS[method], label=method)
    for i, (_, e) in enumerate(models):
        chance = e.methods[methods[0]].chance_accuracy
        ax.plot([chance, chance], [i - 0.45, i + 0.45], color="black", linewidth=1)
    ax.set_yticks(y, [name for name, _ in models], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("held-out accuracy at the emotion layer (black: chance)")
    ax.legend(fontsize=7)
    return to_svg(fig)
