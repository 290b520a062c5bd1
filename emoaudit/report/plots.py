"""Figures for the report, as inline SVG strings (matplotlib escapes every text it writes)."""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Sequence

import matplotlib

matplotlib.use("Agg")  # no display: figures are only ever written to SVG
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from emoaudit.results.extraction import Extraction  # noqa: E402
from emoaudit.results.steering import RateEstimate  # noqa: E402

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
    """The figure as SVG text; the same figure always gives the same bytes.

    matplotlib names clip paths and markers by a hash salted with a random UUID unless `svg.hashsalt` is
    set: salted with the figure's own labels, the ids come from the content (a re-rendered report is
    byte-identical, so `emoaudit verify` can vouch for it) and differ between the report's figures."""
    buffer = io.StringIO()
    labels = "|".join(t.get_text() for ax in fig.axes for t in (ax.title, ax.xaxis.label, ax.yaxis.label))
    with matplotlib.rc_context({"svg.hashsalt": f"emoaudit:{labels}"}):
        fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
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
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, frameon=False)  # off the curves
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
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)  # off the curves
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


def affect_map(
    scores: Sequence[Sequence[float]],
    labels: Sequence[str],
    valence: Sequence[float],
    title: str,
    axes: tuple[int, int] = (1, 2),
) -> str:
    """The vectors on the principal components `axes` (1-based: those the valence and arousal rows of the
    table name), coloured by the reference valence; labels placed apart so none overprints another."""
    points = np.array(scores)
    x, y = (a if a <= points.shape[1] else i + 1 for i, a in enumerate(axes))  # results with fewer columns
    if y == x:  # one component tracks both ratings: the other axis is the next component
        y = x % points.shape[1] + 1
    fig, ax = plt.subplots(figsize=(6.2, 5.0))
    dots = ax.scatter(points[:, x - 1], points[:, y - 1], c=valence, cmap="coolwarm_r", vmin=-1, vmax=1)
    spread = np.ptp(points[:, [x - 1, y - 1]], axis=0) + 1e-9
    ax.set_xlim(points[:, x - 1].min() - 0.08 * spread[0], points[:, x - 1].max() + 0.3 * spread[0])
    ax.set_ylim(points[:, y - 1].min() - 0.08 * spread[1], points[:, y - 1].max() + 0.12 * spread[1])
    for (px, py), (ly, label) in zip(
        points[:, [x - 1, y - 1]], _spread_labels(points[:, y - 1], spread[1], labels), strict=True
    ):
        ax.annotate(
            _drawable(label),
            (px, py),
            xytext=(px + 0.02 * spread[0], ly),
            fontsize=7,
            annotation_clip=False,
            arrowprops={"arrowstyle": "-", "color": "grey", "linewidth": 0.4}
            if abs(ly - py) > 0.01 * spread[1]
            else None,
        )
    ax.set_xlabel(f"PC{x}" + (" (the valence axis)" if x == axes[0] else ""))
    ax.set_ylabel(f"PC{y}" + (" (the arousal axis)" if y == axes[1] else ""))
    ax.set_title(_drawable(title), fontsize=10)
    fig.colorbar(dots, ax=ax, fraction=0.046, label="reference valence")
    return to_svg(fig)


def _spread_labels(ys: np.ndarray, span: float, labels: Sequence[str]) -> list[tuple[float, str]]:
    """Each label's y, moved apart from its neighbours' by at least a line of 7-point text (4% of the span),
    in the order of `labels`."""
    gap = 0.045 * span
    order = np.argsort(ys)
    placed = np.array(ys, dtype=float)
    for k in range(1, len(order)):
        below, here = order[k - 1], order[k]
        placed[here] = max(placed[here], placed[below] + gap)
    return [(float(placed[i]), label) for i, label in enumerate(labels)]


def rate_map(
    cells: dict[str, dict[str, RateEstimate]],
    strengths: Sequence[float],
    calibrated_range: float,
    above: Callable[[RateEstimate], bool],
) -> str:
    """Emotion × strength grid coloured by the surgical rate, each cell with its surgical trials of n, the
    random-direction controls' rate (c) under the same criterion, and ★ where `above` says the cell is
    surgical above its controls: the one rate the report quotes, never the most frequent regime."""
    emotions = list(cells)
    multipliers = list(next(iter(cells.values())))
    rates = np.array(
        [[cells[e][m].rate if cells[e][m].rate is not None else np.nan for m in multipliers] for e in emotions]
    )
    fig, ax = plt.subplots(figsize=(1.5 * len(multipliers) + 3, 0.36 * len(emotions) + 1.6))
    image = ax.imshow(rates, cmap="Greens", vmin=0, vmax=1, aspect="auto")
    for i, emotion in enumerate(emotions):
        for j, multiplier in enumerate(multipliers):
            r = cells[emotion][multiplier]
            control = "—" if r.control_rate is None else f"{r.control_rate:.0%}"
            star = "★ " if above(r) else ""
            dark = r.rate is not None and r.rate > 0.6
            ax.text(
                j,
                i,
                f"{star}{r.successes}/{r.trials} · c {control}",
                ha="center",
                va="center",
                fontsize=6.5,
                color="white" if dark else "black",
            )
    past = [j for j, m in enumerate(multipliers) if float(m) > calibrated_range]
    if past:
        ax.axvline(past[0] - 0.5, color="black", linestyle="--", linewidth=1)
    ax.set_xticks(
        range(len(multipliers)),
        [_drawable(f"×{m}\n({s:.2f})") for m, s in zip(multipliers, strengths, strict=True)],
        fontsize=7,
    )
    ax.set_yticks(range(len(emotions)), [_drawable(e) for e in emotions], fontsize=7)
    ax.set_xlabel("multiplier of the calibrated strength (strength in mean-norm units)")
    fig.colorbar(image, ax=ax, fraction=0.04, pad=0.02, label="surgical rate")
    return to_svg(fig)
