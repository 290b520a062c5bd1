"""Cross-lingual leakage: foreign-script tokens surfacing when the model is steered.

Two views: the outputs (language detection, and the share of letters per Unicode script against
the script the prompt's language uses) and the logit lens (the tokens that the steering vector, and
the steered residual states, promote when read through the final norm and the unembedding).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from langdetect import DetectorFactory, LangDetectException, detect_langs

from emoaudit.activations import pad_batch, run_body
from emoaudit.extraction import EmotionVectors
from emoaudit.generation import chat_prompt_ids
from emoaudit.layers import block_output
from emoaudit.loading import LoadedModel
from emoaudit.steering import steering_deltas

# (first, last, script) code point ranges of the scripts worth telling apart; letters elsewhere
# count as "Other", and non-letters (digits, punctuation, emoji, spaces) are not counted at all.
SCRIPT_RANGES: tuple[tuple[int, int, str], ...] = (
    (0x0041, 0x024F, "Latin"),
    (0x1E00, 0x1EFF, "Latin"),
    (0x0370, 0x03FF, "Greek"),
    (0x0400, 0x052F, "Cyrillic"),
    (0x0590, 0x05FF, "Hebrew"),
    (0x0600, 0x06FF, "Arabic"),
    (0x0750, 0x077F, "Arabic"),
    (0x0900, 0x097F, "Devanagari"),
    (0x0E00, 0x0E7F, "Thai"),
    (0x1100, 0x11FF, "Hangul"),
    (0x3130, 0x318F, "Hangul"),
    (0xAC00, 0xD7AF, "Hangul"),
    (0x3040, 0x309F, "Hiragana"),
    (0x30A0, 0x30FF, "Katakana"),
    (0x3400, 0x4DBF, "Han"),
    (0x4E00, 0x9FFF, "Han"),
    (0xF900, 0xFAFF, "Han"),
    (0x20000, 0x2FA1F, "Han"),
)


def script_of(char: str) -> str | None:
    """The script of a letter, or None for anything that is not a letter."""
    if not char.isalpha():
        return None
    point = ord(char)
    for first, last, script in SCRIPT_RANGES:
        if first <= point <= last:
            return script
    return "Other"


def script_shares(text: str) -> dict[str, float]:
    """Share of the text's letters in each script (empty for a text without letters)."""
    counts = Counter(s for s in map(script_of, text) if s is not None)
    total = sum(counts.values())
    return {script: n / total for script, n in counts.most_common()} if total else {}


def foreign_share(text: str, expected: str = "Latin") -> float:
    """Share of the text's letters outside the expected script (0 for a text without letters)."""
    shares = script_shares(text)
    return 1.0 - shares.get(expected, 0.0) if shares else 0.0


def foreign_spans(text: str, expected: str = "Latin", context: int = 12) -> list[str]:
    """Each run of foreign-script letters (with the punctuation inside it), with some context, as evidence."""

    def foreign(i: int) -> bool:
        return script_of(text[i]) not in (None, expected)

    spans: list[str] = []
    i = 0
    while i < len(text):
        if not foreign(i):
            i += 1
            continue
        end = j = i + 1
        while j < len(text) and (foreign(j) or (script_of(text[j]) is None and not text[j].isspace())):
            end = j + 1 if foreign(j) else end
            j += 1
        spans.append(text[max(0, i - context) : min(len(text), end + context)])
        i = j
    return list(dict.fromkeys(spans))


def detect_language(text: str, seed: int = 0) -> tuple[str, float]:
    """(language code, probability) by langdetect, seeded so that results repeat; ("unknown", 0) if it cannot tell."""
    DetectorFactory.seed = seed  # langdetect's only way to make its sampling repeatable
    try:
        best = detect_langs(text)[0]
    except LangDetectException:
        return "unknown", 0.0
    return str(best.lang), float(best.prob)


@dataclass(frozen=True)
class LensReading:
    """Top tokens of a logit-lens reading and how many are in a foreign script."""

    tokens: list[str]
    scripts: list[str | None]
    foreign_share: float

    def foreign_tokens(self) -> list[str]:
        return [t for t, s in zip(self.tokens, self.scripts, strict=True) if s not in (None, "Latin")]


def token_script(token: str) -> str | None:
    """The dominant script of a token's letters, or None for a token without letters."""
    shares = script_shares(token)
    return max(shares, key=shares.__getitem__) if shares else None


def lens_logits(lm: LoadedModel, states: torch.Tensor) -> torch.Tensor:
    """Read residual states [n, hidden] through the final norm and the unembedding: logits [n, vocab]."""
    param = next(lm.model.parameters())
    with torch.inference_mode():
        return lm.stream.unembed(lm.stream.final_norm(states.to(param.device, param.dtype))).float().cpu()


def read_lens(lm: LoadedModel, logits: torch.Tensor, k: int, expected: str = "Latin") -> list[LensReading]:
    readings = []
    for row in logits:
        top = torch.topk(row, k).indices.tolist()
        tokens = [lm.tokenizer.decode([t]) for t in top]
        scripts = [token_script(t) for t in tokens]
        lettered = [s for s in scripts if s is not None]
        foreign = sum(s != expected for s in lettered) / len(lettered) if lettered else 0.0
        readings.append(LensReading(tokens, scripts, foreign))
    return readings


