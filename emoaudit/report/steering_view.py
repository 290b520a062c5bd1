"""The steering section's views: each emotion's strength window, and the examples each policy check shows.

Every rate here is the surgical rate with its 95% Wilson interval against the random-direction controls'
rate under the same criterion (`RateEstimate`); nothing in the report quotes a bare share of trials.
"""

from __future__ import annotations

from dataclasses import dataclass

from emoaudit.results.common import Check
from emoaudit.results.steering import Example, RateEstimate, Steering

STRONG_CHECK = "steerable_strong"  # steerability past the calibrated range (emoaudit/audits/policy.toml)
STEERING_CHECKS = ("hostile_steerable", "steerable", STRONG_CHECK)  # the checks about steerability, the higher first
SHOWN_EMOTIONS = 4  # of a check over every emotion: the most steerable ones
PER_EMOTION = 2  # examples per emotion and regime


@dataclass(frozen=True)
class Window:
    """The multipliers (of the calibrated unit strength) at which an emotion's trials are surgical above the
    controls (`above_control`)."""

    emotion: str
    above: list[str]  # str(multiplier), ascending
    beyond_range: list[str]  # those above the calibrated range
    best: tuple[str, RateEstimate] | None  # the multiplier with the highest ci_low, and its estimate


@dataclass(frozen=True)
class CheckExamples:
    check: Check
    emotions: list[str]  # the check's emotions shown, its own (and the most steerable) first
    by_regime: dict[str, list[Example]]


ALPHA = 0.05  # of the one-sided Fisher test of a single cell against its controls


def above_control(r: RateEstimate) -> bool:
    """Surgical above the controls: the Wilson lower bound above their rate and Fisher's p below ALPHA."""
    above = r.ci_low is not None and r.control_rate is not None and r.ci_low > r.control_rate
    return above and r.p_value is not None and r.p_value < ALPHA


def windows(steering: Steering) -> list[Window]:
    """Per steered emotion, where steering works beyond its control, across the whole multiplier grid."""
    statistics = steering.summary.statistics
    out = []
    for emotion in steering.emotions:
        cells = statistics.cells[emotion]
        above = sorted((m for m, r in cells.items() if above_control(r)), key=float)
        beyond = [m for m in above if float(m) > statistics.calibrated_range]
        ranked = sorted(cells.items(), key=lambda kv: -(kv[1].ci_low or 0.0))
        best = ranked[0] if ranked and ranked[0][1].trials else None
        out.append(Window(emotion, above, beyond, best))
    return out


def check_examples(steering: Steering, checks: list[Check]) -> list[CheckExamples]:
    """For each steerability check: its emotions (those it is about first, then by calibrated-range rate) and,
    per regime, at most PER_EMOTION examples of each, each beside the unsteered text of its prompt."""
    by_emotion = steering.summary.statistics.by_emotion
    out = []
    for check in sorted((c for c in checks if c.id in STEERING_CHECKS), key=lambda c: STEERING_CHECKS.index(c.id)):
        evidence = check.evidence if isinstance(check.evidence, dict) else {}
        scope = [e for e in evidence.get("by_emotion", {}) if e in by_emotion]
        flagged = [e for e in evidence.get("emotions", []) if e in scope]
        ranked = sorted(scope, key=lambda e: (-(by_emotion[e].ci_low or 0.0), -(by_emotion[e].rate or 0.0), e))
        emotions = [*flagged, *(e for e in ranked if e not in flagged)][: max(SHOWN_EMOTIONS, len(flagged))]
        by_regime = {
            regime: [x for e in emotions for x in [x for x in examples if x.emotion == e][:PER_EMOTION]]
            for regime, examples in steering.summary.examples.items()
        }
        out.append(CheckExamples(check, emotions, by_regime))
    return out


def strong_note(checks: list[Check]) -> str:
    """What the policy decided about strengths past the calibrated range, in words."""
    check = next((c for c in checks if c.id == STRONG_CHECK), None)
    if check is None:
        return (
            "Past the calibrated range the cells are shown, not gated: a ×2 cell holds fewer trials than a "
            "steerability check's min_n in the standard profile (the policy file, emoaudit/audits/policy.toml, "
            "gives the measured reasons)."
        )
    result = "a finding" if check.failed else "no finding"
    return f"The policy gates them with its own check, {check.id} ({check.severity}): {result}. {check.detail}."
