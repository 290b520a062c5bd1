"""Reading a results file: JSON that is strictly JSON, valid against the JSON Schema generated from its types
(results/schema.py), then typed."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any, NoReturn

import jsonschema

from emoaudit.results.convert import from_dict
from emoaudit.results.document import RESULTS_SCHEMA_VERSION, Results
from emoaudit.results.extraction import (
    AtLayer,
    Curves,
    EmotionLayer,
    Extraction,
    HeldoutCurves,
    LayerSweep,
    VariantScores,
)
from emoaudit.results.schema import results_schema
from emoaudit.results.steering import RateEstimate, Steering
from emoaudit.errors import EmoauditError


def read_json(path: Path) -> Any:
    """A JSON file as Python values; NaN, Infinity and numbers too large for a float are refused.

    Python's json reads those (they are not JSON), and our own writer refuses to write them back.
    Raises EmoauditError for a missing file, bytes that are not UTF-8, or text that is not JSON.
    """
    if not path.is_file():
        raise EmoauditError(f"no results file at {path}")

    def non_finite(token: str) -> NoReturn:
        raise EmoauditError(f"{path} holds {token}, which is not JSON (numbers must be finite)")

    def finite(token: str) -> float:
        value = float(token)
        if not math.isfinite(value):
            non_finite(token)
        return value

    try:
        return json.loads(path.read_text(encoding="utf-8"), parse_constant=non_finite, parse_float=finite)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise EmoauditError(f"{path} is not JSON: {exc}") from exc


def read_results(path: Path) -> Results:
    """A results file, validated against the schema and read into `Results`; a bad one is a one-line
    EmoauditError saying where."""
    document = read_json(path)
    version = document.get("schema_version") if isinstance(document, dict) else None
    if isinstance(version, str) and version != RESULTS_SCHEMA_VERSION:
        raise EmoauditError(
            f"{path} has results schema {version}; this emoaudit reads {RESULTS_SCHEMA_VERSION}: "
            "rerun the audit (or report it with the emoaudit that wrote it)"
        )
    try:
        jsonschema.validate(document, results_schema())
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "top level"
        raise EmoauditError(f"{path} is not an emoaudit results file ({where}: {exc.message[:160]})") from exc
    results = from_dict(Results, document, f"{path} is not an emoaudit results file")
    if results.stages.extraction is not None:
        _check_layers(results.stages.extraction, path)
        _check_emotions(results.stages.extraction, path)
    steering = results.stages.steering
    if steering is not None:
        if len(steering.strengths) != len(steering.multipliers):
            raise EmoauditError(
                f"{path} is not an emoaudit results file (stages.steering.strengths: {len(steering.strengths)} "
                f"values for {len(steering.multipliers)} multipliers)"
            )
        _check_counts(steering, path)
    return results


def _nodes(node: object, where: str) -> Iterator[tuple[object, str]]:
    """Every dataclass inside `node` (itself included), parents before children, with its dotted path."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _nodes(value, f"{where}.{key}")
    elif is_dataclass(node):
        yield node, where
        for f in fields(node):
            yield from _nodes(getattr(node, f.name), f"{where}.{f.name}")


def _check_counts(steering: Steering, path: Path) -> None:
    """No rate counts more successes than trials (the report's binomial intervals and tests need k <= n)."""
    for node, where in _nodes(steering, "stages.steering"):
        if isinstance(node, RateEstimate) and not (
            0 <= node.successes <= node.trials and 0 <= node.control_successes <= node.control_trials
        ):
            raise EmoauditError(
                f"{path} is not an emoaudit results file ({where}: {node.successes} successes of {node.trials} "
                f"trials, {node.control_successes} of {node.control_trials} control trials)"
            )


def _check_emotions(extraction: Extraction, path: Path) -> None:
    """The geometry at the emotion layer has a row per emotion (the report plots it): similarity [E, E],
    principal-component scores [E, 2], margins and recalls [E]."""
    n = len(extraction.emotions)
    for method, results in extraction.methods.items():
        at = results.at_emotion_layer
        shapes = {
            "similarity": [len(row) for row in at.similarity] + [len(at.similarity)] == [n] * (n + 1),
            # three components since the report plots the ones the valence and arousal axes name; two before
            "pc_scores": len(at.pc_scores) == n and len({len(row) for row in at.pc_scores} - {2, 3}) == 0,
            "per_emotion_margin": len(at.per_emotion_margin) == n,
            "per_emotion_recall": len(at.per_emotion_recall) == n,
        }
        misfit = [name for name, fits in shapes.items() if not fits]
        if misfit:
            raise EmoauditError(
                f"{path} is not an emoaudit results file (stages.extraction.methods.{method}.at_emotion_layer."
                f"{misfit[0]}: not one row per emotion of {n})"
            )


# The per-layer lists and the layer indices of the extraction stage, by the class that holds them.
_PER_LAYER: dict[type, tuple[str, ...]] = {
    Curves: tuple(f.name for f in fields(Curves) if f.name != "undefined"),
    HeldoutCurves: ("accuracy", "top3", "valence_auc"),
    LayerSweep: ("score", "removed_neutral_components"),
    VariantScores: ("score", "centroid_accuracy", "probe_accuracy", "heldout_accuracy", "heldout_valence_auc"),
    EmotionLayer: ("score", "smoothed_score"),
}
_LAYER_INDEX: dict[type, str] = {
    LayerSweep: "chosen_layer",
    VariantScores: "chosen_layer",
    EmotionLayer: "index",
    AtLayer: "layer",
}


def _check_layers(extraction: Extraction, path: Path) -> None:
    """Every per-layer list holds one value per layer and every layer index names one: the JSON Schema cannot
    say so, and a report or comparison reads the curves at the emotion layer.

    Raises EmoauditError naming the first list or index that does not fit `n_layers`."""
    n = extraction.n_layers
    for node, where in _nodes(extraction, "stages.extraction"):
        for cls, names in _PER_LAYER.items():
            for name in names if isinstance(node, cls) else ():
                if len(getattr(node, name)) != n:
                    raise EmoauditError(
                        f"{path} is not an emoaudit results file ({where}.{name}: "
                        f"{len(getattr(node, name))} values for {n} layers)"
                    )
        for cls, name in _LAYER_INDEX.items():
            index = getattr(node, name) if isinstance(node, cls) else 0
            if index is not None and not 0 <= index < n:
                raise EmoauditError(
                    f"{path} is not an emoaudit results file ({where}.{name}: "
                    f"layer {getattr(node, name)} of {n} layers)"
                )
