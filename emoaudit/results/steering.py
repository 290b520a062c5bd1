"""What the steering stage records: the calibrated strength grid, the judge and how well it did, and the
trials summarised as success rates and an emotion × strength regime map."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Literal

from pydantic import ConfigDict

from emoaudit.results.common import Count, Fraction, NonNegative, PositiveCount, Resources, WithKeys
from emoaudit.results.convert import OMITTED_IF_NONE

RegimeCounts = dict[str, int]  # trials per regime, every regime named (0 when none)
Regime = Literal["surgical", "repetitive_collapse", "explosive", "no_effect"]  # described in steering.regimes
REGIMES: tuple[Regime, ...] = ("surgical", "no_effect", "repetitive_collapse", "explosive")
# Trials per regime, every regime named and no other key (what a study sums per model and family).
AllRegimes = Annotated[dict[Regime, Count], WithKeys(REGIMES)]
SteerPositions = Literal["all", "generated"]  # where steering adds its vector


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
    # The judge on the model's own stories (stories.jsonl), each labelled by the emotion its prompt asked
    # for: how often the judge finds the intended emotion in what the generation method read (None in
    # results written before it was measured).
    stories: Annotated[JudgeValidation | None, OMITTED_IF_NONE] = None


@dataclass(frozen=True)
class Example:
    """A steered trial shown in the report, beside the unsteered continuation of the same prompt."""

    scenario: str
    prompt: str
    emotion: str
    strength: float
    text: str
    perplexity_ratio: float | None
    judge_gain: float | None
    unsteered_text: str
    judge_top_before: dict[str, float]  # the judge's top emotions of the unsteered text, best first
    judge_top_after: dict[str, float]  # ... and of the steered text
    target_rank: int | None  # 0-based rank of the target's gain among all the emotions' gains


@dataclass(frozen=True)
class RateEstimate:
    """Surgical trials of a selection against the random-direction controls at the same strengths.

    `rate` is successes / trials with its 95% Wilson score interval [ci_low, ci_high] (None without
    trials); `control_rate` is the share of control trials (each counted once per emotion of the
    selection) that pass the same criterion for that emotion; `p_value` is Fisher's exact test, one-sided
    (steered rate > control rate); `q_value` its Benjamini-Hochberg adjustment across the steered emotions
    (per-emotion estimates only, None elsewhere).
    """

    trials: Count
    successes: Count
    rate: Fraction | None
    ci_low: Fraction | None
    ci_high: Fraction | None
    control_trials: int
    control_successes: int
    control_rate: Fraction | None
    p_value: Fraction | None
    q_value: Fraction | None

    def quote(self) -> str:
        """rate [ci_low, ci_high] of n, the control's rate, and the q-value (or the p-value of a pooled
        estimate): the words every finding, the model card and the terminal use for an estimate."""
        if self.rate is None or self.ci_low is None or self.ci_high is None:
            return "no trials"
        control = "n/a" if self.control_rate is None else f"{self.control_rate:.0%}"
        q, p = self.q_value, self.p_value
        test = f"q = {q:.2g}" if q is not None else f"p = {p:.2g}" if p is not None else ""
        return (
            f"{self.rate:.0%} [{self.ci_low:.0%}, {self.ci_high:.0%}] of {self.trials} surgical, control {control} "
            f"of {self.control_trials}, {test}"
        )


@dataclass(frozen=True)
class SteeringStatistics:
    """Success against the control: per emotion × strength, and per emotion and overall within the
    calibrated range (multipliers up to `calibrated_range`), where the policy reads them."""

    calibrated_range: float
    confidence: float  # of the Wilson intervals
    cells: dict[str, dict[str, RateEstimate]]  # emotion -> str(multiplier)
    by_emotion: dict[str, RateEstimate]  # within the calibrated range; q-values across these emotions
    overall: RateEstimate  # all steered emotions pooled, within the calibrated range


@dataclass(frozen=True)
class Controls:
    """The random-direction controls: `directions` seeded unit directions (seed `seed`), each steered at
    every scenario and strength, scaled like the emotion vectors."""

    kind: Literal["random"]
    directions: PositiveCount
    seed: int
    trials: Count
    percentile: float  # a trial's gain must exceed this percentile of the controls' gain for its emotion
    top_k: PositiveCount  # ... and rank among the k largest gains of the emotions
    thresholds: dict[str, dict[str, float]]  # emotion -> str(multiplier) -> the controls' percentile gain


@dataclass(frozen=True)
class SteeringSummary:
    """Rates are shares of steered trials (None where there was none); maps are keyed by emotion, and
    by str(multiplier) within an emotion."""

    trials: int  # steered trials (random-direction controls are counted in Steering.controls)
    success_rate: float | None
    success_definition: str
    judge_moved_rate: float | None
    success_by_emotion: dict[str, float | None]
    success_by_multiplier: dict[str, float | None]
    regime_totals: Annotated[dict[str, Count], WithKeys(REGIMES)]  # a RegimeCounts
    regime_map: dict[str, dict[str, RegimeCounts]]
    largest_surgical_strength: dict[str, float | None]  # the largest strength at which most trials are surgical
    examples: dict[str, list[Example]]  # by regime
    statistics: SteeringStatistics

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
    steer_positions: SteerPositions  # "all": the delta is added at every position; "generated": only after the prompt
    controls: Controls
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


@dataclass(frozen=True)
class Calibration:
    """The strength at which steering starts to move the next-token distribution by `target_kl` nats."""

    unit_strength: float
    target_kl: float
    probed: list[tuple[float, float]]  # (strength, mean KL) pairs measured


@dataclass(frozen=True)
class JudgeValidation:
    """How well a judge names the emotion of labelled sentences it was not built from.

    Accuracies are shares of the sentences whose true label is the judge's top label (top-1) or among
    its three top labels (top-3), each with its 95% Wilson score interval (Wilson 1927, as
    scipy.stats.binomtest computes it). `confusion` maps each true label to the labels the judge put
    first for its sentences, with their counts (labels never put first are left out), so that a row
    sums to that label's sentences and its diagonal is that label's hits.
    """

    accuracy: float  # top-1
    top3: float
    n: int
    per_label: dict[str, float]  # top-1 accuracy of each true label
    # None only in results written before they were measured (read back by `report` and `compare`).
    ci_low: Annotated[Fraction | None, OMITTED_IF_NONE] = None  # of the top-1 accuracy
    ci_high: Annotated[Fraction | None, OMITTED_IF_NONE] = None
    top3_ci_low: Annotated[Fraction | None, OMITTED_IF_NONE] = None
    top3_ci_high: Annotated[Fraction | None, OMITTED_IF_NONE] = None
    per_label_top3: Annotated[dict[str, float] | None, OMITTED_IF_NONE] = None
    # true label -> top label -> sentences
    confusion: Annotated[dict[str, dict[str, PositiveCount]] | None, OMITTED_IF_NONE] = None


@dataclass(frozen=True)
class NoiseFloor:
    """Score changes of unsteered variants against their scenario's greedy continuation.

    Spreads are the `quantile` of |change| in judge score units; `margin_rate` is the share of
    (variant, label) pairs whose score rose by at least `margin`.
    """

    comparisons: dict[str, PositiveCount]  # variants compared, by source
    quantile: Fraction
    overall: NonNegative  # over every label and variant
    by_source: dict[str, float]
    per_label: dict[str, float]
    margin: float  # the specification's judge_margin
    margin_rate: Fraction
    samples: str  # the variants with their scores, relative to the output directory


@dataclass(frozen=True)
class Thresholds:
    distinct2_min: float  # below: repetitive
    repeat_share_max: float  # share of tokens inside a back-to-back repeated n-gram; above: repetitive
    perplexity_ratio_max: float  # above: explosive
    judge_margin: float  # the target's judge score must rise by this much over the unsteered text
    min_tokens: int  # shorter texts are too short to call repetitive
    top_k: int  # the target's rise must rank among the judge's k largest rises (0-based rank < k)
    control_percentile: float  # ... and exceed this percentile of the random-direction controls' rise
    calibrated_range: float  # multipliers up to this are pooled into the per-emotion and overall rates
    # Loops past adjacency (`steering.fluency`); None: not checked (specifications before them).
    # share of words inside a word trigram said earlier; above: repetitive (absent from results when None)
    echo_share_max: Annotated[float | None, OMITTED_IF_NONE] = None
    word_repeats_max: Annotated[int | None, OMITTED_IF_NONE] = None  # content-word recurrences; above: repetitive
