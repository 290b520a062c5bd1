"""The study's comparison: p-values corrected across the models, regimes per family, the gate, and JUnit.

study.json's records are typed in `emoaudit.results.study`, its JSON Schema generated from them
(`emoaudit.results.schema`).
"""

from __future__ import annotations

from xml.etree import ElementTree as ET

import numpy as np
from scipy.stats import false_discovery_control

from emoaudit.report.gating import exit_status, junit_xml
from emoaudit.results.common import FailLevel
from emoaudit.results.evidence import ModelEvidence
from emoaudit.results.steering import REGIMES, Regime
from emoaudit.results.study import Family, Gate, ModelEntry, Study


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
    grouped: dict[str, list[tuple[str, dict[Regime, int]]]] = {}
    for model in models:
        if model.evidence is not None and model.evidence.regimes is not None:
            grouped.setdefault(model.evidence.model_type, []).append((model.slug, model.evidence.regimes))
    return [
        Family(name, [slug for slug, _ in members], {r: sum(counts[r] for _, counts in members) for r in REGIMES})
        for name, members in sorted(grouped.items())
    ]


def gate(models: list[ModelEntry], fail_on: FailLevel) -> Gate:
    """The study's exit status: 2 when any model could not be audited, else 1 when a finding of any model
    reaches `fail_on`, else 0."""
    failed = [m.reference for m in models if m.evidence is None]
    if failed:
        return Gate(fail_on, 2, f"not audited: {', '.join(failed)}")
    worst = [m.reference for m in models if m.evidence and exit_status(m.evidence.findings, fail_on)]
    if worst:
        return Gate(fail_on, 1, f"a finding reaches --fail-on {fail_on.value}: {', '.join(worst)}")
    return Gate(fail_on, 0, f"every model audited, no finding reaches --fail-on {fail_on.value}")


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
