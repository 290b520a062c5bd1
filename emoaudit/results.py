"""The results file: reading and validating it against its JSON Schema, and re-rendering its report."""

from __future__ import annotations

import json
from importlib.resources import files
from pathlib import Path
from typing import Any

import jsonschema

from emoaudit.errors import EmoauditError
from emoaudit.gating import Check, evaluate, load_policy
from emoaudit.report import write_report
from emoaudit.spec import AuditSpec, load_spec
from emoaudit.storage import write_json

SCHEMA_FILE = Path(str(files("emoaudit") / "results.schema.json"))


def schema() -> dict[str, Any]:
    return json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))


def read_results(path: Path) -> dict[str, Any]:
    """A results file, validated; a bad one is a one-line error."""
    if not path.is_file():
        raise EmoauditError(f"no results file at {path}")
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise EmoauditError(f"{path} is not JSON: {exc}") from exc
    try:
        jsonschema.validate(document, schema())
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "top level"
        raise EmoauditError(f"{path} is not an emoaudit results file ({where}: {exc.message[:160]})") from exc
    return document


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
