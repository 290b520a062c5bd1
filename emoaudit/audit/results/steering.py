"""What the steering stage records: the calibrated strength grid, the judge and how well it did, and the
trials summarised as success rates and an emotion × strength regime map."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from pydantic import ConfigDict

from emoaudit.audit.results.common import Resources
from emoaudit.audit.results.convert import OMITTED_IF_NONE
from emoaudit.steering.calibration import Calibration
from emoaudit.steering.judge import JudgeValidation
from emoaudit.steering.noise import NoiseFloor
from emoaudit.steering.regimes import Thresholds

RegimeCounts = dict[str, int]  # trials per regime, every regime named (0 when none)


@dataclass(frozen=True)
class SteeringScenario:
    """A scenario as the results record it (independent of how the specification stores it)."""

    id: str
    kind: str
    prompt: str


@dataclass(frozen=True)
class JudgeInfo:
    name: str
    kind: str
    validation: JudgeValidation
    validation_set: str
    # How far unsteered continuations move the judge (None in results written before it was measured).
    noise_floor: Annotated[NoiseFloor | None, OMITTED_IF_NONE] = None


@dataclass(frozen=True)
class Example:
    """A steered trial shown in the report."""

    scenario: str
    prompt: str
    emotion: str
    strength: float
    text: str
    perplexity_ratio: float | None
    judge_gain: float | None


@dataclass(frozen=True)
class SteeringSummary:
    """Rates are shares of steered trials (None where there was none); maps are keyed by emotion, and
    by str(multiplier) within an emotion."""

    trials: int  # steered trials
    success_rate: float | None
    success_definition: str
    judge_moved_rate: float | None
    success_by_emotion: dict[str, float | None]
    success_by_multiplier: dict[str, float | None]
    regime_totals: RegimeCounts
    regime_map: dict[str, dict[str, RegimeCounts]]
    largest_surgical_strength: dict[str, float | None]  # the largest strength at which most trials are surgical
    examples: dict[str, list[Example]]  # by regime

    def regime_share(self, regime: str) -> float | None:
        """The share of steered trials in `regime`; None when there were no steered trials."""
        return self.regime_totals[regime] / self.trials if self.trials else None


@dataclass(frozen=True)
class SteeringTokens:
    generated: int


@dataclass(frozen=True)
class Steering:
    """The steering stage: stages/steering.json, and results.json's stages.steering."""

    method: str  # whose vectors were steered with
    layer: int
    mean_norm: float  # the layer's mean residual norm: strengths are in units of it
    emotions: list[str]
    scenarios: list[SteeringScenario]
    calibration: Calibration
    multipliers: list[float]  # of the calibrated unit strength
    strengths: list[float]  # the multipliers times the unit strength
    max_new_tokens: int
    decoding: str
    thresholds: Thresholds
    judge: JudgeInfo
    summary: SteeringSummary
    samples: str  # the trials, one JSON line each, relative to the output directory
    tokens: SteeringTokens
    timings: dict[str, float] = field(default_factory=dict)  # seconds, set by the run
    resources: Annotated[Resources | None, OMITTED_IF_NONE] = None  # set by the run

    __pydantic_config__ = ConfigDict(extra="forbid")
