"""Reading a results file: JSON that is strictly JSON, valid against the published JSON Schema, then typed."""

from __future__ import annotations

import json
import math
from importlib.resources import files
from pathlib import Path
from typing import Any, NoReturn

import jsonschema

from emoaudit.audit.results.convert import from_dict
from emoaudit.audit.results.document import RESULTS_SCHEMA_VERSION, Results
from emoaudit.errors import EmoauditError

SCHEMA_FILE = Path(str(files("emoaudit") / "results.schema.json"))


def schema() -> dict[str, Any]:
    """The JSON Schema of results.json, the published contract."""
    return json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))


def read_json(path: Path) -> Any:
    """A JSON file as Python values; NaN, Infinity and numbers too large for a float are refused.

    Python's json reads those (they are not JSON), and our own writer refuses to write them back.
    Raises EmoauditError for a missing file, bytes that are not UTF-8, or text that is not JSON.
    """
    if not path.is_file():
        raise EmoauditError(f"no results file at {path}")

    def non_finite(token: str) -> NoReturn:
        raise EmoauditError(f"{path} holds {token}, which is not JSON (numbers must be finite)")

    def finite(token: str) -> float:
        value = float(token)
        if not math.isfinite(value):
            non_finite(token)
        return value

    try:
        return json.loads(path.read_text(encoding="utf-8"), parse_constant=non_finite, parse_float=finite)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise EmoauditError(f"{path} is not JSON: {exc}") from exc


def read_results(path: Path) -> Results:
    """A results file, validated against the schema and read into `Results`; a bad one is a one-line
    EmoauditError saying where."""
    document = read_json(path)
    version = document.get("schema_version") if isinstance(document, dict) else None
    if isinstance(version, str) and version != RESULTS_SCHEMA_VERSION:
        raise EmoauditError(
            f"{path} has results schema {version}; this emoaudit reads {RESULTS_SCHEMA_VERSION}: "
            "rerun the audit (or report it with the emoaudit that wrote it)"
        )
    try:
        jsonschema.validate(document, schema())
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "top level"
        raise EmoauditError(f"{path} is not an emoaudit results file ({where}: {exc.message[:160]})") from exc
    return from_dict(Results, document, f"{path} is not an emoaudit results file")
