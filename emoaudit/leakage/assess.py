"""Cross-lingual leakage: foreign-script tokens surfacing when the model is steered.

Two views: the outputs (language detection, and the share of letters per Unicode script against
the script the prompt's language uses) and the logit lens (the tokens that the steering vector, and
the steered residual states, promote when read through the final norm and the unembedding). Apart
from both, `semantic` asks whether the lens raises each emotion's own words in other languages.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from emoaudit.results.common import Severity
from emoaudit.results.leakage import Leakage, LeakageBaseline, LeakageCell, LeakageThresholds, VectorLens
from emoaudit.results.steering import Steering
from emoaudit.leakage.lens import last_prompt_states, read_lens
from emoaudit.leakage.semantic import Grid, entanglement, word_tokens
from emoaudit.leakage.scripts import detect_language, foreign_share, foreign_spans, script_shares
from emoaudit.model.loaded import LoadedModel
from emoaudit.model.logits import lens_logits
from emoaudit.model.runtime import chat_prompt_ids
from emoaudit.spec.tables import LeakageConfig
from emoaudit.vectors import EmotionVectors, unit_deltas


def annotate(samples: list[dict[str, Any]], config: LeakageConfig, seed: int) -> None:
    """Add each sample's language, script shares, foreign share and foreign spans under "leakage"."""
    for sample in samples:
        detected, probability = detect_language(sample["text"], seed, min_letters=config.min_letters)
        share = foreign_share(sample["text"], config.expected_script)
        sample["leakage"] = {
            "language": detected,
            "language_probability": round(probability, 4),
            "scripts": {k: round(v, 4) for k, v in script_shares(sample["text"]).items()},
            "foreign_share": round(share, 4),
            "leaks": share > config.text_share,
            "spans": foreign_spans(sample["text"], config.expected_script)[:5],
        }


def assess(
    lm: LoadedModel,
    samples: list[dict[str, Any]],
    steering: Steering,
    vectors: EmotionVectors,
    config: LeakageConfig,
    translations: Mapping[str, Mapping[str, tuple[str, ...]]],
) -> Leakage:
    """Leakage per emotion and strength, in the annotated outputs and the logit lens, against the baseline;
    and, with the specification's `translations` ({language: {emotion: words}}), whether the lens raises
    each emotion's own words in those languages (`semantic.entanglement`)."""
    script, k = config.expected_script, config.lens_top_k
    layer = steering.layer
    states = last_prompt_states(lm, [chat_prompt_ids(lm, sc.prompt) for sc in steering.scenarios], layer)
    base_lens = float(np.mean([r.foreign_share for r in read_lens(lm, lens_logits(lm, states), k, script)]))
    # Random-direction controls (emotion None too) are not the unsteered baseline.
    unsteered = [s for s in samples if s["emotion"] is None and s.get("control") is None]
    base_rate = float(np.mean([s["leakage"]["leaks"] for s in unsteered])) if unsteered else 0.0
    mean_norm, unit = steering.mean_norm, steering.calibration.unit_strength
    grand = vectors.grand_mean[layer]
    cells: list[LeakageCell] = []
    vector_lens: dict[str, VectorLens] = {}
    for emotion in steering.emotions:
        direction = vectors.vectors[vectors.emotions.index(emotion), layer]
        # What the vector itself promotes: the lens of the mean state with and without it.
        promoted = lens_logits(lm, torch.stack([grand + unit_deltas(direction[None], [unit], mean_norm)[0], grand]))
        reading = read_lens(lm, (promoted[0] - promoted[1])[None], k, script)[0]
        vector_lens[emotion] = VectorLens(reading.tokens, reading.foreign_share, reading.foreign_tokens())
        for multiplier, strength in zip(steering.multipliers, steering.strengths, strict=True):
            cell = [s for s in samples if s["emotion"] == emotion and s["multiplier"] == multiplier]
            readings = read_lens(
                lm, lens_logits(lm, states + unit_deltas(direction[None], [strength], mean_norm)), k, script
            )
            lens_share = float(np.mean([r.foreign_share for r in readings]))
            rate = float(np.mean([s["leakage"]["leaks"] for s in cell])) if cell else 0.0
            cells.append(
                LeakageCell(
                    emotion=emotion,
                    multiplier=multiplier,
                    strength=strength,
                    output_rate=rate,
                    output_rate_above_baseline=rate - base_rate,
                    mean_foreign_share=float(np.mean([s["leakage"]["foreign_share"] for s in cell])) if cell else 0.0,
                    languages=dict(Counter(s["leakage"]["language"] for s in cell)),
                    lens_foreign_share=lens_share,
                    lens_above_baseline=lens_share - base_lens,
                    evidence_spans=[span for s in cell for span in s["leakage"]["spans"]][:5],
                    evidence_tokens=list(dict.fromkeys(t for r in readings for t in r.foreign_tokens()))[:10],
                )
            )
    findings = [
        c for c in cells if c.output_rate_above_baseline >= config.margin or c.lens_above_baseline >= config.margin
    ]
    steered = [s for s in samples if s["emotion"] is not None]
    directions = {e: vectors.vectors[vectors.emotions.index(e), layer] for e in steering.emotions}
    semantic = (
        entanglement(lm, states, directions, Grid.of(steering), word_tokens(lm, translations)) if translations else None
    )
    return Leakage(
        layer=layer,
        expected_script=script,
        expected_language=config.expected_language,
        thresholds=LeakageThresholds(
            text_share=config.text_share, margin=config.margin, lens_top_k=k, min_letters=config.min_letters
        ),
        baseline=LeakageBaseline(
            output_rate=base_rate,
            lens_foreign_share=base_lens,
            languages=dict(Counter(s["leakage"]["language"] for s in unsteered)),
        ),
        other_language_rate=float(
            np.mean([s["leakage"]["language"] not in (config.expected_language, "unknown") for s in steered])
        )
        if steered
        else 0.0,
        cells=cells,
        vector_lens=vector_lens,
        findings=findings,
        severity=severity(findings, config.margin),
        semantic=semantic,
    )


def severity(findings: list[LeakageCell], margin: float) -> Severity:
    """high: outputs leak within the calibrated range (multiplier <= 1); medium: only beyond it;
    low: only the logit lens leaks; info: nothing above the unsteered baseline."""
    in_outputs = [f for f in findings if f.output_rate_above_baseline >= margin]
    if any(f.multiplier <= 1.0 for f in in_outputs):
        return "high"
    if in_outputs:
        return "medium"
    return "low" if findings else "info"
