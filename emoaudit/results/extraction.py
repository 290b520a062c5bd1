"""What the extraction stage records: per method, the layer sweep and its baselines, the held-out scores and
the geometry at the emotion layer; the emotion layer and the comparison of the two methods."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Literal

from pydantic import ConfigDict, Field

from emoaudit.results.common import ByLayer, Count, Curve, Fraction, PartialCurve, PositiveCount, Resources, WithKeys
from emoaudit.results.convert import OMITTED_IF_NONE

Reading = Literal["writing", "reread"]  # the model's stories read while written, or read again alone
READINGS: tuple[Reading, ...] = ("writing", "reread")


@dataclass(frozen=True)
class Curves:
    """One value per layer (index i = output of block i) of each separation measure and its baselines."""

    cosine_mean: Curve  # mean pairwise cosine of the (centred) vectors
    raw_cosine_mean: Curve  # the same of the raw class means: mostly anisotropy
    reference_cosine: Curve  # mean pairwise cosine among neutral texts, the anisotropy baseline
    similarity_above_reference: Curve
    probe_accuracy: Curve  # cross-validated linear probe
    probe_accuracy_shuffled: Curve  # the same probe refitted on shuffled labels
    centroid_accuracy: Curve  # nearest vector, cross-validated
    random_direction_accuracy: Curve
    random_direction_cosine: Curve
    # None at a layer where the ratio is undefined (no sample varies) or unbounded (every emotion's samples
    # coincide); why, by layer, in `undefined`
    fisher_ratio: PartialCurve
    fisher_null_mean: PartialCurve  # the Fisher ratio's shuffled-label null mean
    fisher_p: Curve  # permutation p-value (1 where the ratio is undefined)
    score: PartialCurve  # log(Fisher ratio / null mean), what the emotion layer is chosen on
    undefined: Annotated[ByLayer | None, OMITTED_IF_NONE] = None

    __pydantic_config__ = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class HeldoutCurves:
    """The vectors scored per layer on held-out sentences no vector was built from."""

    accuracy: Curve  # N-way: the closest vector is the sentence's emotion
    top3: Curve
    valence_auc: Curve
    n_samples: int
    chance_accuracy: Annotated[float, Field(gt=0, le=1)]


@dataclass(frozen=True)
class AtLayer:
    """The vectors' geometry at the emotion layer."""

    layer: int
    per_emotion_margin: list[float]  # mean cross-validated centroid margin, per emotion
    per_emotion_recall: list[float]
    similarity: list[list[float]]  # [emotions, emotions] cosine of the vectors
    affect: dict[str, AffectAxis]  # per reference rating (valence, arousal)
    # [emotions, 3]: the vectors on their first three principal components, those `affect` picks from ([emotions, 2]
    # in results written before)
    pc_scores: list[list[float]]


@dataclass(frozen=True)
class LayerSweep:
    """One method's separation over every layer, and the layer it would choose."""

    n_samples: int
    pooling: str
    cosine_floor: float  # -1/(N-1): where the mean cosine of centred vectors sits by construction
    chance_accuracy: float
    curves: Curves
    score: PartialCurve
    chosen_layer: Count | None  # None when no layer's score is defined
    chosen_relative_depth: float | None
    removed_neutral_components: list[int]  # per layer


@dataclass(frozen=True)
class EmbeddingBaseline:
    """The layer score and accuracies of the same pooling on the input embeddings (the input to block 0,
    `hidden_states[0]`): the null of static lexical geometry, which a layer's separation must beat."""

    fisher_ratio: float | None  # None where undefined or unbounded, as in `Curves`; why in `undefined`
    fisher_null_mean: float | None
    score: float | None  # log(Fisher ratio / its shuffled-label null mean), as the layer score
    probe_accuracy: Fraction
    centroid_accuracy: Fraction
    heldout_accuracy: Fraction  # vectors of the embeddings, scored on the held-out sentences' embeddings
    score_above: float | None  # the method's layer score at the emotion layer minus `score`
    undefined: Annotated[str | None, OMITTED_IF_NONE] = None

    __pydantic_config__ = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class MethodResults(LayerSweep):
    """A method's sweep, with what is measured once the emotion layer is known."""

    heldout: HeldoutCurves
    at_emotion_layer: AtLayer
    embedding: Annotated[EmbeddingBaseline | None, OMITTED_IF_NONE] = None
    # the held-out sentences that contain no word of any emotion (spec.emotions_named_in)
    heldout_keyword_free: Annotated[HeldoutCurves | None, OMITTED_IF_NONE] = None
    heldout_sets: Annotated[dict[str, HeldoutCurves] | None, OMITTED_IF_NONE] = None  # by register or language


