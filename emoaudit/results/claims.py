"""What results.json records of the paper's claims (emoaudit/audits/claims.toml) on the audited model: each claim's
test as written, the values it measured with their units, and whether it holds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ConfigDict

from emoaudit.results.common import Sha256


@dataclass(frozen=True)
class Measured:
    """One measured quantity a claim's test reads."""

    name: str
    value: float | int | str
    unit: str  # what was measured, on what, and where (layer, method, correction)

    __pydantic_config__ = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class ClaimOutcome:
    """One claim on this model. `holds` is null when the stage its test needs did not run (then
    `measured` is empty and `detail` says which stage)."""

    id: str
    statement: str
    test: str  # as written in the claims file, thresholds filled in
    thresholds: dict[str, Any]
    measured: list[Measured]
    holds: bool | None
    detail: str  # the measured values in one line

    __pydantic_config__ = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class PaperClaims:
    """The claims file the audit tested (by content hash) and how its p-values are read: one model's
    audit corrects no p-value across models (a study does, Benjamini-Hochberg across its models)."""

    sha256: Sha256  # of the claims file
    correction: str
    claims: list[ClaimOutcome]

    __pydantic_config__ = ConfigDict(extra="forbid")
