"""`emoaudit scan` and `emoaudit extract`: run the audit, print its summary, gate on its findings."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from emoaudit.cli.common import (
    ModelCardOpt,
    PdfOpt,
    SarifOpt,
    Device,
    DeviceMapOpt,
    DeviceOpt,
    DiskOffloadOpt,
    DType,
    DTypeOpt,
    FailOn,
    FailOnOpt,
    JudgeOpt,
    JUnitOpt,
    NormsOpt,
    MaxMemoryOpt,
    ModelArg,
    OutOpt,
    PolicyOpt,
    ProfileOpt,
    QuantizeOpt,
    SeedOpt,
    SteerPositions,
    SteerPositionsOpt,
    SpecOpt,
    TrustOpt,
    guard,
    placement_options,
    terminal_text,
    stderr_console,
)

if TYPE_CHECKING:  # the CLI imports the audit's modules only when a command runs, to start fast
    from emoaudit.results.common import Check
    from emoaudit.results.document import Results


def _audit(
    stages: tuple[str, ...],
    model: str,
    out: Path,
    profile: str,
    seed: int,
    device: Device,
    dtype: DType,
    spec: Path | None,
    trust_remote_code: bool,
    judge: str | None = None,
    policy: Path | None = None,
    fail_on: FailOn = FailOn.high,
    junit: Path | None = None,
    placement: dict[str, object] | None = None,
    sarif: Path | None = None,
    model_card: Path | None = None,
    pdf: Path | None = None,
    steer_positions: SteerPositions = SteerPositions.all,
    norms: Path | None = None,
) -> None:
    from emoaudit.pipeline.options import AuditOptions
    from emoaudit.pipeline.run import audit
    from emoaudit.export.manifest import refresh_manifest
    from emoaudit.report.exports import Exports
    from emoaudit.report.policy import load_policy
    from emoaudit.storage import check_writable

    exports = Exports(sarif, model_card, pdf)

    if junit is not None:  # before the audit, not after it
        guard(lambda: check_writable(junit))
    guard(exports.check)
    options = guard(
        lambda: AuditOptions(
            model=model,
            out=out,
            profile=profile,
            seed=seed,
            device=device.value,
            dtype=dtype.value,
            spec_path=spec,
            trust_remote_code=trust_remote_code,
            judge=judge,
            policy=policy,
            stages=stages,
            steer_positions=steer_positions.value,
            norms=norms,
            **(placement or {}),  # type: ignore[arg-type]
        )
    )
    results = guard(lambda: audit(options, stderr_console()))
    _print_summary(results, out)
    guard(lambda: exports.write(results, load_policy(policy), out / "report.html"))
    status = gate(results.findings or [], fail_on, junit, results.model.reference)
    if any(_inside(path, out) for path in [*exports.paths(), *([junit] if junit else [])]):
        guard(lambda: refresh_manifest(out))  # what landed in OUT after the audit is vouched for too
    raise typer.Exit(status)


def gate(checks: list[Check], fail_on: FailOn, junit: Path | None, model: str) -> int:
    """Print the findings, write JUnit if asked; the exit status: 1 when a finding reaches --fail-on
    (exits 2, and one line, when the JUnit file cannot be written)."""
    from emoaudit.report.gating import exit_status, junit_xml
    from emoaudit.storage import write_text

    console = Console()
    for check in checks:
        if check.failed:
            console.print(terminal_text(f"finding [{check.severity}] {check.id}: {check.detail}"))
    if junit is not None:
        guard(lambda: write_text(junit, junit_xml(checks, fail_on.value, model)))
    status = exit_status(checks, fail_on.value)
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


def scan(
    model: ModelArg,
    out: OutOpt = Path("emoaudit-out"),
    profile: ProfileOpt = "standard",
    seed: SeedOpt = 0,
    device: DeviceOpt = Device.auto,
    dtype: DTypeOpt = DType.auto,
    spec: SpecOpt = None,
    trust_remote_code: TrustOpt = False,
    judge: JudgeOpt = None,
    policy: PolicyOpt = None,
    fail_on: FailOnOpt = FailOn.high,
    junit: JUnitOpt = None,
    device_map: DeviceMapOpt = None,
    max_memory: MaxMemoryOpt = None,
    disk_offload: DiskOffloadOpt = True,
    quantize: QuantizeOpt = None,
    sarif: SarifOpt = None,
    model_card: ModelCardOpt = None,
    pdf: PdfOpt = None,
    steer_positions: SteerPositionsOpt = SteerPositions.all,
    norms: NormsOpt = None,
) -> None:
    """Audit MODEL: write results, report, vectors and samples to OUT; exit 1 on a finding at --fail-on."""
    from emoaudit.pipeline.options import STAGES

    placement = placement_options(device_map, max_memory, disk_offload, quantize)
    _audit(
        STAGES,
        model,
        out,
        profile,
        seed,
        device,
        dtype,
        spec,
        trust_remote_code,
        judge,
        policy,
        fail_on,
        junit,
        placement=placement,
        sarif=sarif,
        model_card=model_card,
        pdf=pdf,
        steer_positions=steer_positions,
        norms=norms,
    )


def extract(
    model: ModelArg,
    out: OutOpt = Path("emoaudit-out"),
    profile: ProfileOpt = "standard",
    seed: SeedOpt = 0,
    device: DeviceOpt = Device.auto,
    dtype: DTypeOpt = DType.auto,
    spec: SpecOpt = None,
    trust_remote_code: TrustOpt = False,
    device_map: DeviceMapOpt = None,
    max_memory: MaxMemoryOpt = None,
    disk_offload: DiskOffloadOpt = True,
    quantize: QuantizeOpt = None,
    norms: NormsOpt = None,
) -> None:
    """Extract emotion vectors by both methods, sweep the layers and compare the methods."""
    placement = placement_options(device_map, max_memory, disk_offload, quantize)
    _audit(
        ("extraction",),
        model,
        out,
        profile,
        seed,
        device,
        dtype,
        spec,
        trust_remote_code,
        fail_on=FailOn.never,
        placement=placement,
        norms=norms,
    )


def _inside(path: Path, folder: Path) -> bool:
    return path.absolute().is_relative_to(folder.absolute())
