"""`emoaudit study`: one audit per model, locally or on Ray, then the comparison across the models."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from emoaudit.escaping import console_text
from rich.table import Table

from emoaudit.cli.common import FailOnOpt, JUnitOpt, guard, stderr_console
from emoaudit.cli.options import with_options
from emoaudit.options import AUDIT_OPTIONS, MODEL_OPTIONS
from emoaudit.results.common import FailLevel

if TYPE_CHECKING:
    from emoaudit.results.study import Study


EXIT_STATUS = (
    "Exit status: 2 when any model could not be audited (its error is in study.json and on stderr; the other "
    "models are audited all the same) or the command's input is bad; else 1 when a finding of any model reaches "
    "--fail-on; else 0."
)


class ExecutorName(str, Enum):
    local = "local"
    ray = "ray"


@with_options(*MODEL_OPTIONS, *AUDIT_OPTIONS)
def study(
    out: Annotated[
        Path,
        typer.Option(
            "--out", "-o", help="Study directory: one audit per model in OUT/<slug>/, study.json and study.html."
        ),
    ],
    models: Annotated[
        list[str] | None,
        typer.Argument(
            help="Models to audit, in any form `scan` takes (alias, .gguf file, checkpoint directory, Hub ID).",
            show_default=False,
        ),
    ] = None,
    models_file: Annotated[
        Path | None,
        typer.Option(
            "--models", help='TOML file: models = ["alias", {reference = "./ckpt", slug = "step-1000"}, ...].'
        ),
    ] = None,
    executor: Annotated[
        ExecutorName, typer.Option(help="local: one model after another in this process; ray: one Ray task each.")
    ] = ExecutorName.local,
    ray_address: Annotated[
        str | None,
        typer.Option(help="An existing Ray cluster (e.g. HEAD:6379); without it, a local Ray instance is started."),
    ] = None,
    ray_connect_timeout: Annotated[
        float,
        typer.Option(min=0.1, help="Seconds --ray-address may take to answer before the study stops, in one line."),
    ] = 10.0,
    gpus_per_model: Annotated[float, typer.Option(min=0, help="GPUs each model's Ray task asks for.")] = 0.0,
    cpus_per_model: Annotated[float, typer.Option(min=0.01, help="CPUs each model's Ray task asks for.")] = 1.0,
    fail_on: FailOnOpt = FailLevel.high,
    junit: JUnitOpt = None,
    **options: Any,
) -> None:
    """Audit every model (a rerun skips finished audits) and compare them in OUT/study.json and OUT/study.html."""
    from emoaudit.pipeline.options import audit_options
    from emoaudit.storage import write_text
    from emoaudit.study.executors import RayResources
    from emoaudit.study.run import StudyRequest, run_study
    from emoaudit.study.study import study_junit
    from emoaudit.study.targets import check_slugs, study_targets

    if executor is ExecutorName.local and ray_address is not None:
        print("emoaudit: error: --ray-address needs --executor ray", file=sys.stderr)
        raise typer.Exit(2)
    # every option checked (a seed numpy cannot take, a malformed --max-memory) in one line, before any work
    template = guard(lambda: audit_options("", out, options))  # each model's own reference, set per model
    ray = (
        RayResources(ray_address, cpus_per_model, gpus_per_model, ray_connect_timeout)
        if executor is ExecutorName.ray
        else None
    )
    targets = guard(lambda: study_targets(models or [], models_file))
    guard(lambda: check_slugs(targets, out, (junit,)))  # before any model is audited
    result = guard(lambda: run_study(StudyRequest(targets, out, template, ray, fail_on), stderr_console()))
    _print_summary(result)
    if junit is not None:
        guard(lambda: write_text(junit, study_junit(result)))
    Console().print(f"study: {out / 'study.json'}   {out / 'study.html'}")
    Console().print(f"exit status {result.gate.status}: {console_text(result.gate.reason)}")
    raise typer.Exit(result.gate.status)


def _print_summary(result: Study) -> None:
    console = Console()
    table = Table(title="models")
    # Two checkpoints of one family differ late in their slugs: a narrow terminal folds a slug, never cuts it.
    table.add_column("model", overflow="fold")
    table.add_column("family", overflow="fold")
    for column in ("emotion layer", "d gen-comp", "p (BH)", "held-out comp/gen", "audit"):
        table.add_column(column)
    for m in result.models:
        e = m.evidence
        if e is None:
            table.add_row(console_text(m.slug), "", "", "", "", "", f"failed ({m.error_kind} error)")
            continue
        table.add_row(
            console_text(m.slug),
            console_text(e.model_type),
            f"{e.emotion_layer} of {e.n_layers} ({e.relative_depth:.2f})",
            f"{e.comparison.cohens_d:+.2f}",
            f"{m.corrected_p:.3g}" if m.corrected_p is not None else "",
            " / ".join(f"{x.heldout_accuracy:.2f}" for x in e.methods.values()),
            m.status,
        )
    console.print(table)
    claims = Table(title="claims")
    for column in ("claim", "holds in"):
        claims.add_column(column)
    for c in result.claims:
        claims.add_row(c.id, f"{c.holds_in} of {c.measured}")
    console.print(claims)
