"""One converter between typed dataclasses and their JSON form, for results and policy alike: pydantic's
TypeAdapter over plain dataclasses (validation on the way in, field order kept on the way out)."""

from __future__ import annotations

from functools import cache
from typing import Any, TypeVar, cast

from pydantic import Field, TypeAdapter, ValidationError

from emoaudit.errors import EmoauditError

T = TypeVar("T")


def _absent_not_null(described: dict[str, Any]) -> None:
    """The JSON Schema of an OMITTED_IF_NONE field: optional, and never null when present."""
    described.pop("default", None)
    options = described.pop("anyOf")
    described.update(next(option for option in options if option != {"type": "null"}))


# A field the JSON leaves out, rather than writing null, when it holds None: a stage that was not run,
# findings before the gate ran. Its absence is what the JSON Schema expects, and null is refused.
OMITTED_IF_NONE = Field(exclude_if=lambda value: value is None, json_schema_extra=_absent_not_null)


@cache
def _adapter(cls: type[Any]) -> TypeAdapter[Any]:
    return TypeAdapter(cls)


def to_dict(obj: Any) -> dict[str, Any]:
    """A dataclass as the dict `json.dumps` writes: keys in field order, floats untouched (a NaN still
    fails the writer's allow_nan=False). A value of the wrong type raises PydanticSerializationError
    instead of reaching the file."""
    dumped: dict[str, Any] = _adapter(type(obj)).dump_python(obj, warnings="error")  # type: ignore[arg-type]  # types hash
    return dumped


def from_dict(cls: type[T], data: Any, source: str) -> T:
    """`data` (parsed JSON or TOML) as a `cls`, validated field by field.

    Raises EmoauditError, one line naming `source` and the bad keys (unknown, missing or of the wrong type):
    a misspelt key is both unknown and, under its right name, missing.
    """
    try:
        return cast(T, _adapter(cls).validate_python(data))  # type: ignore[arg-type]  # types hash
    except ValidationError as exc:
        errors = exc.errors()
        told = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'top level'}: {e['msg']}" for e in errors[:3])
        more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
        raise EmoauditError(f"{source}: {told}{more}") from exc
