from pathlib import Path

import numpy as np
import pytest
import torch

from emoaudit.capture.activations import Activations
from emoaudit.capture.stimuli import generation_prompts
from emoaudit.vectors import EmotionVectors
from emoaudit.model.generation import generate
from emoaudit.model.runtime import chat_prompt_ids
from emoaudit.errors import EmoauditError
from emoaudit.model.loaded import LoadedModel
from emoaudit.spec import load_spec

SPEC = load_spec()


def fake_activations(n_per_label: int = 4, n_layers: int = 3, hidden: int = 16, seed: int = 0) -> Activations:
    rng = np.random.default_rng(seed)
    labels = [label for label in SPEC.labels for _ in range(n_per_label)]
    centres = {label: rng.standard_normal((n_layers, hidden)) for label in SPEC.labels}
    values = np.stack([centres[label] + 0.1 * rng.standard_normal((n_layers, hidden)) for label in labels])
    values = torch.tensor(values, dtype=torch.float32)
    return Activations(
        "comprehension",
        labels,
        [f"t{i}" for i in range(len(labels))],
        values,
        values.norm(dim=-1),
        "mean over the passage",
    )


def test_vectors_are_means_minus_the_mean_over_emotions() -> None:
    acts = fake_activations()
    vecs = EmotionVectors.from_activations(acts, SPEC.emotion_names, SPEC.reference, 0.0)
    means = torch.stack([acts.of(e).mean(dim=0) for e in SPEC.emotion_names])
    torch.testing.assert_close(vecs.vectors, means - means.mean(dim=0))
    torch.testing.assert_close(vecs.versus_reference, means - acts.of("neutral").mean(dim=0))
    torch.testing.assert_close(vecs.vectors.sum(dim=0), torch.zeros(3, 16), atol=1e-5, rtol=0)
    assert vecs.origin.removed_components == (0, 0, 0)


def test_denoising_removes_the_leading_neutral_directions() -> None:
    acts = fake_activations(n_per_label=8)
    direction = torch.zeros(16)
    direction[0] = 1.0
    generator = torch.Generator().manual_seed(0)
    noise = torch.randn(len(acts.labels), 1, 1, generator=generator) * 50 * direction  # one huge shared direction
    acts.values += noise
    raw = EmotionVectors.from_activations(acts, SPEC.emotion_names, SPEC.reference, 0.0)
    vecs = EmotionVectors.from_activations(acts, SPEC.emotion_names, SPEC.reference, 0.5)
    assert all(k >= 1 for k in vecs.origin.removed_components)
    assert vecs.vectors[..., 0].abs().max() < 0.01 * raw.vectors[..., 0].abs().max()
    # Directions the neutral texts do not vary along are left alone.
    torch.testing.assert_close(vecs.vectors[..., 1:], raw.vectors[..., 1:], atol=0.05, rtol=0.05)


def test_vector_files_round_trip_with_their_conventions(tmp_path: Path) -> None:
    vecs = EmotionVectors.from_activations(fake_activations(), SPEC.emotion_names, SPEC.reference, 0.5)
    path = tmp_path / "vectors" / "comprehension.safetensors"
    with pytest.raises(ValueError, match="saved with the model"):  # no audit chose them: no origin to record
        vecs.save(path)
    chosen = vecs.chosen(2, {"reference": "tiny", "sha256": "ab" * 32, "hidden_size": 16}, SPEC.sha256, "reread")
    chosen.save(path)
    loaded = EmotionVectors.load(path)
    torch.testing.assert_close(loaded.vectors, vecs.vectors)
    torch.testing.assert_close(loaded.mean_norm, vecs.mean_norm)
    assert loaded.emotions == SPEC.emotion_names and loaded.origin == chosen.origin
    assert loaded.origin.model is not None and loaded.origin.model.sha256 == "ab" * 32
    assert (loaded.origin.layer, loaded.origin.model.hidden_size, loaded.origin.stories_read) == (2, 16, "reread")
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
        assert sorted(f.keys()) == sorted(SPEC.emotion_names)
        assert f.get_tensor("happy").shape == (3, 16)
    assert meta["operation"] == "add" and "hidden_states[i+1]" in meta["layer_index"]
    assert "mean_norm" in meta["normalisation"] and "decoder block" in meta["hook_point"]
    with pytest.raises(EmoauditError):
        EmotionVectors.load(tmp_path / "missing.safetensors")


def test_generation_prompts_vary_templates_and_topics() -> None:
    labels, prompts = generation_prompts(SPEC, SPEC.profile("standard"))
    assert len(prompts) == len(set(prompts)) == 21 * SPEC.profile("standard").stories_per_label
    neutral = [p for lab, p in zip(labels, prompts, strict=True) if lab == "neutral"]
    assert not any(SPEC.forbidden_words_in(p) for p in neutral)
    assert all("afraid" in p for lab, p in zip(labels, prompts, strict=True) if lab == "afraid")


def test_generate_returns_only_new_tokens_and_is_seeded(tiny_llama: LoadedModel) -> None:
    prompts = [chat_prompt_ids(tiny_llama, p) for p in ["The sea", "A much longer prompt about the harbour"]]
    first = generate(tiny_llama, prompts, 6, seed=3, temperature=0.8, top_p=0.95)
    again = generate(tiny_llama, prompts, 6, seed=3, temperature=0.8, top_p=0.95)
    assert first == again and all(0 < len(ids) <= 6 for ids in first)
    assert 2 not in sum(first, [])  # generation stops before the end-of-text token
