"""What a study takes from each model's results.json.

The one module of the study that reads the results document.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from emoaudit.pipeline.options import STAGES
from emoaudit.results.behaviour import Behaviour
from emoaudit.results.common import Check
from emoaudit.results.document import Results
from emoaudit.results.extraction import MethodResults
from emoaudit.results.reading import read_results
from emoaudit.errors import EmoauditError
from emoaudit.report.gating import evaluate
from emoaudit.report.policy import Policy


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
    behaviour: Behaviour | None = None  # None when the behaviour stage did not run

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def is_finished(path: Path, reference: str, profile: str, seed: int, spec_sha256: str) -> bool:
    """Whether `path` (a results.json) is a complete audit of this model, every stage, with this profile, seed
    and specification.

    Anything else (missing, partial, another audit, unreadable) is left to the audit itself, which
    resumes it or refuses it with its own error.
    """
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        audit = document["audit"]
        return bool(
            document["complete"]
            and set(document["stages"]) >= set(STAGES)  # an `extract` run is complete without steering
            and document["model"]["reference"] == reference
            and audit["profile"] == profile
            and audit["seed"] == seed
            and audit["sha256"] == spec_sha256
        )
    except (OSError, ValueError, KeyError, TypeError):
        return False


def read_evidence(path: Path, policy: Policy) -> ModelEvidence:
    """A model's evidence from its results.json (validated against the results schema and read typed),
    with `policy` applied to it.

    Raises EmoauditError when the file is missing, is not a results file, or lacks the extraction stage.
    """
    results = read_results(path)
    evidence = evidence_of(results, evaluate(results, policy))
    if evidence is None:
        raise EmoauditError(f"{path} holds no extraction stage, which a study compares; rerun its audit")
    return evidence


def evidence_of(results: Results, findings: list[Check]) -> ModelEvidence | None:
    """A model's evidence from its typed results and the findings of a policy on them; None without the
    extraction stage, which every claim and comparison starts from."""
    model, stages = results.model, results.stages
    extraction = stages.extraction
    if extraction is None:
        return None
    layer = extraction.layer
    comparison = extraction.comparison
    # The results name the methods compared: d is positive when method_a separates better.
    sign = 1.0 if comparison.method_a == "generation" else -1.0
    steering, leakage = stages.steering, stages.leakage
    return ModelEvidence(
        reference=model.reference,
        model_type=model.model_type,
        architecture=model.architecture,
        parameters=model.parameters,
        n_layers=model.n_layers,
        emotion_layer=layer,
        relative_depth=extraction.emotion_layer.relative_depth,
        layer_method=extraction.emotion_layer.method,
        score=list(extraction.emotion_layer.score),
        comparison=Comparison(sign * comparison.cohens_d, comparison.mann_whitney_p),
        methods={name: _method(analysis, layer) for name, analysis in extraction.methods.items()},
        regimes=dict(steering.summary.regime_totals) if steering else None,
        leakage_severity=leakage.severity if leakage else None,
        findings=findings,
        behaviour=stages.behaviour,
    )


def _method(analysis: MethodResults, layer: int) -> MethodEvidence:
    curves, heldout = analysis.curves, analysis.heldout
    return MethodEvidence(
        heldout_accuracy=heldout.accuracy[layer],
        chance_accuracy=heldout.chance_accuracy,
        probe_accuracy=curves.probe_accuracy[layer],
        probe_accuracy_shuffled=curves.probe_accuracy_shuffled[layer],
        fisher_p=curves.fisher_p[layer],
        similarity_above_reference=list(curves.similarity_above_reference),
    )
