"""Options and error handling shared by every command (after inspect_ai's `_cli/common.py`)."""

from __future__ import annotations

import sys
import unicodedata
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

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


class DeviceMap(str, Enum):
    auto = "auto"
    balanced = "balanced"
    balanced_low_0 = "balanced_low_0"
    sequential = "sequential"


class Quantize(str, Enum):
    q4 = "4bit"
    q8 = "8bit"


class FailOn(str, Enum):
    low = "low"
    medium = "medium"
    high = "high"
    never = "never"


class SteerPositions(str, Enum):
    all = "all"
    generated = "generated"


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
DeviceMapOpt = Annotated[
    DeviceMap | None,
    typer.Option(help="Spread the weights over the GPUs, the CPU and disk with accelerate (overrides --device)."),
]
MaxMemoryOpt = Annotated[
    str | None,
    typer.Option(
        help="Weight budget per device for the device map, e.g. 0=70GiB,1=70GiB,cpu=200GiB; implies --device-map auto."
    ),
]
DiskOffloadOpt = Annotated[
    bool,
    typer.Option(
        help="Under a device map, put the weights past every budget on disk (under the cache, removed after)."
    ),
]
QuantizeOpt = Annotated[Quantize | None, typer.Option(help="Load the weights quantised with bitsandbytes (CUDA only).")]
SeedOpt = Annotated[int, typer.Option(help="Seed for sampling, folds and permutations: 0..4294967295.")]
OutOpt = Annotated[Path, typer.Option("--out", "-o", help="Output directory; a rerun with the same one resumes.")]
# A name, not a choice: a specification (--spec) may define its own profiles; the audit refuses unknown ones.
ProfileOpt = Annotated[
    str,
    typer.Option(help="A profile of the specification: quick (CI), standard (an audit) or full in the built-in one."),
]
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
SarifOpt = Annotated[
    Path | None, typer.Option("--sarif", help="Write the findings as SARIF 2.1.0 (code-scanning dashboards).")
]
ModelCardOpt = Annotated[
    Path | None, typer.Option("--model-card", help="Write a Markdown section for a Hugging Face model card.")
]
PdfOpt = Annotated[
    Path | None, typer.Option("--pdf", help="Print the report to a paginated PDF (needs headless Chromium).")
]
SteerPositionsOpt = Annotated[
    SteerPositions,
    typer.Option(
        help="Where the steering vector is added: at every position (all) or only after the prompt (generated)."
    ),
]
NormsOpt = Annotated[
    Path | None,
    typer.Option(
        "--norms",
        help="Human valence/arousal norms to correlate the vectors' principal components with: an NRC VAD "
        "lexicon (tab-separated) or the Warriner et al. CSV. emoaudit ships none (their licences).",
    ),
]
TrustOpt = Annotated[
    bool, typer.Option("--trust-remote-code", help="Run code shipped with a Hub model. Off unless asked for.")
]


def placement_options(
    device_map: DeviceMap | None, max_memory: str | None, disk_offload: bool, quantize: Quantize | None
) -> dict[str, object]:
    """The placement flags as `AuditOptions` fields."""
    return {
        "device_map": device_map.value if device_map else None,
        "max_memory": max_memory,
        "disk_offload": disk_offload,
        "quantize": quantize.value if quantize else None,
    }


def terminal_text(text: str) -> str:
    """Model output made safe to print: control characters (terminal escapes, OSC links, bells) shown as
    Python escapes, newlines and tabs kept, and Rich markup escaped."""
    visible = "".join(
        c if c in "\n\t" or unicodedata.category(c) not in ("Cc", "Cf", "Cs") else repr(c)[1:-1] for c in text
    )
    return escape(visible)


def stderr_console() -> Console:
    return Console(stderr=True)


RESUME = "completed stages are kept, rerun with the same --out to resume"


def guard(action: Callable[[], T], interrupted: str = RESUME) -> T:
    """Bad input ends in one line on stderr and exit status 2, never a traceback; Ctrl-C ends in one line
    saying what of the work is kept (`interrupted`), and exit status 130."""
    try:
        return action()
    except (EmoauditError, OSError) as exc:
        print(f"emoaudit: error: {input_error_line(exc)}", file=sys.stderr)
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        print(f"emoaudit: interrupted; {interrupted}", file=sys.stderr)
        raise typer.Exit(130) from None
