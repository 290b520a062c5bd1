"""`emoaudit steer`: one prompt, unsteered and steered, with stored or freshly extracted vectors."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.console import Console

from emoaudit.analysis.separation import standardised_gram
from emoaudit.analysis.sweep import choose_layer, emotion_samples, layer_score
from emoaudit.pipeline.options import AuditOptions
from emoaudit.results.reading import read_results
from emoaudit.pipeline.run import load
from emoaudit.capture.stimuli import METHODS, comprehension_activations
from emoaudit.errors import EmoauditError
from emoaudit.model.loaded import LoadedModel
from emoaudit.spec import load_spec
from emoaudit.steering.trials import Row, generate_trials
from emoaudit.vectors import EmotionVectors


@dataclass(frozen=True)
class SteeredPair:
    layer: int
    unsteered: str
    steered: str


def steer_once(
    options: AuditOptions,
    console: Console,
    prompt: str,
    emotion: str,
    strength: float,
    vectors_from: Path | None,
    method: str,
    layer: int | None,
    max_new_tokens: int,
) -> SteeredPair:
    """One prompt, unsteered and steered (greedy); EmoauditError for an unknown method, emotion or layer."""
    if method not in METHODS:
        raise EmoauditError(f"unknown method {method!r}: use {' or '.join(METHODS)}")
    if not math.isfinite(strength):
        raise EmoauditError(f"--strength {strength}: a strength must be a finite number")
    spec = load_spec(options.spec_path)
    if emotion not in spec.emotion_names:
        raise EmoauditError(f"unknown emotion {emotion!r}; this audit has: {', '.join(spec.emotion_names)}")
    lm = load(options, console)
    if vectors_from is not None:
        vectors, chosen = _stored_vectors(vectors_from, method, lm)
    else:
        if method != "comprehension":
            raise EmoauditError("on-the-fly vectors are comprehension vectors; pass --vectors for generation ones")
        console.print("no --vectors given: extracting comprehension vectors (quick profile)")
        profile = spec.profile("quick")
        acts = comprehension_activations(lm, spec, profile)
        vectors = EmotionVectors.from_activations(
            acts, spec.emotion_names, spec.reference, spec.analysis.denoise_variance
        )
        x, y = emotion_samples(acts, spec)
        score = [layer_score(standardised_gram(x[:, i]), y, 50, options.seed)[2] for i in range(x.shape[1])]
        chosen = choose_layer(np.array(score), spec.analysis.layer_smoothing)
    layer = chosen if layer is None else layer
    if not 0 <= layer < lm.stream.n_layers:
        raise EmoauditError(f"--layer {layer} is outside 0..{lm.stream.n_layers - 1}")
    delta = vectors.delta(emotion, layer, strength)
    prompts = [("prompt", "user", prompt)]
    rows = [Row(0, None, 0.0, None, None), Row(0, emotion, strength, None, delta)]
    plain, steered = generate_trials(
        lm, prompts, rows, layer, max_new_tokens, options.seed, positions=options.steer_positions
    )
    return SteeredPair(layer, plain.text, steered.text)


def _stored_vectors(path: Path, method: str, lm: LoadedModel) -> tuple[EmotionVectors, int]:
    """Vectors of an earlier run, checked against the loaded model, and that run's emotion layer."""
    folder = path / "vectors" if (path / "vectors").is_dir() else path
    vectors, meta = EmotionVectors.load_with_metadata(folder / f"{method}.safetensors")
    origin = json.loads(meta["model"])
    if origin.get("sha256") != lm.identity.sha256 or origin.get("hidden_size") != lm.identity.hidden_size:
        raise EmoauditError(
            f"{folder} holds vectors of {origin.get('reference')} "
            f"(sha256 {str(origin.get('sha256'))[:12]}), not of {lm.identity.reference}"
        )
    if vectors.emotion_layer is not None:
        return vectors, vectors.emotion_layer
    results = folder.parent / "results.json"
    extraction = read_results(results).stages.extraction if results.is_file() else None
    return vectors, extraction.layer if extraction is not None else lm.stream.n_layers // 2