@dataclass(frozen=True)
class VariantScores:
    """One reading of the model's stories: its separation per layer and how its vectors generalise."""

    pooling: str
    score: PartialCurve  # log(Fisher ratio / null mean) per layer, None where undefined
    centroid_accuracy: Curve
    probe_accuracy: Curve
    chosen_layer: Count | None  # where its own score peaks; None when no layer's score is defined
    heldout_accuracy: Curve  # per layer, on the held-out sentences
    heldout_valence_auc: Curve
    at_emotion_layer: dict[str, Fraction]  # held-out accuracy at the emotion layer, by held-out set


@dataclass(frozen=True)
class GenerationVariants:
    """The stories read while written (attending to the prompt that named the emotion) and read again alone."""

    exported: Reading  # the variant saved as vectors/generation.safetensors and analysed as "generation"
    rule: str
    variants: Annotated[dict[str, VariantScores], WithKeys(READINGS)]


@dataclass(frozen=True)
class StoryKeywords:
    """The keyword confound: how often the model's stories name an emotion outright."""

    n_stories: Count
    own_emotion_share: Fraction  # stories that contain a word of the emotion they were asked for
    any_emotion_share: Fraction  # stories that contain a word of any emotion
    per_emotion_own_share: dict[str, Fraction]
    words: str  # which words count


@dataclass(frozen=True)
class EmotionLayer:
    index: Count
    relative_depth: Fraction  # index / (layers - 1)
    method: str  # whose score chose it
    score: list[float | None]
    smoothed_score: list[float | None]
    rule: str


@dataclass(frozen=True)
class ExtractionTokens:
    comprehension_read: int
    generation_written: int
    heldout_read: int


@dataclass(frozen=True)
class TruncatedTexts:
    """How many read texts were longer than `max_tokens` (the model's context, or the reading limit) and
    were read up to it."""

    comprehension: Count
    heldout: Count
    max_tokens: PositiveCount

    __pydantic_config__ = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class Extraction:
    """The extraction stage: stages/extraction.json, and results.json's stages.extraction."""

    layer_convention: str
    n_layers: int
    emotions: Annotated[list[str], Field(min_length=2)]
    emotion_layer: EmotionLayer
    methods: Annotated[dict[str, MethodResults], WithKeys(("comprehension", "generation"))]
    comparison: MethodComparison
    vectors: dict[str, str]  # by method: the safetensors file, relative to the output directory
    tokens: ExtractionTokens
    # absent in audits from before texts were cut to the model's context
    truncated_texts: Annotated[TruncatedTexts | None, OMITTED_IF_NONE] = None
    generation_variants: Annotated[GenerationVariants | None, OMITTED_IF_NONE] = None
    story_keywords: Annotated[StoryKeywords | None, OMITTED_IF_NONE] = None
    timings: dict[str, float] = field(default_factory=dict)  # seconds, set by the run
    resources: Annotated[Resources | None, OMITTED_IF_NONE] = None  # set by the run

    __pydantic_config__ = ConfigDict(extra="forbid")

    @property
    def layer(self) -> int:
        return self.emotion_layer.index


@dataclass(frozen=True)
class MethodComparison:
    """Per-emotion separation of method A against method B at one layer."""

    layer: int
    statistic: str  # what the per-emotion separation values are
    method_a: str
    method_b: str
    mean_a: float
    mean_b: float
    mann_whitney_u: float
    mann_whitney_p: Fraction
    cohens_d: float | None  # positive when A separates better; None when unbounded (`cohens_d`)
    # between the two methods' emotion-similarity matrices; None when either matrix is constant (undefined)
    similarity_spearman: float | None
    similarity_spearman_p: float | None
    vector_cosine_mean: float  # same emotion, A's vector against B's


@dataclass(frozen=True)
class AffectAxis:
    """The leading principal component of the vectors that best tracks a reference rating."""

    component: int  # 1-based
    # Pearson r of the vectors' scores on it with the rating; its sign says the direction. None when the
    # scores or the rating do not vary (undefined)
    r: float | None
    explained_variance: float  # share of the vectors' variance the component explains
