"""The one table of model and audit options: each option's name, type, default, range or choices and help.

`scan`, `extract`, `steer` and `study` generate their Typer options from it (`emoaudit.cli.options`), and
`emoaudit.audit()` checks its keywords against it (`check`), so that every command that loads a model takes
the same model options, checked the same way. Light on purpose: the CLI imports it to build its help, so it
imports neither torch nor transformers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emoaudit.errors import EmoauditError

# numpy's legacy generators and scikit-learn's random_state take seeds in 0..2**32 - 1.
MAX_SEED = 2**32 - 1
DEVICES = ("auto", "cpu", "cuda")
DTYPES = ("auto", "float32", "bfloat16", "float16")
DEVICE_MAPS = ("auto", "balanced", "balanced_low_0", "sequential")  # accelerate's strategies
QUANTIZATIONS = ("4bit", "8bit")  # bitsandbytes
POSITIONS = ("all", "generated")  # where steering adds its vector: every position, or only after the prompt


# How a wrong-typed value's error names the kind an option takes.
KINDS: dict[type, str] = {int: "an integer", float: "a number", str: "a string", bool: "True or False", Path: "a path"}


@dataclass(frozen=True)
class Option:
    """One option: `name` is the AuditOptions field and the Python keyword; `flag` the CLI's spelling."""

    name: str
    type: type  # int, float, str, bool or Path; None is allowed where the default is None
    default: Any
    help: str
    choices: tuple[str, ...] | None = None
    low: float | None = None  # inclusive range of a number
    high: float | None = None
    flag: str | None = None  # the CLI flag when it is not --name-with-dashes
    switch: bool = False  # a bool given as a bare flag (no --no- form)
    why: str | None = None  # where the range comes from, said when a value is outside it

    @property
    def cli_flag(self) -> str:
        return self.flag or "--" + self.name.replace("_", "-")

    def check(self, value: Any) -> Any:
        """`value` as this option takes it (a str for a Path, an int for a float), or EmoauditError (one line,
        naming the CLI flag) for a value of the wrong type, outside the range or not among the choices;
        ValueError where the type is not even the option's kind (a str or a bool for a seed)."""
        if value is None and self.default is None:
            return None
        if self.type is Path and isinstance(value, str | Path):
            return Path(value)
        if self.type is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, self.type) or (self.type is int and isinstance(value, bool)):
            raise ValueError(f"{self.name} must be {KINDS[self.type]}, not {type(value).__name__} ({value!r})")
        if self.choices is not None and value not in self.choices:
            raise EmoauditError(f"{self.cli_flag} must be {_alternatives(self.choices)}, not {value!r}")
        if isinstance(value, int | float) and not isinstance(value, bool):
            if isinstance(value, float) and not math.isfinite(value):
                raise EmoauditError(f"{self.cli_flag} must be a finite number, not {value!r}")
            if (self.low is not None and value < self.low) or (self.high is not None and value > self.high):
                why = f" ({self.why})" if self.why else ""
                raise EmoauditError(f"{self.cli_flag} must be in {_range(self)}{why}, not {value!r}")
        return value


def _alternatives(choices: tuple[str, ...]) -> str:
    return " or ".join(choices) if len(choices) == 2 else f"one of {', '.join(choices)}"


def _range(option: Option) -> str:
    low = "" if option.low is None else f"{option.low:.15g}"
    high = "" if option.high is None else f"{option.high:.15g}"
    return f"{low}..{high}"


# Every command that loads a model: scan, extract, steer, study and emoaudit.audit().
MODEL_OPTIONS: tuple[Option, ...] = (
    Option(
        "seed",
        int,
        0,
        "Seed for sampling, folds and permutations: 0..4294967295.",
        low=0,
        high=MAX_SEED,
        why="numpy's seed range",
    ),
    Option("device", str, "auto", "Where the model runs.", choices=DEVICES),
    Option(
        "dtype",
        str,
        "auto",
        "Weights and activations dtype; auto: bfloat16 on CUDA and on CPUs with native bfloat16, else float32.",
        choices=DTYPES,
    ),
    Option(
        "spec_path",
        Path,
        None,
        "Audit specification (TOML); the built-in default if omitted.",
        flag="--spec",
    ),
    Option(
        "trust_remote_code",
        bool,
        False,
        "Run code shipped with a Hub model. Off unless asked for.",
        switch=True,
    ),
    Option(
        "device_map",
        str,
        None,
        "Spread the weights over the GPUs, the CPU and disk with accelerate (overrides --device).",
        choices=DEVICE_MAPS,
    ),
    Option(
        "max_memory",
        str,
        None,
        "Weight budget per device for the device map, e.g. 0=70GiB,1=70GiB,cpu=200GiB; implies --device-map auto.",
    ),
    Option(
        "disk_offload",
        bool,
        True,
        "Under a device map, put the weights past every budget on disk (under the cache, removed after).",
    ),
    Option("quantize", str, None, "Load the weights quantised with bitsandbytes (CUDA only).", choices=QUANTIZATIONS),
    Option(
        "steer_positions",
        str,
        "all",
        "Where the steering vector is added: at every position (all) or only after the prompt (generated).",
        choices=POSITIONS,
    ),
)
# What an audit is asked beyond the model: scan, study and emoaudit.audit() (extract takes the profile and
# the norms, which read the extraction's vectors; steer runs no audit, so takes none of these).
PROFILE = Option(
    "profile",
    str,
    "standard",
    "A profile of the specification: quick (CI), standard (an audit) or full in the built-in one.",
)
NORMS = Option(
    "norms",
    Path,
    None,
    "Human valence/arousal norms to correlate the vectors' principal components with: an NRC VAD "
    "lexicon (tab-separated) or the Warriner et al. CSV. emoaudit ships none (their licences).",
)
AUDIT_OPTIONS: tuple[Option, ...] = (
    PROFILE,
    Option(
        "judge",
        str,
        None,
        "Steering judge: a Hugging Face text-classification model (ID or directory); the offline default otherwise.",
    ),
    Option("policy", Path, None, "Release-gating policy (TOML); the built-in one if omitted."),
    NORMS,
)
TABLE: dict[str, Option] = {option.name: option for option in (*MODEL_OPTIONS, *AUDIT_OPTIONS)}


def check(values: Mapping[str, Any]) -> dict[str, Any]:
    """`values` (option name -> value), each checked and converted by its row of the table.

    Raises TypeError for a name the table does not have (as a misspelt keyword would), EmoauditError for a
    value out of its range or choices.
    """
    unknown = sorted(set(values) - set(TABLE))
    if unknown:
        raise TypeError(f"unknown option{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}")
    return {name: TABLE[name].check(value) for name, value in values.items()}
