"""`emoaudit scan` and `emoaudit extract`: run the audit, print its summary, gate on its findings."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.markup import escape
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
    results = guard(lambda: audit(settings, stderr_console()))
    _print_summary(results, out)
    raise typer.Exit(print_findings(results.findings or [], fail_on))


def print_findings(checks: list[Check], fail_on: FailLevel) -> int:
    """Print the findings; return the gate's exit status: 1 when a finding reaches --fail-on."""
    from emoaudit.report.gating import exit_status

    console = Console()
    for check in checks:
        if check.failed:
            console.print(terminal_text(f"finding [{check.severity}] {check.id}: {check.detail}"))
    status = exit_status(checks, fail_on)
    if status:
        console.print(f"a finding reaches --fail-on {fail_on.value}: exit status 1")
    return status


def _print_summary(results: Results, out: Path) -> None:
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
        console.print(escape(f"device map {model.device_map}: {where or 'one device'}"))
    if model.quantization:
        console.print(f"[bold]the vectors come from a model quantised to {terminal_text(model.quantization)}[/]")
    console.print(f"emotion layer: {at} of {model.n_layers} (relative depth {stage.emotion_layer.relative_depth:.2f})")
    table = Table()
    for column in ("method", "best layer", "probe acc", "shuffled", "held-out acc", "valence AUC"):
        table.add_column(column)
    for method, analysis in stage.methods.items():
        curves, held = analysis.curves, analysis.heldout
        table.add_row(
            method,
            str(analysis.chosen_layer),
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
        rate = "n/a" if summary.success_rate is None else f"{summary.success_rate:.2f}"
        console.print(
            f"steering at layer {steering.layer}: {summary.trials} trials, success rate {rate} "
            f"(judge {terminal_text(steering.judge.name)}, "
            f"held-out accuracy {steering.judge.validation.accuracy:.2f}); "
            f"{totals}"
        )
        overall = summary.statistics.overall
        console.print(escape(f"within the calibrated range, against the random-direction control: {overall.quote()}"))
    console.print(escape(f"results: {out / 'results.json'}   vectors: {out / 'vectors'}"))


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
