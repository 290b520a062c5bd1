"""Where a set of emotion vectors comes from, typed: the model, the emotion layer, the method and what
was done to the activations. Built once, when the vectors are made or loaded; the vector file stores it
as safetensors metadata, which is string-valued (the strings are written exactly as before the record
existed, so older files load and llama.cpp export and `emoaudit steer --vectors` read the same bytes).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from emoaudit import __version__
from emoaudit.model.architectures import LAYER_CONVENTION

FORMAT = "emoaudit-vectors/1"


@dataclass(frozen=True)
class ModelOrigin:
    """The model the vectors were read from, as the audit identified it (None: the file does not say)."""

    reference: str | None
    sha256: str | None  # of the weights
    model_type: str | None  # transformers' model_type, which llama.cpp's export names
    hidden_size: int | None
    recorded: str  # the whole identity as JSON, written back unchanged

    @classmethod
    def of(cls, identity: Mapping[str, object]) -> ModelOrigin:
        """From an identity record (`ModelIdentity.to_dict()`)."""
        return cls.parse(json.dumps(dict(identity)))

    @classmethod
    def parse(cls, recorded: str) -> ModelOrigin:
        """From the JSON a vector file holds; ValueError when it is not a JSON object."""
        identity = json.loads(recorded)
        if not isinstance(identity, dict):
            raise ValueError("the model identity is not a JSON object")

        def text(key: str) -> str | None:
            value = identity.get(key)
            return value if isinstance(value, str) else None

        size = identity.get("hidden_size")
        hidden = size if isinstance(size, int) and not isinstance(size, bool) else None
        return cls(text("reference"), text("sha256"), text("model_type"), hidden, recorded)


@dataclass(frozen=True)
class VectorsOrigin:
    """How vectors were made and, once an audit chose them, which model, layer and calibration they carry."""

    method: str  # comprehension or generation
    pooling: str  # which tokens of a text were averaged (spec.pooling)
    removed_components: tuple[int, ...]  # per layer, neutral principal components projected out
    layer: int | None = None  # the audit's emotion layer, where `steer` acts by default
    model: ModelOrigin | None = None
    spec_sha256: str | None = None  # of the audit specification
    stories_read: str | None = None  # generation vectors: which reading of the stories they come from
    calibrated_unit: float | None = None  # the audit's calibrated steering strength (results.json)
    calibrated_range: float | None = None  # multipliers of it up to this are the audit's calibrated range

    def metadata(self, emotions: list[str]) -> dict[str, str]:
        """The vector file's safetensors metadata; ValueError without a model or specification to record."""
        if self.model is None or self.spec_sha256 is None:
            raise ValueError("vectors are saved with the model and specification they come from")
        return {
            "format": FORMAT,
            "emoaudit_version": __version__,
            "method": self.method,
            "pooling": self.pooling,
            "emotions": json.dumps(emotions),
            "operation": "add",
            "hook_point": "residual stream: output of a decoder block (forward hook), every position",
            "layer_index": LAYER_CONVENTION,
            "emotion_layer": json.dumps(self.layer),
            "variant": "mean activation of the emotion minus the mean over all emotions",
            "normalisation": "none: raw residual units. Steer with strength * mean_norm[layer] * v / |v|; "
            "mean_norm is in the stats file",
            "denoising": json.dumps({"removed_neutral_components_per_layer": list(self.removed_components)}),
            "model": self.model.recorded,
            "audit_spec_sha256": self.spec_sha256,
            **({} if self.stories_read is None else {"stories_read": self.stories_read}),
        }

    @classmethod
    def from_metadata(
        cls, meta: Mapping[str, str], calibration: tuple[float | None, float | None] = (None, None)
    ) -> VectorsOrigin:
        """From a vector file's metadata (files without `emotion_layer` or the model load too); KeyError or
        ValueError for metadata `metadata` could not have written."""
        removed = json.loads(meta["denoising"])["removed_neutral_components_per_layer"]
        layer = json.loads(meta.get("emotion_layer", "null"))
        return cls(
            meta["method"],
            meta["pooling"],
            tuple(int(k) for k in removed),
            None if layer is None else int(layer),
            ModelOrigin.parse(meta["model"]) if "model" in meta else None,
            meta.get("audit_spec_sha256"),
            meta.get("stories_read"),
            *calibration,
        )
