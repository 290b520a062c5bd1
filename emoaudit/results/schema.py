"""The JSON Schema of results.json, the published contract, generated from the typed records (pydantic's
TypeAdapter over `Results`): a field added to a dataclass, or a constraint on its type (a pattern, a bound,
a Literal, a required key), is in the schema with no second place to edit.

`python -m emoaudit.results.schema` prints it."""

from __future__ import annotations

import copy
import json
from functools import cache
from typing import Any

from pydantic import TypeAdapter

from emoaudit.results.document import Results


@cache
def _generated() -> dict[str, Any]:
    described = TypeAdapter(Results).json_schema(mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://emoaudit.invalid/results.schema.json",
        **described,
        "title": "emoaudit results",
    }


def results_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) a results file must satisfy; a fresh copy, the caller may change it."""
    return copy.deepcopy(_generated())


if __name__ == "__main__":
    print(json.dumps(results_schema(), indent=2))
