"""The constrained values the specification's tables are built from (`spec.tables`, `spec.behaviour`).

Each is an `Annotated` type that pydantic checks when a table is validated: a bad value becomes a
`ValueError` whose message the reader turns into one line naming the file, the table and the key.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, ConfigDict, Field, PlainValidator

from emoaudit.errors import EmoauditError
from emoaudit.spec.pooling import Pooling
from emoaudit.spec.scripts import SCRIPT_RANGES

# Every table: no key it does not define, and only finite numbers.
TABLE = ConfigDict(extra="forbid", allow_inf_nan=False)


def _increasing(values: tuple[float, ...]) -> tuple[float, ...]:
    if any(b <= a for a, b in zip(values, values[1:], strict=False)):
        raise ValueError("the values must increase")
    return values


def _distinct(values: tuple[float, ...]) -> tuple[float, ...]:
    if len(set(values)) < len(values):
        raise ValueError("the values must differ")
    return values


def _pooling(value: object) -> Pooling:
    if not isinstance(value, str):
        raise ValueError("input should be a string: mean, mean:K or last")
    try:
        return Pooling.parse(value)
    except EmoauditError as exc:
        raise ValueError(str(exc)) from None


def _script(value: str) -> str:
    known = list(dict.fromkeys(script for *_, script in SCRIPT_RANGES))
    if value not in known:
        raise ValueError(f"unknown script; known: {', '.join(known)}")
    return value


Text = Annotated[str, Field(min_length=1)]
Texts = Annotated[tuple[Text, ...], Field(min_length=1)]
Share = Annotated[float, Field(ge=0, le=1)]
Rating = Annotated[float, Field(ge=-1, le=1)]
Count = Annotated[int, Field(gt=0)]
PositiveFloat = Annotated[float, Field(gt=0)]
# A steering strength or multiplier: a thousand times the layer's own residual norm already drowns the
# residual; far larger values only overflow floating point (inf, then NaN) in the model's normalisation,
# which surfaces as NaN in the results after the whole steering sweep has run.
Strength = Annotated[float, Field(gt=0, le=1000)]
Method = Literal["comprehension", "generation"]
# A table's checked values whose check is a function above.
IncreasingStrengths = Annotated[tuple[Strength, ...], Field(min_length=1), AfterValidator(_increasing)]
DistinctStrengths = Annotated[tuple[Strength, ...], Field(min_length=1), AfterValidator(_distinct)]
PoolingRule = Annotated[Pooling, PlainValidator(_pooling)]
Script = Annotated[str, AfterValidator(_script)]
