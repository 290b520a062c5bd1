"""Comparing two audits of a model (two releases, two checkpoints): what changed, and what regressed."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from emoaudit.results.common import SEVERITIES
from emoaudit.results.document import Results
from emoaudit.results.extraction import Extraction
from emoaudit.results.steering import RateEstimate, SteeringSummary
from emoaudit.steering.statistics import fisher_greater

DEGRADED = ("repetitive_collapse", "explosive")


@dataclass(frozen=True)
class Change:
    what: str
    before: Any
    after: Any
    regression: bool


@dataclass(frozen=True)
class Comparison:
    """Two audits side by side.

    `differences` names each audit condition that is not the same in both: the specification (sha256),
    the profile, the seed, the model (sha256), the stages run (a stage missing from either is not
    compared). Unequal conditions are a warning, never a refusal: a
    release comparison has a different model by definition, and a quick CI audit is routinely held
    against a standard release audit. What keeps those comparable is that every steering number
    compared is a rate (a share of that audit's trials), never a count; what the warning says is that
    the two rates were measured on different stimuli, trials or seeds, so that a small move may be
    noise rather than the model.
    """

    differences: list[str]
    changes: list[Change]

    @property
    def like_for_like(self) -> bool:
        return not self.differences

    @property
    def regressions(self) -> int:
        return sum(c.regression for c in self.changes)

    def to_dict(self) -> dict[str, Any]:
        """What `compare --out` writes."""
        return {
            "like_for_like": self.like_for_like,
            "differences": self.differences,
            "changes": [asdict(c) for c in self.changes],
            "regressions": self.regressions,
        }


def compare(before: Results, after: Results, alpha: float) -> Comparison:
    """Headline numbers and findings of two audits, side by side; a regression is a rate of degraded
    trials that rose, a surgical rate that rose significantly (one-sided Fisher p < `alpha`, the policy's
    steerable alpha), a leakage severity or a finding that got worse."""
    changes: list[Change] = []
    b, a = before.stages, after.stages
    if b.extraction is not None and a.extraction is not None:
        changes += _extraction_changes(b.extraction, a.extraction)
    if b.steering is not None and a.steering is not None:
        changes += _steering_changes(b.steering.summary, a.steering.summary, alpha)
    if b.leakage is not None and a.leakage is not None:
        lb, la = b.leakage.severity, a.leakage.severity
        changes.append(Change("leakage severity", lb, la, SEVERITIES.index(la) > SEVERITIES.index(lb)))
    findings_before = {f.id: f for f in before.findings or []}
    rank = ["pass", *SEVERITIES]
    for finding in after.findings or []:
        old = findings_before.get(finding.id)
        old_severity = old.severity if old and old.failed else "pass"
        new_severity = finding.severity if finding.failed else "pass"
        if old_severity != new_severity:
            worse = rank.index(new_severity) > rank.index(old_severity)
            changes.append(Change(f"finding {finding.id}", old_severity, new_severity, worse))
    return Comparison(differences(before, after), changes)


def differences(before: Results, after: Results) -> list[str]:
    """The audit conditions that differ, each as 'what: before → after'."""
    conditions = (
        ("specification sha256", before.audit.sha256, after.audit.sha256),
        ("profile", before.audit.profile, after.audit.profile),
        ("seed", before.audit.seed, after.audit.seed),
        ("model sha256", before.model.sha256, after.model.sha256),
        # A stage run in one audit only is compared in neither: say so, or a gate passes on what it never saw.
        ("stages", _stages_run(before), _stages_run(after)),
    )
    return [f"{what}: {b} → {a}" for what, b, a in conditions if b != a]


def _stages_run(results: Results) -> str:
    run = [f.name for f in fields(results.stages) if getattr(results.stages, f.name) is not None]
    return ", ".join(run) or "none"


def _extraction_changes(eb: Extraction, ea: Extraction) -> list[Change]:
    changes = [
        Change("emotion layer", eb.layer, ea.layer, False),
        Change(
            "emotion layer relative depth",
            round(eb.emotion_layer.relative_depth, 3),
            round(ea.emotion_layer.relative_depth, 3),
            False,
        ),
    ]
    for method in ("comprehension", "generation"):
        mb, ma = eb.methods[method], ea.methods[method]
        changes += [
            Change(
                f"{method} probe accuracy at emotion layer",
                round(mb.curves.probe_accuracy[eb.layer], 4),
                round(ma.curves.probe_accuracy[ea.layer], 4),
                False,
            ),
            Change(
                f"{method} vector accuracy (CV) at emotion layer",
                round(mb.curves.centroid_accuracy[eb.layer], 4),
                round(ma.curves.centroid_accuracy[ea.layer], 4),
                False,
            ),
            Change(
                f"{method} held-out accuracy at emotion layer",
                round(mb.heldout.accuracy[eb.layer], 4),
                round(ma.heldout.accuracy[ea.layer], 4),
                False,
            ),
        ]
    return changes


def _steering_changes(sb: SteeringSummary, sa: SteeringSummary, alpha: float) -> list[Change]:
    """Rates only: two audits with different numbers of trials compare by the shares of their trials."""
    changes = [
        Change("steering trials", sb.trials, sa.trials, False),
        _calibrated_change(sb.statistics.overall, sa.statistics.overall, alpha),
    ]
    # The surgical share is the calibrated rate above, with its interval and control; not a bare share again.
    for regime in (r for r in sb.regime_totals if r != "surgical"):
        share_b, share_a = sb.regime_share(regime), sa.regime_share(regime)
        worse = regime in DEGRADED and (share_a or 0) > (share_b or 0)
        changes.append(Change(f"share of trials {regime}", _round(share_b), _round(share_a), worse))
    return changes


def _calibrated_change(before: RateEstimate, after: RateEstimate, alpha: float) -> Change:
    """The surgical rate within the calibrated range, with its interval and control rate; a regression
    only when the rise is significant (Fisher's exact test, one-sided, p < alpha): two audits' rates
    differ by sampling noise alone, and a release gate must not fire on that."""
    p = fisher_greater(after.successes, after.trials, before.successes, before.trials)
    return Change(
        "steering success rate (calibrated range, against random-direction controls)",
        _estimate(before),
        {**_estimate(after), "p_rise": None if p is None else float(f"{p:.3g}")},
        p is not None and p < alpha,
    )


def _estimate(r: RateEstimate) -> dict[str, float | int | None]:
    return {
        "rate": _round(r.rate),
        "ci_low": _round(r.ci_low),
        "ci_high": _round(r.ci_high),
        "trials": r.trials,
        "control_rate": _round(r.control_rate),
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
