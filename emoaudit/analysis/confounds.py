"""The extraction's claims against what could explain them away: the static geometry of the input
embeddings, emotion words in the model's stories, and the instruction its stories were written under."""

from __future__ import annotations

import numpy as np
import torch

from emoaudit.analysis.separation import centroid_scores, gram_components, probe_accuracy_on, standardised_gram
from emoaudit.analysis.sweep import emotion_samples, heldout_curves, layer_score
from emoaudit.results.extraction import (
    EmbeddingBaseline,
    GenerationVariants,
    HeldoutCurves,
    LayerSweep,
    Reading,
    StoryKeywords,
    VariantScores,
)
from emoaudit.capture.activations import Activations
from emoaudit.spec import AuditSpec, Profile
from emoaudit.vectors import EmotionVectors

READINGS = {
    "writing": "writing: while the model wrote them, attending to the prompt that named the emotion",
    "reread": "reread: again as plain text, without the prompt",
}
VARIANT_RULE = (
    "the variant whose vectors classify the held-out sentences more accurately at the emotion layer "
    "(20-way, nearest vector); on a tie the stories read while written"
)


def embedding_baseline(
    acts: Activations, held: Activations, spec: AuditSpec, profile: Profile, seed: int, layer_value: float | None
) -> EmbeddingBaseline | None:
    """The layer sweep's scores on the pooled input embeddings (Activations.embedding [n, hidden]).

    `layer_value` is the method's score at the emotion layer; None when either set has no embeddings read.
    """
    if acts.embedding is None or held.embedding is None:
        return None
    as_layer = _embedding_layer(acts)
    x_all, y = emotion_samples(as_layer, spec)
    x = x_all[:, 0].astype(np.float64)
    gram = standardised_gram(x)  # shared with the sweep's arithmetic, as for any layer
    scored = layer_score(gram, y, profile.permutations, seed)
    vectors = EmotionVectors.from_activations(
        as_layer, spec.emotion_names, spec.reference, spec.analysis.denoise_variance
    )
    held_scores = heldout_curves(_embedding_layer(held), vectors, spec)
    return EmbeddingBaseline(
        fisher_ratio=scored.fisher,
        fisher_null_mean=scored.null.mean,
        score=scored.score,
        probe_accuracy=probe_accuracy_on(
            gram_components(gram, spec.analysis.probe_components), y, profile.cv_folds, seed
        ),
        centroid_accuracy=centroid_scores(x, y, profile.cv_folds, seed).accuracy,
        heldout_accuracy=held_scores.accuracy[0],
        score_above=layer_value - scored.score if layer_value is not None and scored.score is not None else None,
        undefined=scored.undefined,
    )


def keyword_free(held: Activations, spec: AuditSpec) -> Activations:
    """The held-out texts that contain no word of any emotion (`AuditSpec.emotions_named_in`)."""
    return held.select([i for i, text in enumerate(held.texts) if not spec.emotions_named_in(text)])


def scorable_heldout(held: Activations, vectors: EmotionVectors, spec: AuditSpec) -> HeldoutCurves | None:
    """`heldout_curves`, or None when the texts cannot give a valence AUC (no pleasant or no unpleasant one)."""
    valence = {e.name: e.valence for e in spec.emotions}
    signs = {np.sign(valence[label]) for label in held.labels if label in valence}
    if not {-1.0, 1.0} <= signs:
        return None
    return heldout_curves(held, vectors, spec)


def heldout_sets(
    sets: Activations, names: list[str], vectors: EmotionVectors, spec: AuditSpec
) -> dict[str, HeldoutCurves]:
    """Held-out curves per set; `names` holds each row's set (`heldout_set_rows`)."""
    out = {}
    for name in dict.fromkeys(names):
        curves = scorable_heldout(sets.select([i for i, n in enumerate(names) if n == name]), vectors, spec)
        if curves is not None:
            out[name] = curves
    return out


def story_keywords(stories: Activations, spec: AuditSpec) -> StoryKeywords:
    """Shares of stories that name their own emotion, or any emotion, in so many words."""
    emotions = spec.emotion_names
    rows = [(label, spec.emotions_named_in(text)) for label, text in zip(stories.labels, stories.texts, strict=True)]
    rows = [(label, named) for label, named in rows if label in emotions]
    per_emotion = {
        e: float(np.mean([e in named for label, named in rows if label == e]))
        for e in emotions
        if any(label == e for label, _ in rows)
    }
    return StoryKeywords(
        n_stories=len(rows),
        own_emotion_share=float(np.mean([label in named for label, named in rows])),
        any_emotion_share=float(np.mean([bool(named) for _, named in rows])),
        per_emotion_own_share=per_emotion,
        words="each emotion's forbidden words and lexicon (audit specification), whole words, any case",
    )


def variant_scores(sweep: LayerSweep, held: HeldoutCurves, at_layer: dict[str, float]) -> VariantScores:
    """A variant's separation curves (`sweep`), held-out curves and held-out accuracy at the emotion layer by set."""
    return VariantScores(
        pooling=sweep.pooling,
        score=sweep.score,
        centroid_accuracy=sweep.curves.centroid_accuracy,
        probe_accuracy=sweep.curves.probe_accuracy,
        chosen_layer=sweep.chosen_layer,
        heldout_accuracy=held.accuracy,
        heldout_valence_auc=held.valence_auc,
        at_emotion_layer=at_layer,
    )


def choose_reading(
    sweeps: dict[str, LayerSweep], held: dict[str, HeldoutCurves], at_layer: dict[str, dict[str, float]]
) -> GenerationVariants:
    """`VARIANT_RULE` applied to the two readings of the stories ("writing", "reread"): each one's sweep,
    held-out curves and held-out accuracy at the emotion layer by set; `exported` names the one chosen."""
    return GenerationVariants(
        exported=better_variant({v: at_layer[v]["heldout"] for v in READINGS}),
        rule=VARIANT_RULE,
        variants={v: variant_scores(sweeps[v], held[v], at_layer[v]) for v in READINGS},
    )


def better_variant(heldout_accuracy: dict[str, float]) -> Reading:
    """`VARIANT_RULE` on each variant's held-out accuracy at the emotion layer ("writing" wins ties)."""
    return "reread" if heldout_accuracy["reread"] > heldout_accuracy["writing"] else "writing"


def _embedding_layer(acts: Activations) -> Activations:
    """The embeddings as activations of a single layer, so that the layer sweep's functions read them."""
    assert acts.embedding is not None
    return Activations(
        acts.method,
        acts.labels,
        acts.texts,
        acts.embedding[:, None],
        torch.ones(len(acts.labels), 1),
        acts.pooling,
    )
