"""The paper's claims, tested on one model (an audit's results.json) and across the models of a study.

The claims, their wording and thresholds are data (`emoaudit/audits/claims.toml`); each has one test here, on
one model's evidence (`emoaudit.report.evidence`): `assess` runs it; an audit records every claim
(`paper_claims`), a study counts in how many models each holds (`evaluate_claims`).
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emoaudit.results.claims import ClaimOutcome, Measured, PaperClaims
from emoaudit.errors import EmoauditError
from emoaudit.report.gating import SEVERITIES
from emoaudit.spec import BUILTIN_DIR
from emoaudit.report.behaviour_claims import calm_lowers_desperate_raises, moves_refusal_and_sycophancy
from emoaudit.storage import sha256_file
from emoaudit.results.evidence import ModelEvidence
from emoaudit.results.study import ClaimResult, ModelVerdict

DEFAULT_CLAIMS = BUILTIN_DIR / "claims.toml"
# One model's audit has one generation-against-comprehension test: nothing to correct across.
UNCORRECTED = (
    "none: one model's p-values are uncorrected; a study corrects the generation-against-comprehension p "
    "across its models (Benjamini-Hochberg)"
)


@dataclass(frozen=True)
class Claim:
    id: str
    statement: str
    test: str  # the test in words, thresholds filled in
    thresholds: dict[str, Any]


@dataclass(frozen=True)
class Verdict:
    """One claim on one model: the measured quantity the test thresholds (`value`, what a study tabulates),
    every quantity it read with its unit, and whether it holds (None when the model has nothing to test
    it on)."""

    value: float | int | str | None
    holds: bool | None
    detail: str
    measured: list[Measured]


@dataclass(frozen=True)
class Subject:
    """What a claim is tested on in a study: a model's evidence (None if its audit failed) and its
    corrected p-value."""

    slug: str
    evidence: ModelEvidence | None
    corrected_p: float | None  # generation against comprehension, corrected across the models; None: uncorrected


def load_claims(path: Path = DEFAULT_CLAIMS) -> list[Claim]:
    """The claims file; raises EmoauditError when it is missing, malformed, or names a claim with no test."""
    if not path.is_file():
        raise EmoauditError(f"claims file not found: {path}")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))["claims"]
        claims = []
        for claim_id, entry in raw.items():
            thresholds = {k: v for k, v in entry.items() if k not in ("statement", "test")}
            shown = {k: ", ".join(map(str, v)) if isinstance(v, list) else v for k, v in thresholds.items()}
            claims.append(Claim(claim_id, entry["statement"], entry["test"].format(**shown), thresholds))
    except (tomllib.TOMLDecodeError, KeyError, AttributeError, IndexError) as exc:
        raise EmoauditError(f"malformed claims file {path}: {type(exc).__name__}: {exc}") from exc
    unknown = [c.id for c in claims if c.id not in TESTS]
    if unknown:
        raise EmoauditError(f"claims file {path}: no test for {', '.join(unknown)}; known: {', '.join(TESTS)}")
    return claims


def evaluate_claims(claims: list[Claim], subjects: list[Subject]) -> list[ClaimResult]:
    """Every claim on every model of a study; a claim's thresholds come from the claims file."""
    results = []
    for claim in claims:
        verdicts = [_model_verdict(claim, s) for s in subjects]
        measured = [v for v in verdicts if v.holds is not None]
        results.append(
            ClaimResult(
                claim.id,
                claim.statement,
                claim.test,
                claim.thresholds,
                verdicts,
                holds_in=sum(bool(v.holds) for v in measured),
                measured=len(measured),
            )
        )
    return results


def _model_verdict(claim: Claim, subject: Subject) -> ModelVerdict:
    if subject.evidence is None:
        return ModelVerdict(subject.slug, None, None, "not audited")
    verdict = assess(claim, subject.evidence, subject.corrected_p)
    return ModelVerdict(subject.slug, verdict.value, verdict.holds, verdict.detail)


