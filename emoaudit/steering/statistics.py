"""Steering success with its uncertainty, against the random-direction controls.

Rates carry a Wilson score interval (Wilson 1927; the interval Brown, Cai & DasGupta 2001 recommend for
small n), the steered-against-control comparison is Fisher's exact test, one-sided, on the 2 × 2 table of
surgical / not surgical × steered / control, and the per-emotion tests are adjusted for the number of
emotions by Benjamini & Hochberg (1995). scipy computes all three.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
from scipy import stats

from emoaudit.results.steering import RateEstimate, SteeringStatistics
from emoaudit.results.steering import Thresholds
from emoaudit.steering.specificity import ControlThresholds, on_target, rises
from emoaudit.steering.trials import Trial

CONFIDENCE = 0.95
DEGRADED = ("repetitive_collapse", "explosive")


def wilson(successes: int, trials: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The Wilson score interval of successes / trials; ValueError when trials is 0."""
    interval = stats.binomtest(successes, trials).proportion_ci(confidence, method="wilson")
    return float(interval.low), float(interval.high)


def fisher_greater(successes: int, trials: int, control_successes: int, control_trials: int) -> float | None:
    """One-sided p-value of Fisher's exact test that the steered success rate exceeds the control's
    (None when either side has no trials)."""
    if not trials or not control_trials:
        return None
    table = [[successes, trials - successes], [control_successes, control_trials - control_successes]]
    return float(stats.fisher_exact(table, alternative="greater").pvalue)


def benjamini_hochberg(p_values: Sequence[float | None]) -> list[float | None]:
    """BH-adjusted q-values of the p-values given (None stays None and is not counted)."""
    present = [p for p in p_values if p is not None]
    adjusted = iter(stats.false_discovery_control(present, method="bh").tolist() if present else [])
    return [None if p is None else float(next(adjusted)) for p in p_values]


def estimate(successes: int, trials: int, control_successes: int, control_trials: int) -> RateEstimate:
    """A rate with its interval, the control's rate, and the one-sided Fisher p-value (q-value None)."""
    low, high = wilson(successes, trials) if trials else (None, None)
    return RateEstimate(
        trials=trials,
        successes=successes,
        rate=successes / trials if trials else None,
        ci_low=low,
        ci_high=high,
        control_trials=control_trials,
        control_successes=control_successes,
        control_rate=control_successes / control_trials if control_trials else None,
        p_value=fisher_greater(successes, trials, control_successes, control_trials),
        q_value=None,
    )


def control_passes(
    trials: Sequence[Trial], emotions: Sequence[str], judged: Sequence[str], null: ControlThresholds, t: Thresholds
) -> dict[tuple[str, float], tuple[int, int]]:
    """Per (emotion, multiplier): (control trials that would be surgical were `emotion` their target,
    control trials). `judged` are the emotions gains are ranked among."""
    baselines = {x.scenario: x for x in trials if x.unsteered}
    counts: dict[tuple[str, float], tuple[int, int]] = {}
    for trial in (x for x in trials if x.control is not None):
        assert trial.judge is not None and trial.multiplier is not None
        base = baselines[trial.scenario].judge
        assert base is not None
        gain = rises(trial.judge, base, judged)
        coherent = trial.regime not in DEGRADED
        for emotion in emotions:
            threshold = null[emotion][str(trial.multiplier)]
            passed, n = counts.get((emotion, trial.multiplier), (0, 0))
            hit = coherent and on_target(gain, emotion, threshold, t)
            counts[(emotion, trial.multiplier)] = (passed + hit, n + 1)
    return counts


def steering_statistics(
    trials: Sequence[Trial],
    emotions: Sequence[str],
    multipliers: Sequence[float],
    judged: Sequence[str],
    null: ControlThresholds,
    t: Thresholds,
) -> SteeringStatistics:
    """Per emotion × multiplier, per emotion and overall within the calibrated range (see the module)."""
    controls = control_passes(trials, emotions, judged, null, t)
    tally: dict[tuple[str, float], tuple[int, int]] = {}
    for trial in trials:
        if trial.emotion is not None and trial.multiplier is not None:
            hits, n = tally.get((trial.emotion, trial.multiplier), (0, 0))
            tally[(trial.emotion, trial.multiplier)] = (hits + (trial.regime == "surgical"), n + 1)

    def pooled(keys: list[tuple[str, float]]) -> RateEstimate:
        s, n = np.sum([tally.get(k, (0, 0)) for k in keys], axis=0, dtype=int) if keys else (0, 0)
        cs, cn = np.sum([controls.get(k, (0, 0)) for k in keys], axis=0, dtype=int) if keys else (0, 0)
        return estimate(int(s), int(n), int(cs), int(cn))

    in_range = [m for m in multipliers if m <= t.calibrated_range]
    per_emotion = {e: pooled([(e, m) for m in in_range]) for e in emotions}
    q_values = benjamini_hochberg([r.p_value for r in per_emotion.values()])
    return SteeringStatistics(
        calibrated_range=t.calibrated_range,
        confidence=CONFIDENCE,
        cells={e: {str(m): pooled([(e, m)]) for m in multipliers} for e in emotions},
        by_emotion={e: replace(r, q_value=q) for (e, r), q in zip(per_emotion.items(), q_values, strict=True)},
        overall=pooled([(e, m) for e in emotions for m in in_range]),
    )
