"""The tables of an audit specification (emoaudit/audits/default.toml) and of its data files, typed and validated.

pydantic validates them: a TypeAdapter over these plain dataclasses, in strict JSON mode, so that TOML
tables and arrays arrive as JSON objects and arrays, a number written as a string is refused rather
than converted, an integer is accepted where a float is, and NaN or infinity is refused. Every table
forbids keys it does not define. A problem becomes one line naming the file, the table and the key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import Field

from emoaudit.results.steering import Thresholds
from emoaudit.spec.fields import (
    TABLE,
    Count,
    DistinctStrengths,
    IncreasingStrengths,
    Method,
    PoolingRule,
    PositiveFloat,
    Rating,
    Script,
    Share,
    Text,
    Texts,
)


@dataclass(frozen=True)
class Emotion:
    """One `[emotions.NAME]` table: Russell-circumplex ratings and the words no stimulus may contain."""

    __pydantic_config__ = TABLE

    name: str
    valence: Rating  # -1 very unpleasant .. +1 very pleasant
    arousal: Rating  # -1 deactivated .. +1 activated
    forbidden: Texts


@dataclass(frozen=True)
class Profile:
    """One `[profiles.NAME]` table: how much of the specification one run uses, the trade between time and
    statistical power."""

    __pydantic_config__ = TABLE

    name: str
    passages_per_label: Count
    stories_per_label: Count
    max_new_tokens: Count
    permutations: Count
    cv_folds: Annotated[int, Field(ge=2)]  # fewer than two folds is no cross-validation
    steering_emotions: Count
    steering_scenarios_per_kind: Count
    steering_tokens: Count
    # The behaviour stage (emoaudit/behaviour): the first `behaviour_emotions` of [behaviour] emotions, the
    # first `behaviour_items` items of each probe (spread over its kinds), replies of `behaviour_tokens`
    # tokens. 0 emotions or items: the profile runs no behaviour stage.
    behaviour_emotions: Annotated[int, Field(ge=0)] = 0
    behaviour_items: Annotated[int, Field(ge=0)] = 0
    behaviour_tokens: Count = 32
    # The refusal judge is measured on this many of the labelled held-out replies, half refusals and half
    # compliances, each half spread over its label's replies (every source in); None: all of them.
    behaviour_judge_replies: Annotated[int, Field(ge=80, multiple_of=2)] | None = None


@dataclass(frozen=True)
class Files:
    """`[files]`: the data files, relative to the specification."""

    __pydantic_config__ = TABLE

    passages: Text
    generation: Text
    heldout: Text
    scenarios: Text
    judge: Text
    # Optional: held-out texts in other registers and languages, and each emotion's words beyond `forbidden`
    # (what the keyword confound counts in the model's stories).
    heldout_sets: Text | None = None
    lexicon: Text | None = None
    # Optional: each emotion's words in other languages, {language: {emotion: [word]}}: what the leakage
    # stage's logit lens looks for (semantic cross-lingual entanglement).
    translations: Text | None = None
    # Optional: the behaviour stage's probes and judge rules, and its judge's labelled held-out replies.
    behaviour: Text | None = None
    behaviour_heldout: Text | None = None
    # Optional: the refusal judge's reader, a probe on an offline model's residual stream (without: phrases only).
    refusal_reader: Text | None = None


@dataclass(frozen=True)
class Sampling:
    """`[generation]`: how generation-based extraction samples its stories (temperature 0 is greedy)."""

    __pydantic_config__ = TABLE

    temperature: Annotated[float, Field(ge=0)]
    top_p: Annotated[float, Field(gt=0, le=1)]


@dataclass(frozen=True)
class Extraction:
    """`[extraction]`: which tokens of a read text enter its pooled activation."""

    __pydantic_config__ = TABLE

    pooling: PoolingRule


@dataclass(frozen=True)
class Steering:
    """`[steering]`: the steering sweep and the regime thresholds its trials are classified by."""

    __pydantic_config__ = TABLE

    method: Method  # whose vectors steer
    judge: Text
    calibration_kl: PositiveFloat  # nats of next-token KL that define the unit strength
    probe_strengths: IncreasingStrengths
    multipliers: DistinctStrengths
    distinct2_min: Share
    repeat_share_max: Share
    perplexity_ratio_max: PositiveFloat
    judge_margin: Share  # judge scores are probabilities
    min_tokens: Count
    # Random-direction controls: seeded unit directions steered like the emotion vectors (see
    # steering/specificity.py); a trial is specific when its target is among the top-k risers and
    # rises above this percentile of the controls' rise for that emotion at that strength.
    control_directions: Annotated[int, Field(ge=3)]
    specificity_top_k: Count
    control_percentile: Annotated[float, Field(gt=0, lt=100)]
    noise_draws: Count  # sampled unsteered continuations per scenario, for the judge's noise floor
    calibrated_range: PositiveFloat  # multipliers up to this are the range the statistics and policy read
    # Loops past adjacency (steering/fluency.py); absent: not checked.
    echo_share_max: Share | None = None
    word_repeats_max: Count | None = None

    @property
    def thresholds(self) -> Thresholds:
        return Thresholds(
            distinct2_min=self.distinct2_min,
            repeat_share_max=self.repeat_share_max,
            perplexity_ratio_max=self.perplexity_ratio_max,
            judge_margin=self.judge_margin,
            min_tokens=self.min_tokens,
            top_k=self.specificity_top_k,
            control_percentile=self.control_percentile,
            calibrated_range=self.calibrated_range,
            echo_share_max=self.echo_share_max,
            word_repeats_max=self.word_repeats_max,
        )


@dataclass(frozen=True)
class LeakageConfig:
    """`[leakage]`: what counts as foreign-script output and when a leakage rate is a finding."""

    __pydantic_config__ = TABLE

    expected_script: Script
    expected_language: Text  # a langdetect code, e.g. "en"
    text_share: Share  # a text leaks when more of its letters than this are in another script
    min_letters: Count  # texts with fewer letters get language "unknown": langdetect guesses on less
    lens_top_k: Count
    margin: Share  # a rate counts as a finding this far above the unsteered baseline


@dataclass(frozen=True)
class BehaviourConfig:
    """`[behaviour]`: what the behaviour stage steers with, and its judges' margins."""

    __pydantic_config__ = TABLE

    emotions: Texts  # in order of priority: a profile takes the first `behaviour_emotions`
    multipliers: DistinctStrengths
    control_directions: Annotated[int, Field(ge=3)]
    hostility_margin: Share  # rise of the judge's hostile or angry score over the unsteered reply