def paper_claims(claims: list[Claim], evidence: ModelEvidence | None, path: Path = DEFAULT_CLAIMS) -> PaperClaims:
    """Every claim of `path` on one audited model, as results.json records them; `evidence` is None when
    the extraction stage, which every claim starts from, did not run (then no claim is measured)."""
    outcomes = []
    for claim in claims:
        verdict = assess(claim, evidence) if evidence else Verdict(None, None, "the extraction stage did not run", [])
        outcomes.append(
            ClaimOutcome(
                claim.id, claim.statement, claim.test, claim.thresholds, verdict.measured, verdict.holds, verdict.detail
            )
        )
    return PaperClaims(sha256_file(path), UNCORRECTED, outcomes)


def assess(claim: Claim, evidence: ModelEvidence, corrected_p: float | None = None) -> Verdict:
    """One claim on one model. `corrected_p` is the model's generation-against-comprehension p corrected
    across the models of a study; None in one model's audit, whose test reads the uncorrected p and says so.

    Raises EmoauditError when a threshold of the claims file is missing or of the wrong kind.
    """
    try:
        return TESTS[claim.id](claim.thresholds, evidence, corrected_p)
    except (KeyError, TypeError, ValueError) as exc:
        raise EmoauditError(
            f"claim {claim.id!r}: bad threshold in the claims file ({type(exc).__name__}: {exc})"
        ) from exc


def _generation_separates_better(t: dict[str, Any], e: ModelEvidence, corrected_p: float | None) -> Verdict:
    d = e.comparison.cohens_d
    if corrected_p is None:
        p, correction, said = e.comparison.mann_whitney_p, "uncorrected (one model)", "uncorrected"
    else:
        p, correction, said = corrected_p, "Benjamini-Hochberg corrected across the models studied", "corrected"
    margins = f"per-emotion mean cross-validated centroid margin at the emotion layer ({e.emotion_layer})"
    measured = [
        Measured(
            "cohens_d",
            d if d is not None else "unbounded",
            f"Cohen's d of generation over comprehension on the {margins}; positive: generation",
        ),
        Measured("mann_whitney_p", p, f"two-sided Mann-Whitney U p on the same margins, {correction}"),
    ]
    if d is None:  # the margins do not vary within either method: no effect size to threshold
        return Verdict(None, False, f"d unbounded (the margins do not vary), {said} p {p:.3g}", measured)
    holds = d > float(t["min_cohens_d"]) and p < float(t["alpha"])
    return Verdict(d, holds, f"d {d:+.2f}, {said} p {p:.3g}", measured)


def _mid_depth(t: dict[str, Any], e: ModelEvidence, _: float | None) -> Verdict:
    depth = e.relative_depth
    holds = float(t["low"]) <= depth <= float(t["high"])
    measured = [
        Measured(
            "emotion_layer", e.emotion_layer, f"layer index (output of block i), chosen by the {e.layer_method} score"
        ),
        Measured("relative_depth", depth, f"emotion layer / (layers - 1), of {e.n_layers} layers"),
    ]
    return Verdict(
        depth, holds, f"layer {e.emotion_layer} of 0..{e.n_layers - 1}: relative depth {depth:.2f}", measured
    )


def _similarity_u_shape(t: dict[str, Any], e: ModelEvidence, _: float | None) -> Verdict:
    method = str(t["method"])
    curve = e.methods[method].similarity_above_reference
    lowest = min(range(len(curve)), key=curve.__getitem__)
    depth = lowest / max(len(curve) - 1, 1)
    rise = min(curve[0], curve[-1]) - curve[lowest]  # the lower of the two ends above the minimum
    holds = float(t["low"]) <= depth <= float(t["high"]) and rise >= float(t["min_rise"])
    similarity = (
        f"cosine: mean pairwise cosine of the {method} emotions' mean activations minus that among neutral texts"
    )
    measured = [
        Measured("minimum_layer", lowest, f"layer where the {method} similarity above anisotropy is lowest"),
        Measured("minimum_relative_depth", depth, "that layer / (layers - 1)"),
        Measured("minimum", curve[lowest], similarity),
        Measured("first_layer_rise", curve[0] - curve[lowest], f"layer 0 above the minimum ({similarity})"),
        Measured("last_layer_rise", curve[-1] - curve[lowest], f"the last layer above the minimum ({similarity})"),
    ]
    detail = (
        f"lowest at layer {lowest} (relative depth {depth:.2f}); ends above it by "
        f"{curve[0] - curve[lowest]:.3f} and {curve[-1] - curve[lowest]:.3f}"
    )
    return Verdict(rise, holds, detail, measured)


