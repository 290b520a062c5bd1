"""The study document: every model's audit, compared, with the claims tested across the models.

Its JSON Schema (emoaudit/study.schema.json) is the published contract of study.json.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any, Literal
from xml.etree import ElementTree as ET

import numpy as np
from scipy.stats import false_discovery_control

from emoaudit.report.gating import exit_status, junit_xml
from emoaudit.steering.regimes import REGIMES
from emoaudit.report.claims import ClaimResult
from emoaudit.results.evidence import ModelEvidence

STUDY_SCHEMA_VERSION = "1.0"
SCHEMA_FILE = Path(str(files("emoaudit") / "study.schema.json"))
CORRECTION = "Benjamini-Hochberg"

Status = Literal["audited", "reused", "failed"]


@dataclass(frozen=True)
class Executor:
    """How the audits ran: `local` (one process, one after another) or `ray` (one task per model)."""

    name: Literal["local", "ray"]
    ray_address: str | None = None  # None with ray: a local Ray instance started for the study
    cpus_per_model: float | None = None  # ray only
    gpus_per_model: float | None = None  # ray only


@dataclass(frozen=True)
class ModelEntry:
    """One model of the study: how its audit went and, unless it failed, its evidence."""

    reference: str
    slug: str  # its folder under the study directory
    status: Status  # reused: finished by an earlier run of the study
    seconds: float | None  # wall time of this run's audit; None when reused
    error: str | None
    error_kind: Literal["input", "internal"] | None
    evidence: ModelEvidence | None
    corrected_p: float | None  # generation against comprehension, corrected across the audited models

    @property
    def audited(self) -> bool:
        return self.evidence is not None


@dataclass(frozen=True)
class Family:
    """Steering regimes summed over the models of one family (transformers' model_type)."""

    name: str
    models: list[str]  # slugs
    regimes: dict[str, int]


@dataclass(frozen=True)
class Gate:
    fail_on: str
    status: int  # 2: a model could not be audited; else 1: a finding reaches fail_on; else 0
    reason: str


@dataclass(frozen=True)
class Study:
    schema_version: str
    executor: Executor
    audit: dict[str, Any]  # what every model was audited with: specification, profile, seed, judge, policy
    models: list[ModelEntry]
    correction: dict[str, Any]
    families: list[Family]
    claims: list[ClaimResult]
    gate: Gate
    started: str
    finished: str

    def to_dict(self) -> dict[str, Any]:
        document = asdict(self)
        for entry, model in zip(document["models"], self.models, strict=True):
            entry["results"] = f"{model.slug}/results.json" if model.audited else None
            entry["report"] = f"{model.slug}/report.html" if model.audited else None
        return document


def schema() -> dict[str, Any]:
    return json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))


def corrected_p_values(evidence: dict[str, ModelEvidence]) -> dict[str, float]:
    """Each model's generation-against-comprehension Mann-Whitney p, Benjamini-Hochberg corrected across
    the models (scipy.stats.false_discovery_control): one test per model, one family of tests."""
    if not evidence:
        return {}
    slugs = list(evidence)
    raw = np.array([evidence[s].comparison.mann_whitney_p for s in slugs])
    return {s: float(p) for s, p in zip(slugs, false_discovery_control(raw, method="bh"), strict=True)}


def families(models: list[ModelEntry]) -> list[Family]:
    """Regime totals per family, over the models with steering results."""
    grouped: dict[str, list[ModelEntry]] = {}
    for model in models:
        if model.evidence is not None and model.evidence.regimes is not None:
            grouped.setdefault(model.evidence.model_type, []).append(model)
    return [
        Family(
            name,
            [m.slug for m in members],
            {r: sum(m.evidence.regimes[r] for m in members if m.evidence and m.evidence.regimes) for r in REGIMES},
        )
        for name, members in sorted(grouped.items())
    ]


def gate(models: list[ModelEntry], fail_on: str) -> Gate:
    """The study's exit status: 2 when any model could not be audited, else 1 when a finding of any model
    reaches `fail_on`, else 0."""
    failed = [m.reference for m in models if not m.audited]
    if failed:
        return Gate(fail_on, 2, f"not audited: {', '.join(failed)}")
    worst = [m.reference for m in models if m.evidence and exit_status(m.evidence.findings, fail_on)]
    if worst:
        return Gate(fail_on, 1, f"a finding reaches --fail-on {fail_on}: {', '.join(worst)}")
    return Gate(fail_on, 0, f"every model audited, no finding reaches --fail-on {fail_on}")


def study_junit(study: Study) -> str:
    """One JUnit test suite per model (one case per check, as `scan --junit`); a model that could not be
    audited is a suite with one errored case."""
    suites = ET.Element("testsuites", name="emoaudit study")
    for model in study.models:
        if model.evidence is not None:
            suites.append(ET.fromstring(junit_xml(model.evidence.findings, study.gate.fail_on, model.reference)))
            continue
        suite = ET.SubElement(suites, "testsuite", name=f"emoaudit {model.reference}", tests="1", errors="1")
        case = ET.SubElement(suite, "testcase", classname="emoaudit", name="audit")
        ET.SubElement(case, "error", message=model.error or "not audited", type=model.error_kind or "error")
    return ET.tostring(suites, encoding="unicode", xml_declaration=True)
