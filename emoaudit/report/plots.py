"""Figures for the report, as inline SVG strings (matplotlib escapes every text it writes)."""

from __future__ import annotations

import io
import re
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")  # no display: figures are only ever written to SVG
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402

from emoaudit.results.extraction import Extraction  # noqa: E402
from emoaudit.results.steering import RegimeCounts  # noqa: E402

REGIME_COLOURS = {
    "surgical": "#2e7d32",
    "no_effect": "#bdbdbd",
    "repetitive_collapse": "#f9a825",
    "explosive": "#c62828",
}
METHOD_COLOURS = {"comprehension": "#1565c0", "generation": "#ef6c00"}
# FreeType cannot lay out a lone surrogate (and would draw control characters as boxes at best).
_UNDRAWABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f\ud800-\udfff]")


def _drawable(text: str) -> str:
    """A label from the results (an emotion or method name) as matplotlib draws it verbatim: a pair of
    `$` would otherwise be parsed as mathtext, and fail on anything that is not."""
    return _UNDRAWABLE.sub("\ufffd", text).replace("$", r"\$")


def to_svg(fig: plt.Figure) -> str:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})  # same numbers, same file
    plt.close(fig)
    text = buffer.getvalue()
    return text[text.index("<svg") :]  # drop the XML prolog and doctype: the SVG is inlined in HTML


def layer_curves(extraction: Extraction) -> str:
    """Per layer: probe and held-out accuracy against their baselines; raw similarity against neutral text."""
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for name, analysis in extraction.methods.items():
        colour, method = METHOD_COLOURS.get(name, "black"), _drawable(name)
        curves = analysis.curves
        x = np.arange(len(curves.probe_accuracy))
        axes[0].plot(x, curves.probe_accuracy, color=colour, label=f"{method} probe")
        axes[0].plot(x, curves.probe_accuracy_shuffled, color=colour, linestyle=":", label=f"{method} shuffled")
        axes[1].plot(x, curves.raw_cosine_mean, color=colour, label=f"{method} between emotions")
        axes[1].plot(x, curves.reference_cosine, color=colour, linestyle=":", label=f"{method} neutral texts")
        axes[2].plot(x, analysis.heldout.accuracy, color=colour, label=f"{method} 20-way accuracy")
        axes[2].plot(x, analysis.heldout.valence_auc, color=colour, linestyle="--", label=f"{method} valence AUC")
    chance = next(iter(extraction.methods.values())).chance_accuracy
    titles = ("Cross-validated probe accuracy", "Raw mean pairwise cosine (anisotropy)", "Held-out sentences")
    for ax, title in zip(axes, titles, strict=True):
        ax.axvline(extraction.layer, color="black", linewidth=0.8)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("layer (output of block i)")
        ax.legend(fontsize=7, loc="best")
    axes[0].axhline(chance, color="grey", linewidth=0.6)
    axes[2].axhline(chance, color="grey", linewidth=0.6)
    return to_svg(fig)


def score_curve(extraction: Extraction) -> str:
    """The baseline-corrected separation each method reaches per layer, the same score on the input embeddings
    (dotted), and the chosen layer."""
    fig, ax = plt.subplots(figsize=(6.5, 3.2))
    for method, analysis in extraction.methods.items():
        colour = METHOD_COLOURS.get(method, "black")
        ax.plot(_gaps(analysis.score), color=colour, label=_drawable(method))
        if analysis.embedding is not None and analysis.embedding.score is not None:
            # the input embeddings: what static lexical geometry alone reaches
            ax.axhline(
                analysis.embedding.score, color=colour, linestyle=":", label=_drawable(f"{method}, input embeddings")
            )
    ax.plot(
        _gaps(extraction.emotion_layer.smoothed_score),
        color="black",
        linestyle="--",
        linewidth=0.8,
        label=_drawable(f"{extraction.emotion_layer.method}, smoothed"),
    )
    ax.axvline(extraction.layer, color="black", linewidth=0.8)
    ax.axhline(0, color="grey", linewidth=0.6)
    ax.set_xlabel("layer")
    ax.set_ylabel("log(Fisher ratio / shuffled null)")
    ax.legend(fontsize=8)
    return to_svg(fig)


def _gaps(curve: Sequence[float | None]) -> list[float]:
    """A curve with its undefined layers (None) as NaN, which matplotlib leaves as gaps in the line."""
    return [float("nan") if v is None else v for v in curve]


def heatmap(matrix: Sequence[Sequence[float]], labels: Sequence[str], title: str) -> str:
    labels = [_drawable(label) for label in labels]
    fig, ax = plt.subplots(figsize=(6, 5.2))
    image = ax.imshow(np.array(matrix), cmap="RdBu_r", vmin=-1, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=7)
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.set_title(_drawable(title), fontsize=10)
    fig.colorbar(image, ax=ax, fraction=0.046)
    return to_svg(fig)


def affect_map(scores: Sequence[Sequence[float]], labels: Sequence[str], valence: Sequence[float], title: str) -> str:
    """The vectors on their first two principal components, coloured by the reference valence."""
    points = np.array(scores)
    fig, ax = plt.subplots(figsize=(5.6, 4.6))
    dots = ax.scatter(points[:, 0], points[:, 1], c=valence, cmap="coolwarm_r", vmin=-1, vmax=1)
    for (x, y), label in zip(points, labels, strict=True):
        ax.annotate(_drawable(label), (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel("PC1")
    ax.set_ylabel("PC2")
    ax.set_title(_drawable(title), fontsize=10)
    fig.colorbar(dots, ax=ax, fraction=0.046, label="reference valence")
    return to_svg(fig)


def regime_map(regimes: dict[str, dict[str, RegimeCounts]], strengths: Sequence[float]) -> str:
    """Emotion × strength grid, each cell coloured by its most frequent regime, with the share of it."""
    order = list(REGIME_COLOURS)
    emotions = list(regimes)
    multipliers = list(next(iter(regimes.values())))
    codes = np.zeros((len(emotions), len(multipliers)))
    fig, ax = plt.subplots(figsize=(1.2 * len(multipliers) + 3, 0.32 * len(emotions) + 1.5))
    for i, emotion in enumerate(emotions):
        for j, multiplier in enumerate(multipliers):
            counts = regimes[emotion][multiplier]
            total = sum(counts.values()) or 1
            top = max(order, key=lambda r: counts.get(r, 0))
            codes[i, j] = order.index(top)
            ax.text(j, i, f"{counts.get(top, 0) / total:.0%}", ha="center", va="center", fontsize=7)
    ax.imshow(codes, cmap=ListedColormap(list(REGIME_COLOURS.values())), vmin=0, vmax=len(order) - 1, aspect="auto")
    ax.set_xticks(
        range(len(multipliers)),
        [_drawable(f"×{m}\n({s:.2f})") for m, s in zip(multipliers, strengths, strict=True)],
        fontsize=7,
    )
    ax.set_yticks(range(len(emotions)), [_drawable(e) for e in emotions], fontsize=7)
    ax.set_xlabel("multiplier of the calibrated strength (strength in mean-norm units)")
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in REGIME_COLOURS.values()]
    ax.legend(handles, order, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    return to_svg(fig)
