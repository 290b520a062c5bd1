"""Options and error handling shared by every command (after inspect_ai's `_cli/common.py`)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console

from emoaudit.errors import EmoauditError, input_error_line

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
SeedOpt = Annotated[int, typer.Option(help="Seed for sampling, folds and permutations: 0..4294967295.")]
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


def stderr_console() -> Console:
    return Console(stderr=True)


def guard(action: Callable[[], T]) -> T:
    """Bad input ends in one line on stderr and exit status 2, never a traceback."""
    try:
        return action()
    except (EmoauditError, OSError) as exc:
        print(f"emoaudit: error: {input_error_line(exc)}", file=sys.stderr)
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        print("emoaudit: interrupted; completed stages are kept, rerun with the same --out to resume", file=sys.stderr)
        raise typer.Exit(130) from None