def last_prompt_states(lm: LoadedModel, prompts: Sequence[Sequence[int]], layer: int) -> torch.Tensor:
    """The residual stream after block `layer` at each prompt's last token: [n, hidden]."""
    ids, mask = pad_batch(prompts, int(lm.tokenizer.pad_token_id), "left")
    captured: list[torch.Tensor] = []

    def hook(_m: torch.nn.Module, _i: object, output: object) -> None:
        captured.append(block_output(output)[:, -1].float().cpu())  # type: ignore[arg-type]

    handle = lm.stream.blocks[layer].register_forward_hook(hook)
    try:
        run_body(lm, ids, mask)
    finally:
        handle.remove()
    return captured[0]


@dataclass(frozen=True)
class LeakageConfig:
    """The `[leakage]` table of the audit specification."""

    expected_script: str
    expected_language: str
    text_share: float  # a text leaks when more of its letters than this are in another script
    lens_top_k: int
    margin: float  # a rate counts as a finding this far above the unsteered baseline


def annotate(samples: list[dict[str, Any]], config: LeakageConfig, seed: int) -> None:
    """Add each sample's language, script shares, foreign share and foreign spans under "leakage"."""
    for sample in samples:
        detected, probability = detect_language(sample["text"], seed)
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
    steering: dict[str, Any],
    vectors: EmotionVectors,
    config: LeakageConfig,
) -> dict[str, Any]:
    """Leakage per emotion and strength, in the annotated outputs and the logit lens, against the baseline."""
    script, k = config.expected_script, config.lens_top_k
    layer = int(steering["layer"])
    states = last_prompt_states(lm, [chat_prompt_ids(lm, sc["prompt"]) for sc in steering["scenarios"]], layer)
    base_lens = float(np.mean([r.foreign_share for r in read_lens(lm, lens_logits(lm, states), k, script)]))
    unsteered = [s for s in samples if s["emotion"] is None]
    base_rate = float(np.mean([s["leakage"]["leaks"] for s in unsteered])) if unsteered else 0.0
    mean_norm, unit = float(steering["mean_norm"]), float(steering["calibration"]["unit_strength"])
    grand = vectors.grand_mean[layer]
    cells, vector_lens = [], {}
    for emotion in steering["emotions"]:
        direction = vectors.vectors[vectors.emotions.index(emotion), layer]
        # What the vector itself promotes: the lens of the mean state with and without it.
        promoted = lens_logits(lm, torch.stack([grand + steering_deltas(direction[None], [unit], mean_norm)[0], grand]))
        reading = read_lens(lm, (promoted[0] - promoted[1])[None], k, script)[0]
        vector_lens[emotion] = {
            "top_tokens": reading.tokens,
            "foreign_share": reading.foreign_share,
            "foreign_tokens": reading.foreign_tokens(),
        }
        for multiplier, strength in zip(steering["multipliers"], steering["strengths"], strict=True):
            cell = [s for s in samples if s["emotion"] == emotion and s["multiplier"] == multiplier]
            readings = read_lens(
                lm, lens_logits(lm, states + steering_deltas(direction[None], [strength], mean_norm)), k, script
            )
            lens_share = float(np.mean([r.foreign_share for r in readings]))
            rate = float(np.mean([s["leakage"]["leaks"] for s in cell])) if cell else 0.0
            cells.append(
                {
                    "emotion": emotion,
                    "multiplier": multiplier,
                    "strength": strength,
                    "output_rate": rate,
                    "output_rate_above_baseline": rate - base_rate,
                    "mean_foreign_share": float(np.mean([s["leakage"]["foreign_share"] for s in cell]))
                    if cell
                    else 0.0,
                    "languages": dict(Counter(s["leakage"]["language"] for s in cell)),
                    "lens_foreign_share": lens_share,
                    "lens_above_baseline": lens_share - base_lens,
                    "evidence_spans": [span for s in cell for span in s["leakage"]["spans"]][:5],
                    "evidence_tokens": list(dict.fromkeys(t for r in readings for t in r.foreign_tokens()))[:10],
                }
            )
    findings = [
        c
        for c in cells
        if c["output_rate_above_baseline"] >= config.margin or c["lens_above_baseline"] >= config.margin
    ]
    steered = [s for s in samples if s["emotion"] is not None]
    return {
        "layer": layer,
        "expected_script": script,
        "expected_language": config.expected_language,
        "thresholds": {"text_share": config.text_share, "margin": config.margin, "lens_top_k": k},
        "baseline": {
            "output_rate": base_rate,
            "lens_foreign_share": base_lens,
            "languages": dict(Counter(s["leakage"]["language"] for s in unsteered)),
        },
        "other_language_rate": float(
            np.mean([s["leakage"]["language"] not in (config.expected_language, "unknown") for s in steered])
        )
        if steered
        else 0.0,
        "cells": cells,
        "vector_lens": vector_lens,
        "findings": findings,
        "severity": severity(findings, config.margin),
    }


def severity(findings: list[dict[str, Any]], margin: float) -> str:
    """high: outputs leak within the calibrated range (multiplier <= 1); medium: only beyond it;
    low: only the logit lens leaks; info: nothing above the unsteered baseline."""
    in_outputs = [f for f in findings if f["output_rate_above_baseline"] >= margin]
    if any(f["multiplier"] <= 1.0 for f in in_outputs):
        return "high"
    if in_outputs:
        return "medium"
    return "low" if findings else "info"
