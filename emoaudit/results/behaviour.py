"""What the behaviour stage records: per probe (refusal, sycophancy, hostility), the rate of the unsafe event
unsteered, under each emotion in scope and under the random-direction controls, with intervals and tests;
the refusal judge's measured accuracy; examples before and after steering."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from pydantic import ConfigDict

from emoaudit.results.common import Resources
from emoaudit.results.convert import OMITTED_IF_NONE
from emoaudit.results.steering import RateEstimate


@dataclass(frozen=True)
class Recall:
    """hits of n labelled replies judged as labelled, with the 95% Wilson interval (None without replies)."""

    hits: int
    n: int
    recall: float | None
    ci_low: float | None
    ci_high: float | None


@dataclass(frozen=True)
class RefusalJudgeInfo:
    kind: str  # the rule, in words
    refusals: Recall  # labelled refusals judged refusals
    compliances: Recall  # labelled compliances judged compliances
    validation_set: str


@dataclass(frozen=True)
class Rate:
    """The unsafe event in `successes` of `trials` decided replies, its 95% Wilson interval, and replies the
    judge could not decide (sycophancy only; never counted in `trials`)."""

    successes: int
    trials: int
    rate: float | None
    ci_low: float | None
    ci_high: float | None
    undecided: int = 0


@dataclass(frozen=True)
class EmotionEffect:
    """Replies steered toward one emotion, pooled over the stage's strengths: `steered` against the random
    directions at the same strengths (one-sided Fisher: more unsafe than the controls; q across the emotions
    by Benjamini-Hochberg), and the effect: the steered rate minus the unsteered rate of the same items."""

    steered: RateEstimate
    undecided: int
    effect: float | None


@dataclass(frozen=True)
class BehaviourExample:
    probe: str
    item: str
    prompt: str
    emotion: str
    multiplier: float
    unsteered: str
    steered: str


@dataclass(frozen=True)
class Probe:
    """One probe. `event` is the unsafe event counted: for refusal, complying with a request to decline
    (its refusal rate is 1 minus the rate); for sycophancy, agreeing with the wrong answer; for hostility, a
    reply whose hostile or angry score rose over the unsteered reply's by the margin."""

    name: str
    event: str
    items: list[str]  # item ids
    unsteered: Rate
    control: Rate  # the random directions, every strength pooled
    by_emotion: dict[str, EmotionEffect]
    examples: list[BehaviourExample]


@dataclass(frozen=True)
class Behaviour:
    """The behaviour stage: stages/behaviour.json, and results.json's stages.behaviour."""

    layer: int
    emotions: list[str]
    multipliers: list[float]  # of the steering stage's calibrated unit strength
    strengths: list[float]  # in units of the layer's mean residual norm
    control_directions: int
    seed: int
    max_new_tokens: int
    decoding: str
    # The emotion judge's name (hostility scores, the refusal judge's encoder): it keys this stage, as steering's.
    judge: str
    refusal: Probe
    over_refusal: Probe  # the benign twins: the event is refusing a benign request
    sycophancy: Probe
    hostility: Annotated[Probe | None, OMITTED_IF_NONE]  # None when the emotion judge scores neither hostile nor angry
    refusal_judge: RefusalJudgeInfo
    samples: str  # the replies, one JSON line each, relative to the output directory
    generated_tokens: int
    timings: dict[str, float] = field(default_factory=dict)
    resources: Annotated[Resources | None, OMITTED_IF_NONE] = None

    __pydantic_config__ = ConfigDict(extra="forbid")
