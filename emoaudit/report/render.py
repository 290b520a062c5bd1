"""The HTML risk report: one self-contained file (inline styles and SVG, no requests), from results.json."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from emoaudit.results.common import SEVERITIES
from emoaudit.results.document import Results
from emoaudit.report import plots
from emoaudit.spec import AuditSpec
from emoaudit.storage import write_text

TEMPLATES = Path(str(files("emoaudit.templates")))


def environment() -> Environment:
    # Autoescape everything: model-generated text must never become markup.
    return Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render(results: Results, spec: AuditSpec | None) -> str:
    """The report of `results` and its findings; `spec`, when it is the one the audit ran, gives the
    reference valence ratings for the affect map."""
    return environment().get_template("report.html.j2").render(**context(results, spec))


def write_report(path: Path, results: Results, spec: AuditSpec | None) -> None:
    write_text(path, render(results, spec))


def context(results: Results, spec: AuditSpec | None) -> dict[str, Any]:
    checks = results.findings or []
    failed = [c for c in checks if c.failed]
    worst = max((SEVERITIES.index(c.severity) for c in failed), default=0)
    extraction, steering = results.stages.extraction, results.stages.steering
    ctx: dict[str, Any] = {
        "results": results,
        "model": results.model,
        "checks": sorted(checks, key=lambda c: (-SEVERITIES.index(c.severity), c.id)),
        "verdict": SEVERITIES[worst] if failed else "clean",
        "failed": failed,
        "extraction": extraction,
        "steering": steering,
        "leakage": results.stages.leakage,
        "behaviour": results.stages.behaviour,
        "figures": {},
    }
    if extraction is not None:
        layer = extraction.layer
        emotions = extraction.emotions
        valence = (
            [e.valence for e in spec.emotions] if spec and spec.emotion_names == emotions else [0.0] * len(emotions)
        )
        ctx["figures"]["curves"] = plots.layer_curves(extraction)
        ctx["figures"]["score"] = plots.score_curve(extraction)
        ctx["figures"]["similarity"] = {
            m: plots.heatmap(a.at_emotion_layer.similarity, emotions, f"{m} vectors, layer {layer}")
            for m, a in extraction.methods.items()
        }
        ctx["figures"]["affect"] = {
            m: plots.affect_map(a.at_emotion_layer.pc_scores, emotions, valence, f"{m} vectors, layer {layer}")
            for m, a in extraction.methods.items()
        }
        ctx["layer"] = layer
    if steering is not None:
        ctx["figures"]["regimes"] = plots.regime_map(steering.summary.regime_map, steering.strengths)
    return ctx
