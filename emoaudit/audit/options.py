"""What one audit is asked to do: the model, where its outputs go, and how it runs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from emoaudit.steering.judge import Judge

STAGES = ("extraction", "steering", "leakage")


@dataclass(frozen=True)
class AuditOptions:
    """The options of `emoaudit scan` (and of `emoaudit.audit`), before anything is loaded."""

    model: str
    out: Path
    profile: str = "standard"
    seed: int = 0
    device: str = "auto"
    dtype: str = "auto"
    spec_path: Path | None = None
    trust_remote_code: bool = False
    judge: str | Judge | None = None  # overrides the specification's judge: a name, or a Judge object
    policy: Path | None = None  # release-gating policy; the built-in one if None
    stages: tuple[str, ...] = STAGES
