"""What a study compares of one audited model (its evidence) and what the paper's claims are tested on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from pydantic import ConfigDict

from emoaudit.results.behaviour import Behaviour
from emoaudit.results.common import Check, Count, Curve, Fraction, PartialCurve, PositiveCount, Severity, WithKeys
from emoaudit.results.steering import AllRegimes


@dataclass(frozen=True)
class Comparison:
    """Generation against comprehension at the emotion layer, on the per-emotion cross-validated margin."""

    cohens_d: float | None  # positive when generation-based vectors separate better; None when unbounded
    mann_whitney_p: Fraction  # two-sided, uncorrected

    __pydantic_config__ = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class MethodEvidence:
    """One extraction method at the emotion layer: held-out generalisation and separation against baselines."""

    heldout_accuracy: Fraction  # nearest-vector accuracy on held-out sentences no vector was built from
    chance_accuracy: Fraction  # 1 / number of emotions
    probe_accuracy: Fraction  # cross-validated linear probe
    probe_accuracy_shuffled: Fraction  # the same probe on shuffled labels
    fisher_p: Fraction  # permutation p-value of the Fisher ratio against shuffled labels
    # per layer: mean pairwise cosine of the emotions' mean activations minus that among neutral texts
    similarity_above_reference: Curve

    __pydantic_config__ = ConfigDict(extra="forbid")


# Every extraction method by name: the study compares these two.
MethodsEvidence = Annotated[dict[str, MethodEvidence], WithKeys(("comprehension", "generation"))]


@dataclass(frozen=True)
class ModelEvidence:
    """One audited model, as the study compares it."""

    reference: str
    model_type: str  # the family the study groups by (transformers' model_type)
    architecture: str
    parameters: PositiveCount
    n_layers: PositiveCount
    emotion_layer: Count  # layer i is the output of decoder block i
    relative_depth: Fraction  # emotion_layer / (n_layers - 1)
    layer_method: str  # the method whose score curve chose the layer
    score: PartialCurve  # that method's log(Fisher ratio / shuffled null) per layer; None: undefined
    comparison: Comparison
    methods: MethodsEvidence
    regimes: AllRegimes | None  # steering trials per regime; None when steering did not run
    leakage_severity: Severity | None  # None when the leakage stage did not run
    findings: list[Check]  # the study's policy applied to these results
    behaviour: Behaviour | None = None  # None when the behaviour stage did not run

    __pydantic_config__ = ConfigDict(extra="forbid")
