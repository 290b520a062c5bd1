"""What one audit is asked to do: the model, where its outputs go, and how it runs.

`audit_options` is the one place an `AuditOptions` is made: from the option table's values
(`emoaudit.options`), checked there, with the placement parsed into its typed record.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from emoaudit.model.placement import Placement, parse_max_memory
from emoaudit.options import TABLE, check
from emoaudit.pipeline.outputs import Outputs
from emoaudit.results.common import FailLevel
from emoaudit.results.identity import Quantization
from emoaudit.results.steering import SteerPositions
from emoaudit.steering.judge import Judge

STAGES = ("extraction", "steering", "leakage")


@dataclass(frozen=True)
class AuditOptions:
    """The options of `emoaudit scan` (and of `emoaudit.audit`), checked, before anything is loaded."""

    model: str
    out: Path
    profile: str
    seed: int
    device: str
    dtype: str
    spec_path: Path | None
    trust_remote_code: bool
    judge: str | Judge | None  # overrides the specification's judge: a name, or a Judge object
    policy: Path | None  # release-gating policy; the built-in one if None
    stages: tuple[str, ...]
    placement: Placement  # one device, or a device map (with budgets and disk offload), or quantised weights
    steer_positions: SteerPositions  # where steering adds its vector: "all" positions or the "generated" ones
    outputs: Outputs = field(default_factory=Outputs)  # files asked for beyond OUT's own (SARIF, JUnit, ...)
    fail_on: FailLevel = FailLevel.high  # what JUnit counts as a failure


def audit_options(
    model: str,
    out: Path,
    values: Mapping[str, Any],
    *,
    judge: Judge | None = None,
    stages: tuple[str, ...] = STAGES,
    outputs: Outputs | None = None,
    fail_on: FailLevel = FailLevel.high,
) -> AuditOptions:
    """The options of one audit from `values` (option name -> value; the table's default for those absent).

    Raises TypeError for an unknown option or a value of the wrong kind, EmoauditError (one line) for a value
    outside its range or choices, a malformed --max-memory or unknown stages; all before anything is loaded.
    """
    from emoaudit.errors import EmoauditError

    given = check(values)
    v = {name: given.get(name, option.default) for name, option in TABLE.items()}
    unknown = [stage for stage in stages if stage not in STAGES]
    if unknown or not stages:
        raise EmoauditError(f"stages must be among {', '.join(STAGES)}, not {', '.join(unknown) or 'none'}")
    placement = Placement(
        v["device_map"], parse_max_memory(v["max_memory"]), v["disk_offload"], cast(Quantization | None, v["quantize"])
    )
    return AuditOptions(
        model=model,
        out=Path(out),
        profile=v["profile"],
        seed=v["seed"],
        device=v["device"],
        dtype=v["dtype"],
        spec_path=v["spec_path"],
        trust_remote_code=v["trust_remote_code"],
        judge=judge if judge is not None else v["judge"],
        policy=v["policy"],
        stages=tuple(stage for stage in STAGES if stage in stages),
        placement=placement,
        steer_positions=v["steer_positions"],
        outputs=outputs or Outputs(),
        fail_on=fail_on,
    )
