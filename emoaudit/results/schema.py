"""The JSON Schemas of results.json and study.json, the published contracts, generated from the typed records
(pydantic's TypeAdapter over `Results` and `Study`): a field added to a dataclass, or a constraint on its type
(a pattern, a bound, a Literal, a required key), is in the schema with no second place to edit.

`python -m emoaudit.results.schema` prints results.json's; `python -m emoaudit.results.schema study`, study.json's."""

from __future__ import annotations

import copy
import json
import sys
from functools import cache
from typing import Any

from pydantic import TypeAdapter

from emoaudit.results.document import Results
from emoaudit.results.study import Study

DOCUMENTS: dict[str, type[Any]] = {"results": Results, "study": Study}


@cache
def _generated(name: str) -> dict[str, Any]:
    described = TypeAdapter(DOCUMENTS[name]).json_schema(mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://emoaudit.invalid/{name}.schema.json",
        **described,
        "title": f"emoaudit {name}",
    }


def results_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) a results file must satisfy; a fresh copy, the caller may change it."""
    return copy.deepcopy(_generated("results"))


def study_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) a study.json must satisfy; a fresh copy, the caller may change it."""
    return copy.deepcopy(_generated("study"))


if __name__ == "__main__":
    which = sys.argv[1] if len(sys.argv) > 1 else "results"
    if which not in DOCUMENTS:
        print(f"usage: python -m emoaudit.results.schema [{'|'.join(DOCUMENTS)}]", file=sys.stderr)
        sys.exit(2)
    print(json.dumps(copy.deepcopy(_generated(which)), indent=2))
