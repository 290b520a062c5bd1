"""What the leakage stage records: foreign-script text and logit-lens tokens per emotion × strength, against
the unsteered baseline, and the severity that follows."""

from __future__ import annotations

from typing import Annotated
from dataclasses import dataclass, field

from pydantic import ConfigDict

from emoaudit.audit.results.convert import OMITTED_IF_NONE
from emoaudit.audit.results.common import Resources, Severity


@dataclass(frozen=True)
class LeakageThresholds:
    text_share: float  # a text leaks when more of its letters than this are in another script
    margin: float  # a rate counts as a finding this far above the unsteered baseline
    lens_top_k: int
    # texts with fewer letters have language "unknown"; absent in audits from before it was a threshold
    min_letters: Annotated[int | None, OMITTED_IF_NONE] = None


@dataclass(frozen=True)
class LeakageBaseline:
    """The unsteered texts and prompts."""

    output_rate: float  # share of texts that leak
    lens_foreign_share: float  # share of lettered top-k lens tokens in another script
    languages: dict[str, int]  # texts per detected language


@dataclass(frozen=True)
class LeakageCell:
    """One emotion at one strength."""

    emotion: str
    multiplier: float
    strength: float
    output_rate: float
    output_rate_above_baseline: float
    mean_foreign_share: float
    languages: dict[str, int]
    lens_foreign_share: float
    lens_above_baseline: float
    evidence_spans: list[str]  # foreign-script runs with context, from the texts
    evidence_tokens: list[str]  # foreign-script tokens the lens promoted


@dataclass(frozen=True)
class VectorLens:
    """What a vector itself promotes: the lens of the mean state with and without it."""

    top_tokens: list[str]
    foreign_share: float
    foreign_tokens: list[str]


@dataclass(frozen=True)
class Leakage:
    """The leakage stage: stages/leakage.json, and results.json's stages.leakage."""

    layer: int
    expected_script: str
    expected_language: str
    thresholds: LeakageThresholds
    baseline: LeakageBaseline
    other_language_rate: float  # steered texts langdetect assigns to another language
    cells: list[LeakageCell]
    vector_lens: dict[str, VectorLens]  # by emotion
    findings: list[LeakageCell]  # the cells above the baseline by the margin
    severity: Severity
    timings: dict[str, float] = field(default_factory=dict)  # seconds, set by the run
    resources: Annotated[Resources | None, OMITTED_IF_NONE] = None  # set by the run

    __pydantic_config__ = ConfigDict(extra="forbid")
