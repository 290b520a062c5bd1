"""What one audit is asked to do: the model, where its outputs go, and how it runs.

`audit_options` is the one place an `AuditOptions` is made: from the option table's values
(`emoaudit.options`), checked there, with the placement parsed into its typed record.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from emoaudit.arguments import check_stages
from emoaudit.model.placement import Placement, parse_max_memory
from emoaudit.options import TABLE, check
from emoaudit.pipeline.outputs import Outputs
from emoaudit.results.common import FailLevel
from emoaudit.results.identity import Quantization
from emoaudit.results.steering import SteerPositions
from emoaudit.steering.judge import Judge

STAGES = ("extraction", "steering", "leakage", "behaviour")


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
    norms: Path | None  # a user's valence/arousal lexicon (NRC VAD or Warriner et al.), read before loading
    outputs: Outputs = field(default_factory=Outputs)  # files asked for beyond OUT's own (SARIF, JUnit, ...)
    fail_on: FailLevel = FailLevel.high  # the gate JUnit counts failures at and every output's decision states


def audit_options(
    model: str,
    out: Path,
    values: Mapping[str, Any],
    *,
    judge: Judge | None = None,
    stages: Sequence[str] = STAGES,
    outputs: Outputs | None = None,
    fail_on: FailLevel = FailLevel.high,
) -> AuditOptions:
    """The options of one audit from `values` (option name -> value; the table's default for those absent).

    Raises TypeError for an unknown option, ValueError for a value of the wrong kind (`stages` not a sequence
    of names), EmoauditError (one line) for a value outside its range or choices, a malformed --max-memory,
    an unknown stage or one without the stages whose results it reads (`check_stages`); all before anything
    is loaded.
    """
    given = check(values)
    v = {name: given.get(name, option.default) for name, option in TABLE.items()}
    # known, in order, each with the stages whose results it reads
    asked = check_stages(stages, STAGES)
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
        stages=asked,
        placement=placement,
        steer_positions=v["steer_positions"],
        norms=v["norms"],
        outputs=outputs or Outputs(),
        fail_on=fail_on,
    )
