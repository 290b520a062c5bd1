"""`emoaudit scan` and `emoaudit extract`: run the audit, print its summary, gate on its findings."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.table import Table

from emoaudit.cli.common import (
    FailOnOpt,
    JUnitOpt,
    ModelArg,
    ModelCardOpt,
    OutOpt,
    PdfOpt,
    SarifOpt,
    guard,
    stderr_console,
    terminal_text,
)
from emoaudit.cli.options import with_options
from emoaudit.options import AUDIT_OPTIONS, MODEL_OPTIONS, NORMS, PROFILE
from emoaudit.results.common import FailLevel

if TYPE_CHECKING:  # the CLI imports the audit's modules only when a command runs, to start fast
    from emoaudit.results.common import Check
    from emoaudit.results.document import Results


def _audit(
    model: str,
    out: Path,
    options: dict[str, Any],
    stages: tuple[str, ...] | None = None,
    fail_on: FailLevel = FailLevel.high,
    **outputs: Path | None,
) -> None:
    """Run the audit (which writes every output, the manifest last), print it, exit with the gate's status."""
    from emoaudit.pipeline.options import STAGES, audit_options
    from emoaudit.pipeline.outputs import Outputs
    from emoaudit.pipeline.run import audit

    settings = guard(
        lambda: audit_options(model, out, options, stages=stages or STAGES, outputs=Outputs(**outputs), fail_on=fail_on)
    )
    started = time.monotonic()
    results = guard(lambda: audit(settings, stderr_console()))
    _print_summary(results, out, time.monotonic() - started)
    raise typer.Exit(print_findings(results.findings or [], fail_on, out / "report.html"))


def print_findings(checks: list[Check], fail_on: FailLevel, report: Path | None = None) -> int:
    """Print the report's path (when given), the findings, the gate's decision in words and the exit status
    (the terminal's last lines); return that status: 1 when a finding reaches --fail-on."""
    from emoaudit.report.decision import decide
    from emoaudit.report.gating import exit_status

    console = Console()
    status = exit_status(checks, fail_on)
    if report is not None:
        console.print(terminal_text(f"report: {report}"), soft_wrap=True)
    for check in checks:
        if check.failed:
            thin = " (underpowered: does not gate alone)" if check.underpowered else ""
            console.print(terminal_text(f"finding [{check.severity}]{thin} {check.id}: {check.detail}"))
    console.print(terminal_text(decide(checks, fail_on).sentence))
    console.print(f"exit status {status}")
    return status


def _print_summary(results: Results, out: Path, seconds: float) -> None:
    from emoaudit.progress import duration

    model = results.model
    stage = results.stages.extraction
    assert stage is not None  # every audit command runs the extraction
    at = stage.layer
    console = Console()
    console.print(
        f"[bold]{terminal_text(model.reference)}[/] {terminal_text(model.architecture)}, "
        f"{model.parameters / 1e6:.0f}M parameters, "
        f"{model.n_layers} layers, hidden {model.hidden_size}, {model.dtype} on {model.device}"
    )
    if model.device_map:
        where = ", ".join(f"{len(modules)} on {place}" for place, modules in (model.placement or {}).items())
        console.print(terminal_text(f"device map {model.device_map}: {where or 'one device'}"))
    if model.quantization:
        console.print(f"[bold]the vectors come from a model quantised to {terminal_text(model.quantization)}[/]")
    console.print(f"emotion layer: {at} of {model.n_layers} (relative depth {stage.emotion_layer.relative_depth:.2f})")
    table = Table()
    for column in ("method", "best layer", "probe acc", "shuffled", "held-out acc", "valence AUC"):
        table.add_column(column, no_wrap=column == "method")  # "comprehension" was cut at 80 columns
    for method, analysis in stage.methods.items():
        curves, held = analysis.curves, analysis.heldout
        table.add_row(
            method,
            str(analysis.chosen_layer if analysis.chosen_layer is not None else "undefined"),
            f"{curves.probe_accuracy[at]:.2f}",
            f"{curves.probe_accuracy_shuffled[at]:.2f}",
            f"{held.accuracy[at]:.2f}",
            f"{held.valence_auc[at]:.2f}",
        )
    console.print(table)
    steering = results.stages.steering
    if steering is not None:
        summary = steering.summary
        totals = ", ".join(f"{k} {v}" for k, v in summary.regime_totals.items())
        console.print(
            f"steering at layer {steering.layer}: {summary.trials} trials "
            f"(judge {terminal_text(steering.judge.name)}, "
            f"held-out accuracy {steering.judge.validation.accuracy:.2f}); "
            f"{totals}"
        )
        overall = summary.statistics.overall
        console.print(
            terminal_text(
                f"surgical within the calibrated range, against the random-direction control: {overall.quote()}"
            )
        )
    took = f"audited in {duration(seconds)}"
    console.print(terminal_text(f"results: {out / 'results.json'}   vectors: {out / 'vectors'}   {took}"))


@with_options(*MODEL_OPTIONS, *AUDIT_OPTIONS)
def scan(
    model: ModelArg,
    out: OutOpt = Path("emoaudit-out"),
    fail_on: FailOnOpt = FailLevel.high,
    junit: JUnitOpt = None,
    sarif: SarifOpt = None,
    model_card: ModelCardOpt = None,
    pdf: PdfOpt = None,
    **options: Any,
) -> None:
    """Audit MODEL: write results, report, vectors and samples to OUT; exit 1 on a finding at --fail-on."""
    _audit(model, out, options, fail_on=fail_on, junit=junit, sarif=sarif, model_card=model_card, pdf=pdf)


@with_options(*MODEL_OPTIONS, PROFILE, NORMS)
def extract(model: ModelArg, out: OutOpt = Path("emoaudit-out"), **options: Any) -> None:
    """Extract emotion vectors by both methods, sweep the layers and compare the methods."""
    _audit(model, out, options, stages=("extraction",), fail_on=FailLevel.never)
