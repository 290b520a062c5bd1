"""What a study compares of one audited model (its evidence) and what the paper's claims are tested on."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from emoaudit.results.common import Check


@dataclass(frozen=True)
class Comparison:
    """Generation against comprehension at the emotion layer, on the per-emotion cross-validated margin."""

    cohens_d: float  # positive when generation-based vectors separate better
    mann_whitney_p: float  # two-sided, uncorrected


@dataclass(frozen=True)
class MethodEvidence:
    """One extraction method at the emotion layer: held-out generalisation and separation against baselines."""

    heldout_accuracy: float  # nearest-vector accuracy on held-out sentences no vector was built from
    chance_accuracy: float  # 1 / number of emotions
    probe_accuracy: float  # cross-validated linear probe
    probe_accuracy_shuffled: float  # the same probe on shuffled labels
    fisher_p: float  # permutation p-value of the Fisher ratio against shuffled labels
    # per layer: mean pairwise cosine of the emotions' mean activations minus that among neutral texts
    similarity_above_reference: list[float]


@dataclass(frozen=True)
class ModelEvidence:
    """One audited model, as the study compares it."""

    reference: str
    model_type: str  # the family the study groups by (transformers' model_type)
    architecture: str
    parameters: int
    n_layers: int
    emotion_layer: int  # layer i is the output of decoder block i
    relative_depth: float  # emotion_layer / (n_layers - 1)
    layer_method: str  # the method whose score curve chose the layer
    score: list[float]  # that method's log(Fisher ratio / shuffled null) per layer
    comparison: Comparison
    methods: dict[str, MethodEvidence]
    regimes: dict[str, int] | None  # steering trials per regime; None when steering did not run
    leakage_severity: str | None  # None when the leakage stage did not run
    findings: list[Check]  # the study's policy applied to these results

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
