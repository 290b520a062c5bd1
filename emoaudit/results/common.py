"""What several parts of the results document share: severities, findings, memory high-water marks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Severity = Literal["info", "low", "medium", "high"]
SEVERITIES: tuple[Severity, ...] = ("info", "low", "medium", "high")  # in rising order


@dataclass(frozen=True)
class Check:
    """One policy check: passed, or failed with a finding (`failed`) of its severity."""

    id: str
    title: str
    # the policy's severity of the check, passed or failed (results before 0.x wrote "info" for a pass)
    severity: Severity
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
