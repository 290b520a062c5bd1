"""A model's evidence, from its results and the findings of a policy on them: what the paper's claims are
tested on (an audit, `report`) and what a study compares."""

from __future__ import annotations

from pathlib import Path

from emoaudit.results.common import Check
from emoaudit.results.document import Results
from emoaudit.results.evidence import Comparison, MethodEvidence, ModelEvidence
from emoaudit.results.extraction import MethodResults
from emoaudit.results.reading import read_results
from emoaudit.results.steering import REGIMES
from emoaudit.errors import EmoauditError
from emoaudit.report.gating import evaluate
from emoaudit.report.policy import Policy


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
        comparison=Comparison(
            None if comparison.cohens_d is None else sign * comparison.cohens_d, comparison.mann_whitney_p
        ),
        methods={name: _method(analysis, layer) for name, analysis in extraction.methods.items()},
        regimes={r: steering.summary.regime_totals[r] for r in REGIMES} if steering else None,
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
