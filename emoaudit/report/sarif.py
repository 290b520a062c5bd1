"""Findings as SARIF 2.1.0 (OASIS Static Analysis Results Interchange Format), for code-scanning dashboards.

One rule per policy check (its id, title, the rule's definition as help text, the policy's severity as
default level) and one result per failed finding; the audited model, by reference and sha256, is the
artifact every result points at. Severity maps to SARIF levels as high -> error, medium -> warning,
low and info -> note.
"""

from __future__ import annotations

import inspect
from dataclasses import fields
from typing import Any

from emoaudit import __version__
from emoaudit.escaping import uri_reference
from emoaudit.results.common import Check, FailLevel
from emoaudit.results.document import Results
from emoaudit.report.decision import decide
from emoaudit.report.policy import LeakageRule, Policy

SARIF_SCHEMA = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
LEVELS = {"high": "error", "medium": "warning", "low": "note", "info": "note"}
INFORMATION_URI = "https://pypi.org/project/emoaudit/"


def sarif_document(
    results: Results, checks: list[Check], policy: Policy, fail_on: FailLevel = FailLevel.high
) -> dict[str, Any]:
    """The SARIF log of one audit: its rules, its failed findings, the model as artifact, and the decision of
    the gate `--fail-on fail_on` in the run's properties."""
    decision = decide(checks, fail_on)
    rules = [_rule(f.name, getattr(policy, f.name)) for f in fields(policy)]
    index = {rule["id"]: i for i, rule in enumerate(rules)}
    model = results.model
    artifact: dict[str, Any] = {
        "location": {"uri": uri_reference(model.reference)},
        "description": {"text": model.reference},
    }
    if model.sha256:
        artifact["hashes"] = {"sha-256": model.sha256}
    location = {"physicalLocation": {"artifactLocation": {"uri": uri_reference(model.reference), "index": 0}}}
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "emoaudit",
                        "version": __version__,
                        "informationUri": INFORMATION_URI,
                        "rules": rules,
                    }
                },
                "artifacts": [artifact],
                "results": [
                    {
                        "ruleId": check.id,
                        "ruleIndex": index[check.id],
                        "level": LEVELS[check.severity],
                        "message": {"text": check.detail},
                        "locations": [location],
                        "properties": {
                            "severity": check.severity,
                            "underpowered": check.underpowered,
                            "evidence": check.evidence,
                        },
                    }
                    for check in checks
                    if check.failed and check.id in index
                ],
                "properties": {
                    "decision": decision.sentence,
                    "gate": {
                        "fail_on": decision.fail_on.value,
                        "passes": decision.passes,
                        "findings": list(decision.gating),
                        "not_measured": list(decision.unmeasured),
                    },
                    "model": {"reference": model.reference, "sha256": model.sha256, **_weights(results)},
                    "specification_sha256": results.audit.sha256,
                    "profile": results.audit.profile,
                },
            }
        ],
    }


def _weights(results: Results) -> dict[str, str]:
    """What kind of weights were audited, where they were not the full-precision release."""
    kinds = {"gguf_type": results.model.gguf_type, "quantization": results.model.quantization}
    return {key: value for key, value in kinds.items() if value}


def _rule(check_id: str, rule: Any) -> dict[str, Any]:
    level = LEVELS[rule.minimum if isinstance(rule, LeakageRule) else rule.severity]
    help_text = inspect.cleandoc(type(rule).__doc__ or rule.title)
    return {
        "id": check_id,
        "name": "".join(part.title() for part in check_id.split("_")),
        "shortDescription": {"text": rule.title},
        "fullDescription": {"text": help_text},
        "help": {"text": help_text},
        "defaultConfiguration": {"level": level},
    }
