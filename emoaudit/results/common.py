"""What several parts of the results document share: severities, findings, memory high-water marks."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, core_schema

# Constraints the JSON Schema of results.json is generated from (results/reading.py), checked on reading too.
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]  # hex digest
Fraction = Annotated[float, Field(ge=0, le=1)]  # a share, rate, accuracy or p-value
NonNegative = Annotated[float, Field(ge=0)]
Count = Annotated[int, Field(ge=0)]
PositiveCount = Annotated[int, Field(ge=1)]
Curve = Annotated[list[float], Field(min_length=1)]  # one value per layer
PartialCurve = Annotated[list[float | None], Field(min_length=1)]  # None at a layer where it is undefined
DateTime = Annotated[str, Field(json_schema_extra={"format": "date-time"})]  # ISO 8601
# A note per layer index; JSON keys are strings, so the schema names which strings are layer indices
ByLayer = Annotated[dict[int, str], Field(json_schema_extra={"propertyNames": {"pattern": r"^(0|[1-9][0-9]*)$"}})]


@dataclass(frozen=True)
class WithKeys:
    """`Annotated[dict[...], WithKeys(...)]`: a mapping that must hold these keys (among others), in the JSON
    Schema as `required` and on reading as a validation error naming the missing ones."""

    keys: tuple[str, ...]

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        def check(value: dict[str, Any]) -> dict[str, Any]:
            missing = [key for key in self.keys if key not in value]
            if missing:
                raise ValueError(f"missing key {', '.join(missing)}")
            return value

        return core_schema.no_info_after_validator_function(check, handler(source))

    def __get_pydantic_json_schema__(self, schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        described = handler(schema)
        described["required"] = list(self.keys)
        return described


Severity = Literal["info", "low", "medium", "high"]
SEVERITIES: tuple[Severity, ...] = ("info", "low", "medium", "high")  # in rising order
UNDERPOWERED = "underpowered"  # the evidence key of a check resting on fewer samples than its min_n
# The evidence key of a check whose stage ran but that could not measure (no translations in the
# specification, a model that refuses nothing for steering to erode): neither a finding nor a pass.
NOT_MEASURED = "not_measured"


class FailLevel(str, Enum):
    """The least severity of a finding that gates a release (`--fail-on`): exit status 1; `never` gates nothing."""

    low = "low"
    medium = "medium"
    high = "high"
    never = "never"

    @property
    def floor(self) -> int:
        """The index in SEVERITIES from which a failed check gates; past the end for `never`."""
        return len(SEVERITIES) if self is FailLevel.never else SEVERITIES.index(self.value)

    def gates(self, check: Check) -> bool:
        """Whether `check` failed at this level or above on evidence enough to gate: an underpowered finding
        (`Check.underpowered`) cannot fail a gate on its own."""
        return check.failed and not check.underpowered and SEVERITIES.index(check.severity) >= self.floor


@dataclass(frozen=True)
class Check:
    """One policy check: passed, or failed with a finding (`failed`) of its severity."""

    id: str
    title: str
    # the policy's severity of the check, passed or failed (results before 0.x wrote "info" for a pass)
    severity: Severity
    failed: bool
    detail: str
    evidence: dict[str, Any]  # the numbers the check read, in the check's own terms

    @property
    def underpowered(self) -> bool:
        """Whether the check rests on fewer samples than its policy's min_n (`report.power`): a finding then
        cannot fail a gate on its own, and a pass cannot rule the threshold out."""
        return bool(self.evidence.get(UNDERPOWERED, False)) if isinstance(self.evidence, dict) else False

    @property
    def measured(self) -> bool:
        """False where the check's stage ran but gave it nothing to measure (`NOT_MEASURED`, the reason in
        `detail`): a release engineer must not read it as a pass."""
        return not (isinstance(self.evidence, dict) and self.evidence.get(NOT_MEASURED, False))


@dataclass(frozen=True)
class Resources:
    """High-water marks in bytes: this process's resident memory, the same before the model was loaded
    (interpreter and libraries), and the CUDA allocator's where the model ran on CUDA (None elsewhere)."""

    peak_rss_bytes: Count | None
    runtime_rss_bytes: Count | None
    peak_cuda_bytes: Count | None

    __pydantic_config__ = ConfigDict(extra="forbid")