def _above_baselines(t: dict[str, Any], e: ModelEvidence, _: float | None) -> Verdict:
    method = str(t["method"])
    m = e.methods[method]
    ratio = m.probe_accuracy / m.probe_accuracy_shuffled if m.probe_accuracy_shuffled > 0 else None
    holds = m.probe_accuracy >= float(t["probe_over_shuffled"]) * m.probe_accuracy_shuffled and m.fisher_p < float(
        t["alpha"]
    )
    at = f"{method} activations at the emotion layer ({e.emotion_layer})"
    measured = [
        Measured("probe_accuracy", m.probe_accuracy, f"cross-validated linear probe accuracy, {at}"),
        Measured("probe_accuracy_shuffled", m.probe_accuracy_shuffled, f"the same probe on shuffled labels, {at}"),
        *(
            [Measured("probe_over_shuffled", ratio, "probe accuracy / shuffled-label accuracy")]
            if ratio is not None
            else []
        ),
        Measured("fisher_p", m.fisher_p, f"permutation p of the Fisher ratio against shuffled labels, {at}"),
    ]
    times = f" ({ratio:.1f}x)" if ratio is not None else ""
    detail = (
        f"probe {m.probe_accuracy:.2f} vs shuffled {m.probe_accuracy_shuffled:.2f}{times}, Fisher p {m.fisher_p:.3g}"
    )
    return Verdict(ratio, holds, detail, measured)


def _three_regimes(t: dict[str, Any], e: ModelEvidence, _: float | None) -> Verdict:
    if e.regimes is None:
        return Verdict(None, None, "the steering stage did not run", [])
    counts: dict[str, int] = {str(r): n for r, n in e.regimes.items()}  # the claims file names regimes as text
    wanted = [str(r) for r in t["regimes"]]
    seen = [r for r in wanted if counts[r] >= int(t["min_trials"])]
    measured = [Measured(r, counts[r], "steered trials classified in this regime") for r in wanted]
    return Verdict(len(seen), len(seen) == len(wanted), ", ".join(f"{r} {counts[r]}" for r in wanted), measured)


def _leakage(t: dict[str, Any], e: ModelEvidence, _: float | None) -> Verdict:
    severity = e.leakage_severity
    if severity is None:
        return Verdict(None, None, "the leakage stage did not run", [])
    holds = SEVERITIES.index(severity) > SEVERITIES.index(str(t["above"]))
    measured = [Measured("severity", severity, "the leakage stage's severity (info, low, medium, high)")]
    return Verdict(severity, holds, f"leakage severity {severity}", measured)


def _semantic_entanglement(_: dict[str, Any], e: ModelEvidence, __: float | None) -> Verdict:
    check = next((c for c in e.findings if c.id == "semantic_entanglement"), None)
    if check is None or check.evidence.get("pairs", 0) == 0:
        return Verdict(None, None, check.detail if check else "the leakage stage did not run", [])
    measured = [
        Measured(name, check.evidence[name], unit)
        for name, unit in (
            ("mean_excess", "nats: log-probability rise of the emotion's words under its vector minus under random"),
            ("p_value", "one-sided Wilcoxon signed-rank p of the excess across the steered emotions"),
            ("selectivity_p_value", "the same test of the rise over the other emotions' words"),
        )
        if check.evidence.get(name) is not None
    ]
    return Verdict(check.evidence.get("mean_excess"), check.failed, check.detail, measured)


TESTS: dict[str, Callable[[dict[str, Any], ModelEvidence, float | None], Verdict]] = {
    "generation_separates_better": _generation_separates_better,
    "mid_depth": _mid_depth,
    "similarity_u_shape": _similarity_u_shape,
    "above_baselines": _above_baselines,
    "three_regimes": _three_regimes,
    "leakage": _leakage,
    "semantic_entanglement": _semantic_entanglement,
    "steering_moves_refusal_and_sycophancy": lambda t, e, _: Verdict(*moves_refusal_and_sycophancy(t, e.behaviour)),
    "calm_lowers_desperate_raises": lambda t, e, _: Verdict(*calm_lowers_desperate_raises(t, e.behaviour)),
}
