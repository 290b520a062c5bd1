"""What the leakage stage records: foreign-script text and logit-lens tokens per emotion × strength, against
the unsteered baseline, and the severity that follows."""

from __future__ import annotations

from typing import Annotated
from dataclasses import dataclass, field

from pydantic import ConfigDict, Field

from emoaudit.results.convert import OMITTED_IF_NONE
from emoaudit.results.common import Count, Fraction, Resources, Severity

LogProb = Annotated[float, Field(le=0)]  # nats
Rank = Annotated[float, Field(ge=1)]  # 1 = the top token


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
class SemanticPair:
    """One steered emotion's own words in one language, read by the logit lens at the steering layer, pooled
    over the steering scenarios and the calibrated strengths. Log-probabilities are natural-log
    log-softmax of the lens logits summed over the words' first tokens (the mass on "the next token
    begins one of the words"); ranks are the median best rank of those tokens (1 = the top token)."""

    logprob_unsteered: LogProb
    logprob_steered: LogProb  # under the emotion's vector
    logprob_random: LogProb  # under the random directions of the same norm, mean over directions
    rank_unsteered: Rank
    rank_steered: Rank
    rank_random: Rank
    rise: float  # logprob_steered - logprob_unsteered, nats
    random_rise: float  # logprob_random - logprob_unsteered, nats
    excess: float  # rise - random_rise: what the emotion's vector adds beyond a random direction
    other_rise: float  # the largest rise of another emotion's words (same language) under this vector
    # rise minus the mean rise of the other emotions' words (same language) under this vector: how much more
    # the vector raises its own emotion's words than emotional words in general
    selectivity: float
    specific: bool  # rise above every random direction's and above every other emotion's words'


@dataclass(frozen=True)
class SemanticLanguage:
    """One language: which first tokens stand for each emotion's words, and the steered emotions' pairs."""

    tokens: dict[str, list[str]]  # emotion -> its words' usable first tokens, decoded (empty: none usable)
    unusable_words: Count  # words none of whose first tokens is usable (see SemanticEntanglement.tokens_rule)
    mean_excess: float | None  # over the steered emotions with usable tokens; None when there is none
    specific_share: Fraction | None
    emotions: dict[str, SemanticPair]  # steered emotion -> its pair, for emotions with usable tokens


@dataclass(frozen=True)
class SemanticEntanglement:
    """Does steering toward an emotion raise that emotion's own words in other languages (the specification's
    translations) in the logit lens, beyond a random direction of the same norm? Apart from the
    foreign-script share: a foreign script can surface without meaning, and meaning without one (es, fr, de)."""

    tokens_rule: str  # how the words' first tokens are chosen, in words
    multipliers: list[float]  # the calibrated strengths pooled (multiplier <= calibrated_range)
    control_directions: int  # the steering stage's seeded random directions, reused
    control_seed: int
    languages: dict[str, SemanticLanguage]
    by_emotion: dict[str, float]  # steered emotion -> its excess, mean over languages
    by_multiplier: dict[str, float]  # str(multiplier) -> mean excess over pairs, every multiplier steered
    pairs: Count  # (emotion, language) pairs scored
    mean_rise: float  # over the pairs, nats
    mean_random_rise: float
    mean_excess: float
    specific_share: Fraction  # share of pairs whose emotion's words rise specifically (see SemanticPair)
    emotions_higher: Count  # steered emotions whose excess (by_emotion) is above 0
    p_value: Fraction | None  # one-sided Wilcoxon signed-rank test of by_emotion > 0; None without a non-zero excess
    by_emotion_selectivity: dict[str, float]  # steered emotion -> its selectivity, mean over languages
    mean_selectivity: float
    selectivity_p_value: Fraction | None  # the same test of by_emotion_selectivity > 0
    test: str


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
    # The specification's translations in the logit lens; absent without translations, and in older audits.
    semantic: Annotated[SemanticEntanglement | None, OMITTED_IF_NONE] = None

    __pydantic_config__ = ConfigDict(extra="forbid")
