"""The HTML risk report: one self-contained file (inline styles and SVG, no requests), from results.json."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from emoaudit import escaping

from emoaudit.results.common import SEVERITIES, FailLevel
from emoaudit.results.document import Results
from emoaudit.report import plots
from emoaudit.report.decision import by_severity, decide
from emoaudit.report.steering_view import above_control, check_examples, strong_note, windows
from emoaudit.report.power import power_words, result_words
from emoaudit.report.reproduce import reproduce_command, weights_note
from emoaudit.spec import AuditSpec
from emoaudit.storage import write_text

TEMPLATES = Path(str(files("emoaudit") / "templates"))


def environment() -> Environment:
    # Autoescape everything: model-generated text must never become markup.
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        # Every string the templates print, through the one HTML escape (which also shows a bidi override).
        finalize=lambda value: (
            escaping.html(value) if isinstance(value, str) and not isinstance(value, Markup) else value
        ),
    )
    env.filters["num"] = number
    return env


def number(value: float | None, fmt: str) -> str:
    """`fmt % value`, or "undefined" for a statistic recorded as null (its degenerate case)."""
    return "undefined" if value is None else fmt % value


def render(results: Results, spec: AuditSpec | None, fail_on: FailLevel = FailLevel.high) -> str:
    """The report of `results` and its findings, opening with the decision of the gate `--fail-on fail_on`;
    `spec`, when it is the one the audit ran, gives the reference valence ratings for the affect map.
    The same results render to the same bytes (figures' ids come from their content)."""
    return environment().get_template("report.html.j2").render(**context(results, spec, fail_on))


def write_report(path: Path, results: Results, spec: AuditSpec | None, fail_on: FailLevel = FailLevel.high) -> None:
    write_text(path, render(results, spec, fail_on))


def context(results: Results, spec: AuditSpec | None, fail_on: FailLevel = FailLevel.high) -> dict[str, Any]:
    checks = results.findings or []
    failed = [c for c in checks if c.failed]
    worst = max((SEVERITIES.index(c.severity) for c in failed), default=0)
    extraction, steering = results.stages.extraction, results.stages.steering
    ctx: dict[str, Any] = {
        "results": results,
        "model": results.model,
        "checks": sorted(checks, key=by_severity),
        "verdict": SEVERITIES[worst] if failed else "clean",
        "failed": failed,
        "extraction": extraction,
        "steering": steering,
        "leakage": results.stages.leakage,
        "behaviour": results.stages.behaviour,
        "figures": {},
        "decision": decide(checks, fail_on),
        "reproduce": reproduce_command(results),
        "weights_note": weights_note(results),
        "toc": table_of_contents(results),
        "semantic_min_n": next((c.evidence.get("min_n") for c in checks if c.id == "semantic_entanglement"), None),
        "check_rows": [(c, result_words(c), power_words(c)) for c in sorted(checks, key=by_severity)],
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
            m: plots.affect_map(
                a.at_emotion_layer.pc_scores,
                emotions,
                valence,
                f"{m} vectors, layer {layer}",
                (a.at_emotion_layer.affect["valence"].component, a.at_emotion_layer.affect["arousal"].component),
            )
            for m, a in extraction.methods.items()
        }
        ctx["layer"] = layer
    if steering is not None:
        statistics = steering.summary.statistics
        ctx["figures"]["regimes"] = plots.rate_map(
            statistics.cells, steering.strengths, statistics.calibrated_range, above_control
        )
        ctx["windows"] = windows(steering)
        ctx["check_examples"] = check_examples(steering, checks)
        ctx["strong_note"] = strong_note(checks)
    return ctx


def table_of_contents(results: Results) -> list[tuple[str, str]]:
    """(anchor, title) of each section the report has, in order."""
    stages = results.stages
    extraction = [("layers", "Layer sweep"), ("methods", "Method comparison"), ("confounds", "Against the confounds")]
    extraction += [("similarity", "Emotion similarity"), ("affect", "Valence and arousal")]
    toc = [("model", "Model"), *(extraction if stages.extraction is not None else [])]
    if stages.steering is not None:
        toc += [("steering", "Steering stress test"), ("examples", "Examples by check")]
    if stages.leakage is not None:
        toc.append(("leakage", "Cross-lingual leakage"))
    if results.claims:
        toc.append(("claims", "The paper's claims (arXiv 2604.04064)"))
    return [*toc, ("notes", "Method notes and limitations"), ("reproducibility", "Reproducibility")]
