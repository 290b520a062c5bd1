"""study.json, written by `emoaudit study`: one audit per model (each in <slug>/results.json), compared,
with the paper's claims tested across the models. Its JSON Schema is generated from these types
(`results.schema`); a study is written and read through `results.convert` as results.json is."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Final, Literal

from pydantic import ConfigDict, Field

from emoaudit.results.common import Count, DateTime, FailLevel, Fraction, NonNegative, Sha256
from emoaudit.results.evidence import ModelEvidence
from emoaudit.results.steering import AllRegimes

STUDY_SCHEMA_VERSION: Final = "1.0"
StudySchemaVersion = Literal["1.0"]  # STUDY_SCHEMA_VERSION: mypy refuses a Study that writes another
CORRECTION: Final = "Benjamini-Hochberg"
SLUG_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"  # a folder name on every file system
Slug = Annotated[str, Field(pattern=SLUG_PATTERN)]  # a model's folder in the study directory


@dataclass(frozen=True)
class Executor:
    """How the audits ran: `local` (one process, one after another) or `ray` (one task per model)."""

    name: Literal["local", "ray"]
    ray_address: str | None  # None with ray: a local Ray instance started for the study
    cpus_per_model: Annotated[float, Field(gt=0)] | None  # ray only
    gpus_per_model: NonNegative | None  # ray only

    __pydantic_config__ = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class StudyAudit:
    """What every model was audited with: the specification (by name and content hash), profile, seed,
    device, dtype and judge, the policy and claims files (by content hash) and emoaudit's version."""

    specification: str
    specification_sha256: Sha256
    profile: str
    seed: int
    device: str
    dtype: str
    judge: str
    policy_sha256: Sha256
    claims_sha256: Sha256
    emoaudit: str

    __pydantic_config__ = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class AuditedModel:
    """A model with its evidence: audited by this run of the study, or `reused` from an earlier run."""

    reference: str
    slug: Slug  # its folder under the study directory
    status: Literal["audited", "reused"]
    seconds: NonNegative | None  # wall time of this run's audit; None when reused
    error: None
    error_kind: None
    evidence: ModelEvidence
    corrected_p: Fraction | None  # generation against comprehension, corrected across the audited models
    results: str  # its results.json, relative to the study directory
    report: str  # its report.html, likewise

    __pydantic_config__ = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class FailedModel:
    """A model whose audit, or reading its results, failed: the error in one line, and no evidence."""

    reference: str
    slug: Slug
    status: Literal["failed"]
    seconds: NonNegative | None  # wall time of the failed audit; None when its earlier results failed to read
    error: str
    error_kind: Literal["input", "internal"]  # bad input (exit status 2 alone) or a fault of emoaudit
    evidence: None
    corrected_p: None
    results: None
    report: None

    __pydantic_config__ = ConfigDict(extra="forbid")


# One model of the study, told apart by its status.
ModelEntry = Annotated[AuditedModel | FailedModel, Field(discriminator="status")]


def audited_model(
    reference: str, slug: str, status: Literal["audited", "reused"], seconds: float | None, evidence: ModelEvidence
) -> AuditedModel:
    """A model's entry with its evidence, its files named by its folder; uncorrected until the study corrects."""
    return AuditedModel(
        reference, slug, status, seconds, None, None, evidence, None, f"{slug}/results.json", f"{slug}/report.html"
    )


def failed_model(
    reference: str, slug: str, seconds: float | None, error: str, kind: Literal["input", "internal"]
) -> FailedModel:
    return FailedModel(reference, slug, "failed", seconds, error, kind, None, None, None, None)


@dataclass(frozen=True)
class Correction:
    """How the study corrects p-values across its models."""

    method: Literal["Benjamini-Hochberg"]  # CORRECTION
    applies_to: str
    tests: Count  # how many p-values were corrected together

    __pydantic_config__ = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class Family:
    """Steering regimes summed over the models of one family (transformers' model_type)."""

    name: str
    models: Annotated[list[Slug], Field(min_length=1)]
    regimes: AllRegimes

    __pydantic_config__ = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class ModelVerdict:
    """One claim on one model of the study: the value its test thresholds and whether it holds."""

    slug: Slug
    value: float | int | str | None
    holds: bool | None  # None: not measured (the model failed, or lacks the stage)
    detail: str

    __pydantic_config__ = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class ClaimResult:
    """A claim across the models: per model, and in how many of those measured it holds."""

    id: str
    statement: str
    test: str
    thresholds: dict[str, Any]
    models: list[ModelVerdict]
    holds_in: Count
    measured: Count

    __pydantic_config__ = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class Gate:
    fail_on: FailLevel
    status: Literal[0, 1, 2]  # 2: a model could not be audited; else 1: a finding reaches fail_on; else 0
    reason: str

    __pydantic_config__ = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class Study:
    """study.json. Timestamps are ISO 8601 in UTC."""

    schema_version: StudySchemaVersion
    executor: Executor
    audit: StudyAudit
    models: Annotated[list[ModelEntry], Field(min_length=1)]
    correction: Correction
    families: list[Family]
    claims: list[ClaimResult]
    gate: Gate
    started: DateTime
    finished: DateTime

    __pydantic_config__ = ConfigDict(extra="forbid")
