"""Emotion vectors by two methods.

* comprehension: the model reads passages we wrote; activations are pooled over each passage.
* generation: the model writes a story for each emotion; activations are pooled over the tokens it
  generated, never over the prompt that named the emotion.

A vector is the mean activation of an emotion minus the mean over all emotions (and, as a second
variant, minus the mean of the neutral reference), optionally with the leading principal components
of neutral activations projected out: the directions along which every text varies.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from emoaudit import __version__
from emoaudit.activations import GenerationReader, Pooling, capture, tokenize
from emoaudit.errors import EmoauditError
from emoaudit.generation import chat_prompt_ids, eos_ids, generate
from emoaudit.layers import LAYER_CONVENTION
from emoaudit.loading import LoadedModel
from emoaudit.spec import AuditSpec, Profile
from emoaudit.storage import write_with

METHODS = ("comprehension", "generation")
_MIN_GENERATED_TOKENS = 8


@dataclass
class Activations:
    """Pooled activations of one method: values [n_samples, n_layers, hidden], one label and text per sample."""

    method: str
    labels: list[str]
    texts: list[str]
    values: torch.Tensor
    token_norms: torch.Tensor  # [n_samples, n_layers]: mean norm of the pooled tokens
    pooling: str
    prompts: list[str] | None = None

    def of(self, label: str) -> torch.Tensor:
        return self.values[[i for i, lab in enumerate(self.labels) if lab == label]]

    def save(self, path: Path) -> None:
        meta = {
            "method": self.method,
            "pooling": self.pooling,
            "labels": json.dumps(self.labels),
            "texts": json.dumps(self.texts),
            "prompts": json.dumps(self.prompts),
        }
        tensors = {"values": self.values.contiguous(), "token_norms": self.token_norms.contiguous()}
        write_with(path, lambda tmp: save_file(tensors, str(tmp), metadata=meta))

    @classmethod
    def load(cls, path: Path) -> Activations:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata()
            values, norms = f.get_tensor("values"), f.get_tensor("token_norms")
        return cls(
            meta["method"],
            json.loads(meta["labels"]),
            json.loads(meta["texts"]),
            values,
            norms,
            meta["pooling"],
            json.loads(meta["prompts"]),
        )


@dataclass
class EmotionVectors:
    """One vector per emotion and layer, in the raw residual space that steering adds to."""

    method: str
    emotions: list[str]
    vectors: torch.Tensor  # [emotions, layers, hidden]: mean minus the mean over emotions, denoised
    versus_reference: torch.Tensor  # [emotions, layers, hidden]: mean minus the reference mean, denoised
    grand_mean: torch.Tensor  # [layers, hidden]
    reference_mean: torch.Tensor  # [layers, hidden]
    mean_norm: torch.Tensor  # [layers]: mean per-token residual norm, the unit steering strengths are scaled by
    removed_components: list[int]  # per layer, neutral principal components projected out
    pooling: str


def comprehension_activations(
    lm: LoadedModel, spec: AuditSpec, profile: Profile, on_batch: Callable[[int], None] | None = None
) -> Activations:
    labels, texts = _passages(spec.passages, spec.labels, profile.passages_per_label)
    captured = capture(lm, tokenize(lm, texts), Pooling.parse(spec.pooling), on_batch=on_batch)
    return Activations(
        "comprehension", labels, texts, captured.means, captured.token_norms, f"{spec.pooling} over the passage"
    )


def heldout_activations(lm: LoadedModel, spec: AuditSpec) -> Activations:
    labels, texts = _passages(spec.heldout, spec.labels, None)
    captured = capture(lm, tokenize(lm, texts), Pooling.parse(spec.pooling))
    return Activations("heldout", labels, texts, captured.means, captured.token_norms, f"{spec.pooling} over the text")


def generation_prompts(spec: AuditSpec, profile: Profile) -> tuple[list[str], list[str]]:
    """(labels, prompts): templates and topics rotate so that no two stories share both."""
    labels: list[str] = []
    prompts: list[str] = []
    for index, label in enumerate(spec.labels):
        is_reference = label == spec.reference
        templates = spec.reference_templates if is_reference else spec.emotion_templates
        topics = spec.reference_topics if is_reference else spec.topics
        for j in range(profile.stories_per_label):
            template = templates[j % len(templates)]
            topic = topics[(index * 5 + j * 3) % len(topics)]
            labels.append(label)
            prompts.append(template.format(emotion=label, topic=topic))
    return labels, prompts


def generation_activations(
    lm: LoadedModel,
    spec: AuditSpec,
    profile: Profile,
    seed: int,
    on_batch: Callable[[int], None] | None = None,
) -> Activations:
    labels, prompts = generation_prompts(spec, profile)
    prompt_ids = [chat_prompt_ids(lm, p) for p in prompts]
    reader = GenerationReader(lm, len(prompts), eos_ids(lm))
    written = generate(
        lm,
        prompt_ids,
        profile.max_new_tokens + 1,  # the last token is never fed back: read the ones before it
        seed,
        temperature=float(spec.generation["temperature"]),
        top_p=float(spec.generation["top_p"]),
        on_batch=on_batch,
        batch_context=reader.batch,
    )
    new_ids = [ids[: profile.max_new_tokens] for ids in written]
    kept = [i for i, ids in enumerate(new_ids) if len(ids) >= _MIN_GENERATED_TOKENS]
    missing = sorted({labels[i] for i in range(len(labels))} - {labels[i] for i in kept})
    if missing:
        raise EmoauditError(
            f"the model wrote (almost) nothing for: {', '.join(missing)}; generation-based extraction needs text"
        )
    captured = reader.captured(kept)
    texts = [lm.tokenizer.decode(new_ids[i], skip_special_tokens=True) for i in kept]
    return Activations(
        "generation",
        [labels[i] for i in kept],
        texts,
        captured.means,
        captured.token_norms,
        "mean over the generated tokens",
        [prompts[i] for i in kept],
    )


def _passages(table: dict[str, list[str]], labels: list[str], per_label: int | None) -> tuple[list[str], list[str]]:
    out_labels: list[str] = []
    texts: list[str] = []
    for label in labels:
        chosen = table[label][:per_label]
        out_labels += [label] * len(chosen)
        texts += chosen
    return out_labels, texts


def compute_vectors(acts: Activations, spec: AuditSpec, denoise_variance: float) -> EmotionVectors:
    """Vectors of every layer from pooled activations (see the module docstring)."""
    emotions = spec.emotion_names
    means = torch.stack([acts.of(e).mean(dim=0) for e in emotions])  # [E, L, H]
    reference = acts.of(spec.reference)
    reference_mean = reference.mean(dim=0)
    grand_mean = means.mean(dim=0)
    bases, removed = _noise_bases(reference, denoise_variance)
    centred = _project_out(means - grand_mean, bases)
    versus = _project_out(means - reference_mean, bases)
    norms = acts.token_norms.mean(dim=0)  # [L]
    return EmotionVectors(
        acts.method, emotions, centred, versus, grand_mean, reference_mean, norms, removed, acts.pooling
    )


def _noise_bases(reference: torch.Tensor, share: float) -> tuple[list[torch.Tensor], list[int]]:
    """Per layer, the leading principal directions [hidden, k] of neutral activations that explain `share`."""
    n, n_layers, hidden = reference.shape
    bases, removed = [], []
    for layer in range(n_layers):
        if share <= 0 or n < 3:
            bases.append(torch.zeros(hidden, 0))
            removed.append(0)
            continue
        x = reference[:, layer].double()
        _, s, vh = torch.linalg.svd(x - x.mean(dim=0), full_matrices=False)
        explained = (s**2).cumsum(0) / (s**2).sum()
        k = int((explained < share).sum().item()) + 1
        bases.append(vh[:k].T.float())
        removed.append(k)
    return bases, removed


def _project_out(vectors: torch.Tensor, bases: list[torch.Tensor]) -> torch.Tensor:
    """Remove each layer's basis from [emotions, layers, hidden] vectors: v - U (U^T v)."""
    out = vectors.clone()
    for layer, u in enumerate(bases):
        out[:, layer] -= (vectors[:, layer] @ u) @ u.T
    return out


