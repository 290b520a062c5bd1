"""What several parts of the results document share: severities, findings, memory high-water marks."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any, Literal

Severity = Literal["info", "low", "medium", "high"]
SEVERITIES: tuple[Severity, ...] = ("info", "low", "medium", "high")  # in rising order


class FailLevel(str, Enum):
    """The least severity of a finding that gates a release (`--fail-on`): exit status 1; `never` gates nothing."""

    low = "low"
    medium = "medium"
    high = "high"
    never = "never"

    @property
    def floor(self) -> int:
        """The index in SEVERITIES from which a failed check gates; past the end for `never`."""
        return len(SEVERITIES) if self is FailLevel.never else SEVERITIES.index(self.value)

    def gates(self, check: Check) -> bool:
        """Whether `check` failed at this level or above."""
        return check.failed and SEVERITIES.index(check.severity) >= self.floor


@dataclass(frozen=True)
class Check:
    """One policy check: passed, or failed with a finding of some severity."""

    id: str
    title: str
    severity: Severity  # of the finding when the check fails; "info" when it passes
    failed: bool
    detail: str
    evidence: dict[str, Any]  # the numbers the check read, in the check's own terms


@dataclass(frozen=True)
class Resources:
    """High-water marks in bytes: this process's resident memory, the same before the model was loaded
    (interpreter and libraries), and the CUDA allocator's where the model ran on CUDA (None elsewhere)."""

    peak_rss_bytes: int | None
    runtime_rss_bytes: int | None
    peak_cuda_bytes: int | None
