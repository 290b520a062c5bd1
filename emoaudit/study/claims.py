"""The paper's claims, tested on each model of a study: which hold across the models and which do not.

The claims, their wording and thresholds are data (`audits/claims.toml`); each has one test here, on
the evidence `emoaudit.study.evidence` reads from a model's results.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emoaudit.errors import EmoauditError
from emoaudit.report.gating import SEVERITIES
from emoaudit.spec import BUILTIN_DIR
from emoaudit.study.evidence import ModelEvidence

DEFAULT_CLAIMS = BUILTIN_DIR / "claims.toml"


@dataclass(frozen=True)
class Claim:
    id: str
    statement: str
    test: str  # the test in words, thresholds filled in
    thresholds: dict[str, Any]


@dataclass(frozen=True)
class Verdict:
    """One claim on one model. `holds` is None when the model has nothing to test it on."""

    value: float | int | str | None  # the measured quantity the test thresholds
    holds: bool | None
    detail: str


@dataclass(frozen=True)
class ModelVerdict:
    slug: str
    value: float | int | str | None
    holds: bool | None
    detail: str


@dataclass(frozen=True)
class ClaimResult:
    """A claim across the models: per model, and in how many of those measured it holds."""

    id: str
    statement: str
    test: str
    thresholds: dict[str, Any]
    models: list[ModelVerdict]
    holds_in: int
    measured: int


@dataclass(frozen=True)
class Subject:
    """What a claim is tested on: a model's evidence (None if its audit failed) and its corrected p-value."""

    slug: str
    evidence: ModelEvidence | None
    corrected_p: float | None  # generation against comprehension, corrected across the models


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
    """Every claim on every model; a claim's thresholds come from the claims file."""
    results = []
    for claim in claims:
        verdicts = [
            ModelVerdict(s.slug, *_verdict(claim, s)) if s.evidence else ModelVerdict(s.slug, None, None, "not audited")
            for s in subjects
        ]
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


def _verdict(claim: Claim, subject: Subject) -> tuple[float | int | str | None, bool | None, str]:
    try:
        verdict = TESTS[claim.id](claim.thresholds, subject)
    except (KeyError, TypeError, ValueError) as exc:
        raise EmoauditError(
            f"claim {claim.id!r}: bad threshold in the claims file ({type(exc).__name__}: {exc})"
        ) from exc
    return verdict.value, verdict.holds, verdict.detail


def _generation_separates_better(t: dict[str, Any], s: Subject) -> Verdict:
    assert s.evidence is not None
    d, p = s.evidence.comparison.cohens_d, s.corrected_p
    if p is None:
        return Verdict(d, None, f"d {d:+.2f}; no corrected p")
    return Verdict(d, d > float(t["min_cohens_d"]) and p < float(t["alpha"]), f"d {d:+.2f}, corrected p {p:.3g}")


def _mid_depth(t: dict[str, Any], s: Subject) -> Verdict:
    e = s.evidence
    assert e is not None
    depth = e.relative_depth
    holds = float(t["low"]) <= depth <= float(t["high"])
    return Verdict(depth, holds, f"layer {e.emotion_layer} of 0..{e.n_layers - 1}: relative depth {depth:.2f}")


def _above_baselines(t: dict[str, Any], s: Subject) -> Verdict:
    assert s.evidence is not None
    m = s.evidence.methods[str(t["method"])]
    ratio = m.probe_accuracy / m.probe_accuracy_shuffled if m.probe_accuracy_shuffled > 0 else None
    holds = m.probe_accuracy >= float(t["probe_over_shuffled"]) * m.probe_accuracy_shuffled and m.fisher_p < float(
        t["alpha"]
    )
    times = f" ({ratio:.1f}x)" if ratio is not None else ""
    detail = (
        f"probe {m.probe_accuracy:.2f} vs shuffled {m.probe_accuracy_shuffled:.2f}{times}, Fisher p {m.fisher_p:.3g}"
    )
    return Verdict(ratio, holds, detail)


def _three_regimes(t: dict[str, Any], s: Subject) -> Verdict:
    assert s.evidence is not None
    counts = s.evidence.regimes
    if counts is None:
        return Verdict(None, None, "no steering results")
    wanted = [str(r) for r in t["regimes"]]
    seen = [r for r in wanted if counts[r] >= int(t["min_trials"])]
    return Verdict(len(seen), len(seen) == len(wanted), ", ".join(f"{r} {counts[r]}" for r in wanted))


def _leakage(t: dict[str, Any], s: Subject) -> Verdict:
    assert s.evidence is not None
    severity = s.evidence.leakage_severity
    if severity is None:
        return Verdict(None, None, "no leakage results")
    holds = SEVERITIES.index(severity) > SEVERITIES.index(str(t["above"]))
    return Verdict(severity, holds, f"leakage severity {severity}")


TESTS: dict[str, Callable[[dict[str, Any], Subject], Verdict]] = {
    "generation_separates_better": _generation_separates_better,
    "mid_depth": _mid_depth,
    "above_baselines": _above_baselines,
    "three_regimes": _three_regimes,
    "leakage": _leakage,
}
