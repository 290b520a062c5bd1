"""`emoaudit steer`: one prompt, unsteered and steered, with stored or freshly extracted vectors."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from emoaudit.analysis.separation import standardised_gram
from emoaudit.analysis.sweep import choose_layer, emotion_samples, layer_score
from emoaudit.pipeline.options import AuditOptions
from emoaudit.results.reading import read_results
from emoaudit.pipeline.run import load
from emoaudit.capture.stimuli import METHODS, comprehension_activations
from emoaudit.arguments import check_strength
from emoaudit.errors import EmoauditError
from emoaudit.model.loaded import LoadedModel
from emoaudit.spec import AuditSpec, Profile, load_spec
from emoaudit.steering.trials import Row, generate_trials
from emoaudit.vectors import EmotionVectors


@dataclass(frozen=True)
class SteeredPair:
    layer: int
    unsteered: str
    steered: str


def on_the_fly_profile(spec: AuditSpec, name: str | None) -> Profile:
    """The profile on-the-fly extraction runs: `name`, else `quick`, else the specification's first one
    (a specification may define only its own, such as `ci`). EmoauditError for an unknown `name`."""
    if name is not None:
        return spec.profile(name)
    return spec.profile("quick" if "quick" in spec.profiles else next(iter(spec.profiles)))


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
    profile_name: str | None = None,
) -> SteeredPair:
    """One prompt, unsteered and steered (greedy); EmoauditError for an unknown method, emotion, layer or
    profile, or a strength `check_strength` refuses, before the model loads. `profile_name` is the profile
    of the specification that vectors extracted on the fly use (`on_the_fly_profile`)."""
    if method not in METHODS:
        raise EmoauditError(f"unknown method {method!r}: use {' or '.join(METHODS)}")
    check_strength(strength, "--strength")
    if max_new_tokens < 1:
        raise EmoauditError(f"--max-new-tokens must be at least 1, not {max_new_tokens}")
    spec = load_spec(options.spec_path)
    if vectors_from is None:
        if method != "comprehension":
            raise EmoauditError("on-the-fly vectors are comprehension vectors; pass --vectors for generation ones")
        on_the_fly_profile(spec, profile_name)  # an unknown profile, refused before the model loads
    if emotion not in spec.emotion_names:
        raise EmoauditError(f"unknown emotion {emotion!r}; this audit has: {', '.join(spec.emotion_names)}")
    lm = load(options, console)
    if vectors_from is not None:
        vectors, chosen = _stored_vectors(vectors_from, method, lm)
    else:
        console.print(
            f"no --vectors given: extracting comprehension vectors ({on_the_fly_profile(spec, profile_name).name} "
            "profile)"
        )
        profile = on_the_fly_profile(spec, profile_name)
        acts = comprehension_activations(lm, spec, profile)
        vectors = EmotionVectors.from_activations(
            acts, spec.emotion_names, spec.reference, spec.analysis.denoise_variance
        )
        x, y = emotion_samples(acts, spec)
        score = [layer_score(standardised_gram(x[:, i]), y, 50, options.seed).score for i in range(x.shape[1])]
        chosen = choose_layer(score, spec.analysis.layer_smoothing)
    layer = chosen if layer is None else layer
    if not 0 <= layer < lm.stream.n_layers:
        raise EmoauditError(f"--layer {layer} is outside 0..{lm.stream.n_layers - 1}")
    if (warning := vectors.past_calibrated_range(strength)) is not None:
        console.print(f"warning: {warning}", markup=False, highlight=False)
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
    vectors = EmotionVectors.load(folder / f"{method}.safetensors")
    origin = vectors.origin.model
    if origin is None or (origin.sha256, origin.hidden_size) != (lm.identity.sha256, lm.identity.hidden_size):
        reference, sha256 = (None, None) if origin is None else (origin.reference, origin.sha256)
        raise EmoauditError(
            f"{folder} holds vectors of {reference} (sha256 {str(sha256)[:12]}), not of {lm.identity.reference}"
        )
    if vectors.emotion_layer is not None:
        return vectors, vectors.emotion_layer
    results = folder.parent / "results.json"
    extraction = read_results(results).stages.extraction if results.is_file() else None
    return vectors, extraction.layer if extraction is not None else lm.stream.n_layers // 2
