"""Findings and report again from a results file, without running the model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from emoaudit.audit.results import read_results
from emoaudit.errors import EmoauditError
from emoaudit.report.gating import Check, evaluate, load_policy
from emoaudit.report.render import write_report
from emoaudit.spec import AuditSpec, load_spec
from emoaudit.storage import write_json


def rerender(path: Path, report: Path, policy: Path | None) -> tuple[dict[str, Any], list[Check]]:
    """Findings and report again from a results file: a changed policy applies without rerunning the model."""
    document = read_results(path)
    checks = evaluate(document, load_policy(policy))
    document["findings"] = [c.to_dict() for c in checks]
    write_json(path, document)
    write_report(report, document, checks, _spec_of(document))
    return document, checks


def _spec_of(document: dict[str, Any]) -> AuditSpec | None:
    """The audit specification a run used, when it is still where it was (for the reference ratings)."""
    try:
        spec = load_spec(document["audit"]["path"])
    except EmoauditError:
        return None
    return spec if spec.sha256 == document["audit"]["sha256"] else None
