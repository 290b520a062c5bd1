"""Emotion vectors as an object (after repeng's `ControlVector`): built from pooled activations, saved
with the metadata that says how to use them, loaded back, and applied to a model.

A vector is the mean activation of an emotion minus the mean over all emotions (and, as a second
variant, minus the mean of the neutral reference), with the leading principal components of neutral
activations projected out: the directions along which every text varies, emotional or not.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator, Sequence
from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from emoaudit.capture.activations import Activations
from emoaudit.arguments import check_strength
from emoaudit.errors import EmoauditError
from emoaudit.model.architectures import residual_stream
from emoaudit.model.hooks import add_to_blocks
from emoaudit.storage import write_with
from emoaudit.vectors.origin import FORMAT, ModelOrigin, VectorsOrigin


def unit_deltas(directions: torch.Tensor, strengths: Sequence[float], mean_norm: float) -> torch.Tensor:
    """[n, hidden] deltas: each direction [n, hidden] made a unit vector, scaled by its strength × the mean norm."""
    unit = directions / directions.norm(dim=-1, keepdim=True)
    return unit * torch.tensor(list(strengths), dtype=unit.dtype)[:, None] * mean_norm


@dataclass(frozen=True, repr=False)
class EmotionVectors:
    """One vector per emotion and layer, in the raw residual space that steering adds to.

    Strengths are in units of the layer's mean per-token residual norm: `delta(e, l, s)` is
    s × mean_norm[l] × v/‖v‖, what `emoaudit steer --strength s` adds. Loaded from an audit that
    steered, `calibrated_unit` is the strength its calibration found (the next-token distribution moved
    by the target KL) and `calibrated_range` the multiple of it the audit's statistics read: `steer`
    warns past their product, where text degenerates (repetition, another language) more than it steers.
    `origin` (typed) says where they come from: model, emotion layer, method, denoising, calibration.
    """

    emotions: list[str]
    vectors: torch.Tensor  # [emotions, layers, hidden]: mean minus the mean over emotions, denoised
    versus_reference: torch.Tensor  # [emotions, layers, hidden]: mean minus the reference mean, denoised
    grand_mean: torch.Tensor  # [layers, hidden]
    reference_mean: torch.Tensor  # [layers, hidden]
    mean_norm: torch.Tensor  # [layers]: mean per-token residual norm, the unit steering strengths are scaled by
    origin: VectorsOrigin

    @property
    def emotion_layer(self) -> int | None:
        """The layer the audit chose, where `steer` acts by default (None: not an audit's vectors)."""
        return self.origin.layer

    @property
    def calibrated_unit(self) -> float | None:
        """The audit's calibrated steering strength (results.json), None without one."""
        return self.origin.calibrated_unit

    @property
    def calibrated_range(self) -> float | None:
        """Multipliers of `calibrated_unit` up to this are the audit's calibrated range."""
        return self.origin.calibrated_range

    def __repr__(self) -> str:
        unit = "" if self.calibrated_unit is None else f", calibrated_unit={self.calibrated_unit:.3g}"
        return (
            f"EmotionVectors(method={self.origin.method!r}, emotions={len(self.emotions)}, layers={self.n_layers}, "
            f"hidden={int(self.vectors.shape[2])}, emotion_layer={self.emotion_layer}{unit})"
        )

    def past_calibrated_range(self, strength: float) -> str | None:
        """One line saying that `strength` is past the audit's calibrated range, or None (also when unknown)."""
        if self.calibrated_unit is None or self.calibrated_range is None:
            return None
        limit = self.calibrated_unit * self.calibrated_range
        if abs(strength) <= limit * (1 + 1e-9):
            return None
        return (
            f"strength {strength:g} is past the audit's calibrated range (up to {limit:.3g}: "
            f"{self.calibrated_range:g} x the calibrated unit {self.calibrated_unit:.3g}); expect degenerate text"
        )

    @classmethod
    def from_activations(
        cls, acts: Activations, emotions: Sequence[str], reference: str, denoise_variance: float
    ) -> EmotionVectors:
        """Vectors of every layer from pooled activations [n, layers, hidden] (see the module docstring)."""
        means = torch.stack([acts.of(e).mean(dim=0) for e in emotions])  # [E, L, H]
        reference_acts = acts.of(reference)
        reference_mean = reference_acts.mean(dim=0)
        grand_mean = means.mean(dim=0)
        bases, removed = _noise_bases(reference_acts, denoise_variance)
        centred = _project_out(means - grand_mean, bases)
        versus = _project_out(means - reference_mean, bases)
        norms = acts.token_norms.mean(dim=0)  # [L]
        origin = VectorsOrigin(acts.method, acts.pooling, tuple(removed))
        return cls(list(emotions), centred, versus, grand_mean, reference_mean, norms, origin)

    def chosen(
        self, layer: int, identity: Mapping[str, object], spec_sha256: str, stories_read: str | None = None
    ) -> EmotionVectors:
        """These vectors as an audit chose them (a new object): its emotion layer, the model's identity
        (`ModelIdentity.to_dict()`), the specification's sha256 and, for generation vectors, the reading
        of the stories they come from."""
        model = ModelOrigin.of(identity)
        return replace(
            self,
            origin=replace(self.origin, layer=layer, model=model, spec_sha256=spec_sha256, stories_read=stories_read),
        )

    @property
    def n_layers(self) -> int:
        return int(self.vectors.shape[1])

    def direction(self, emotion: str, layer: int) -> torch.Tensor:
        """The raw vector [hidden] of an emotion at a layer; EmoauditError for an unknown emotion or layer."""
        if emotion not in self.emotions:
            raise EmoauditError(f"unknown emotion {emotion!r}; these vectors have: {', '.join(self.emotions)}")
        if not 0 <= layer < self.n_layers:
            raise EmoauditError(f"layer {layer} is outside 0..{self.n_layers - 1}")
        return self.vectors[self.emotions.index(emotion), layer]

    def delta(self, emotion: str, layer: int, strength: float) -> torch.Tensor:
        """What steering adds [hidden]: strength × mean_norm[layer] × the unit direction."""
        return unit_deltas(self.direction(emotion, layer)[None], [strength], float(self.mean_norm[layer]))[0]

    def layer_or_default(self, layer: int | None) -> int:
        if layer is not None:
            return layer
        if self.emotion_layer is None:
            raise EmoauditError("these vectors record no emotion layer: pass layer=")
        return self.emotion_layer

    @contextmanager
    def steer(self, model: nn.Module, emotion: str, strength: float, layer: int | None = None) -> Iterator[None]:
        """Steer a transformers causal LM toward `emotion` while the block is open.

        `model` is any supported `*ForCausalLM` object (plain transformers, no emoaudit loading);
        `strength` is in the units of `emoaudit steer --strength`; `layer` defaults to the audit's
        emotion layer. The hook is removed on exit, whatever happens inside, and the model is left as
        it was. Raises EmoauditError for an unsupported model, a hidden size or layer count that is not
        these vectors', an unknown emotion or layer, a strength that is not finite or past `MAX_STRENGTH`
        (ValueError for one that is not a number), before any hook is added.
        """
        strength = check_strength(strength)
        stream = residual_stream(model)
        hidden, model_hidden = int(self.vectors.shape[2]), int(stream.unembed.weight.shape[1])  # type: ignore[index]
        if (stream.n_layers, model_hidden) != (self.n_layers, hidden):
            raise EmoauditError(
                f"these vectors are for a model of {self.n_layers} layers × {hidden}, "
                f"not {stream.n_layers} layers × {model_hidden}"
            )
        chosen = self.layer_or_default(layer)
        if (warning := self.past_calibrated_range(strength)) is not None:
            warnings.warn(warning, UserWarning, stacklevel=3)
        with add_to_blocks(stream, [chosen], self.delta(emotion, chosen, strength)):
            yield

    def save(self, path: Path) -> None:
        """`path` holds one [layers, hidden] tensor per emotion and the origin as metadata;
        `<stem>.stats.safetensors` what using them needs. ValueError for vectors no audit chose (`chosen`)."""
        metadata = self.origin.metadata(self.emotions)
        tensors = {e: self.vectors[i].contiguous() for i, e in enumerate(self.emotions)}
        stats = {"grand_mean": self.grand_mean, "reference_mean": self.reference_mean, "mean_norm": self.mean_norm}
        stats |= {f"versus_reference.{e}": self.versus_reference[i] for i, e in enumerate(self.emotions)}
        stats = {k: v.contiguous() for k, v in stats.items()}
        write_with(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))
        write_with(_stats_path(path), lambda tmp: save_file(stats, str(tmp), metadata={"vectors": path.name}))

    @classmethod
    def load(cls, path: Path | str) -> EmotionVectors:
        """Vectors saved by `save` (a file, or an audit's output directory: its comprehension vectors), with
        the audit's calibrated unit and range when its results.json records a steering stage."""
        path = Path(path)
        if path.is_dir():
            path = (path / "vectors" if (path / "vectors").is_dir() else path) / "comprehension.safetensors"
        stats_path = _stats_path(path)
        if not path.is_file() or not stats_path.is_file():
            raise EmoauditError(f"no emoaudit vectors at {path} (and {stats_path.name})")
        try:
            return cls._read(path, stats_path)
        except EmoauditError:
            raise
        except Exception as exc:  # safetensors' SafetensorError, a missing key, bad JSON, a wrong shape
            first = (str(exc).strip().splitlines() or [""])[0][:200]
            raise EmoauditError(
                f"{path} (or {stats_path.name}) is damaged or not a vector file emoaudit wrote: "
                f"{type(exc).__name__}: {first}"
            ) from exc

    @classmethod
    def _read(cls, path: Path, stats_path: Path) -> EmotionVectors:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            if meta.get("format") != FORMAT:
                raise EmoauditError(f"{path} is not an emoaudit vector file (format {meta.get('format')!r})")
            emotions = json.loads(meta["emotions"])
            vectors = torch.stack([f.get_tensor(e) for e in emotions])
        with safe_open(str(stats_path), framework="pt") as f:
            stats = {k: f.get_tensor(k) for k in f.keys()}
        versus = torch.stack([stats[f"versus_reference.{e}"] for e in emotions])
        origin = VectorsOrigin.from_metadata(meta, _calibration(path.parent.parent / "results.json"))
        return cls(emotions, vectors, versus, stats["grand_mean"], stats["reference_mean"], stats["mean_norm"], origin)


def _calibration(results: Path) -> tuple[float | None, float | None]:
    """(calibrated unit, calibrated range) of the audit whose results.json this is; (None, None) without one."""
    try:
        steering = json.loads(results.read_text(encoding="utf-8"))["stages"]["steering"]
        unit = float(steering["calibration"]["unit_strength"])
        return unit, float(steering["summary"]["statistics"]["calibrated_range"])
    except (OSError, ValueError, KeyError, TypeError):
        return None, None


def _stats_path(path: Path) -> Path:
    return path.with_name(path.stem + ".stats.safetensors")


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