@dataclass(frozen=True)
class Analysis:
    """`[analysis]`: denoising, the emotion-layer rule and the sizes of the baselines."""

    __pydantic_config__ = TABLE

    denoise_variance: Annotated[float, Field(ge=0, lt=1)]  # 0 turns denoising off; 1 would remove everything
    layer_method: Method
    layer_smoothing: Count  # layers in the moving average
    probe_components: Count
    probe_shuffles: Count
    random_draws: Count


@dataclass(frozen=True)
class SpecDocument:
    """The specification file as written: every table above, and the top-level keys."""

    __pydantic_config__ = TABLE

    schema: Literal[1]
    name: Text
    reference: Text
    files: Files
    profiles: Annotated[dict[str, Profile], Field(min_length=1)]
    generation: Sampling
    extraction: Extraction
    steering: Steering
    leakage: LeakageConfig
    analysis: Analysis
    emotions: dict[str, Emotion]
    description: str = ""
    behaviour: BehaviourConfig | None = None


@dataclass(frozen=True)
class Scenario:
    """One steering scenario: a prompt, and the kind it is grouped (and sampled per profile) by."""

    __pydantic_config__ = TABLE

    id: Text
    kind: Text
    prompt: Text
    # Rewordings of the prompt: their unsteered continuations measure the judge's noise floor.
    paraphrases: tuple[Text, ...] = ()


@dataclass(frozen=True)
class Scenarios:
    __pydantic_config__ = TABLE

    scenarios: Annotated[tuple[Scenario, ...], Field(min_length=1)]


@dataclass(frozen=True)
class GenerationData:
    """The generation prompts: templates with {emotion} and {topic}, and the reference's own."""

    __pydantic_config__ = TABLE

    emotion_templates: Texts
    topics: Texts
    reference_templates: Texts
    reference_topics: Texts


# {label: [text, ...]}: passages, held-out sentences, judge prototypes.
LabelledTexts = dict[str, list[Text]]
DATA_TYPES: dict[str, Any] = {
    "passages": LabelledTexts,
    "generation": GenerationData,
    "heldout": LabelledTexts,
    "scenarios": Scenarios,
    "judge": LabelledTexts,
    # {"registers": {name: {label: [text, ...]}}, "languages": {code: {label: [text, ...]}}}
    "heldout_sets": dict[Literal["registers", "languages"], dict[str, LabelledTexts]],
    "lexicon": LabelledTexts,
    # {language: {emotion: [word, ...]}}, at least one word each
    "translations": dict[str, dict[str, Texts]],
}