def save_vectors(vectors: EmotionVectors, identity: dict[str, object], path: Path, spec_sha256: str) -> None:
    """`path` holds one [layers, hidden] tensor per emotion; `<stem>.stats.safetensors` what using them needs."""
    metadata = {
        "format": "emoaudit-vectors/1",
        "emoaudit_version": __version__,
        "method": vectors.method,
        "pooling": vectors.pooling,
        "emotions": json.dumps(vectors.emotions),
        "operation": "add",
        "hook_point": "residual stream: output of a decoder block (forward hook), every position",
        "layer_index": LAYER_CONVENTION,
        "variant": "mean activation of the emotion minus the mean over all emotions",
        "normalisation": "none: raw residual units. Steer with strength * mean_norm[layer] * v / |v|; "
        "mean_norm is in the stats file",
        "denoising": json.dumps({"removed_neutral_components_per_layer": vectors.removed_components}),
        "model": json.dumps(identity),
        "audit_spec_sha256": spec_sha256,
    }
    tensors = {e: vectors.vectors[i].contiguous() for i, e in enumerate(vectors.emotions)}
    stats = {"grand_mean": vectors.grand_mean, "reference_mean": vectors.reference_mean, "mean_norm": vectors.mean_norm}
    stats |= {f"versus_reference.{e}": vectors.versus_reference[i] for i, e in enumerate(vectors.emotions)}
    stats = {k: v.contiguous() for k, v in stats.items()}
    write_with(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))
    stats_path = path.with_name(path.stem + ".stats.safetensors")
    write_with(stats_path, lambda tmp: save_file(stats, str(tmp), metadata={"vectors": path.name}))


def load_vectors(path: Path) -> tuple[EmotionVectors, dict[str, str]]:
    """Vectors saved by `save_vectors`, with their metadata (operation, hook point, layer convention...)."""
    stats_path = path.with_name(path.stem + ".stats.safetensors")
    if not path.is_file() or not stats_path.is_file():
        raise EmoauditError(f"no emoaudit vectors at {path} (and {stats_path.name})")
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
        if meta.get("format") != "emoaudit-vectors/1":
            raise EmoauditError(f"{path} is not an emoaudit vector file (format {meta.get('format')!r})")
        emotions = json.loads(meta["emotions"])
        vectors = torch.stack([f.get_tensor(e) for e in emotions])
    with safe_open(str(stats_path), framework="pt") as f:
        stats = {k: f.get_tensor(k) for k in f.keys()}
    versus = torch.stack([stats[f"versus_reference.{e}"] for e in emotions])
    removed = json.loads(meta["denoising"])["removed_neutral_components_per_layer"]
    loaded = EmotionVectors(
        meta["method"],
        emotions,
        vectors,
        versus,
        stats["grand_mean"],
        stats["reference_mean"],
        stats["mean_norm"],
        removed,
        meta["pooling"],
    )
    return loaded, meta
