"""Reading an audit specification's TOML and its data files into the typed tables (`spec.tables`): one
pydantic TypeAdapter per table, strict JSON mode, and a problem as one line naming the file, table and key."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from pydantic import TypeAdapter, ValidationError
from pydantic_core import ErrorDetails

from emoaudit.errors import EmoauditError
from emoaudit.spec.tables import DATA_TYPES, SpecDocument

T = TypeVar("T")
_UNKNOWN = ("unexpected_keyword_argument", "extra_forbidden")
# Keys an earlier specification had: a specification written for it is told what replaced them, not "unknown".
_REMOVED = {
    "refusal_margin": "the refusal judge's prototype margin, removed: a reader's probe replaced the prototypes "
    "([files] refusal_reader, docs/behaviour.md)",
    "prototypes": "the refusal judge's prototypes, removed: a reader's probe replaced them ([files] refusal_reader, "
    "docs/behaviour.md)",
    "refusal_heads": "the refusal judge's heads over a sentence encoder, removed: a probe on a reader model that "
    "reads the request beside the reply replaced them ([files] refusal_reader, docs/behaviour.md)",
}


def named_tables(tables: object) -> object:
    """{key: table} with each table given its key as `name` (a table that writes its own is refused later)."""
    if not isinstance(tables, dict):
        return tables
    return {key: {"name": key, **table} if isinstance(table, dict) else table for key, table in tables.items()}


def read_document(raw: dict[str, Any], source: str) -> SpecDocument:
    """The parsed TOML as a SpecDocument; EmoauditError `SOURCE: [table] problem with 'key'` otherwise."""
    tables: dict[str, Any] = {t: named_tables(raw[t]) for t in ("profiles", "emotions") if t in raw}
    named: dict[str, Any] = {**raw, **tables}
    # default=str: a TOML date becomes a string, which every field here refuses with a clear message.
    return _validate(TypeAdapter(SpecDocument), json.dumps(named, default=str), source, _toml_place)


def read_data(kind: str, text: str, source: str, types: dict[str, Any] = DATA_TYPES) -> Any:
    """A data file's JSON text validated as the type its `[files]` key names in `types`; EmoauditError otherwise."""
    return _validate(TypeAdapter(types[kind]), text, source, _json_place)


def _validate(adapter: TypeAdapter[T], text: str, source: str, place: Callable[[Sequence[Any], bool], str]) -> T:
    try:
        return adapter.validate_json(text, strict=True)
    except ValidationError as exc:
        # An unknown key first: a misspelt key is also reported missing under its right name.
        errors = sorted(exc.errors(), key=lambda e: e["type"] not in _UNKNOWN)
        raise EmoauditError(f"{source}: {_problem(errors[0], place)}") from exc


def _problem(error: ErrorDetails, place: Callable[[Sequence[Any], bool], str]) -> str:
    """One validation error in words: where (table and key), what is wrong, and the value found."""
    loc = list(error["loc"])
    if error["type"] == "missing":
        return f"{place(loc[:-1], True)} missing key {loc[-1]!r}"
    if error["type"] in _UNKNOWN:
        removed = _REMOVED.get(str(loc[-1]))
        return f"{place(loc[:-1], True)} unknown key {loc[-1]!r}" + (f" ({removed})" if removed else "")
    message = error["msg"].removeprefix("Value error, ")
    found = repr(error["input"])
    found = found if len(found) <= 60 else found[:57] + "..."
    return f"{place(loc, False)}: {message[:1].lower()}{message[1:]}, not {found}"


def _toml_place(loc: Sequence[Any], table: bool) -> str:
    """A table (`[profiles.quick]`, `(top level)`) or a key in one (`[steering] key 'multipliers' item 2`)."""
    names = [str(p) for p in loc if isinstance(p, str)]
    if table or not names:
        return f"[{'.'.join(names)}]" if names else "(top level)"
    items = "".join(f" item {p + 1}" for p in loc if isinstance(p, int))
    return f"{_toml_place(names[:-1], True)} key {names[-1]!r}{items}"


def _json_place(loc: Sequence[Any], table: bool) -> str:
    """A JSON path: `scenarios[2].kind`, and a colon after an object that misses or has too many keys."""
    path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".") or "(top level)"
    return f"{path}:" if table else path
