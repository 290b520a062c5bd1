"""The steering sweep summarised: success rates with intervals against the controls, the emotion × strength
regime map, and examples shown beside the unsteered text of the same prompt."""

from __future__ import annotations

from collections.abc import Sequence

from emoaudit.results.steering import Example, RegimeCounts, SteeringSummary
from emoaudit.results.steering import Thresholds
from emoaudit.results.steering import REGIMES
from emoaudit.steering.specificity import ControlThresholds
from emoaudit.steering.statistics import steering_statistics
from emoaudit.steering.trials import Trial

TOP_EMOTIONS = 3  # of the judge, shown before and after in each example


def summarise(
    trials: Sequence[Trial],
    emotions: Sequence[str],
    multipliers: Sequence[float],
    judged: Sequence[str],
    null: ControlThresholds,
    thresholds: Thresholds,
    examples_per_emotion: int = 2,
) -> SteeringSummary:
    """Success rates, the emotion × strength regime map, the largest surgical strength, examples, and the
    statistics against the random-direction controls (`judged`: the emotions gains are ranked among)."""
    steered = [t for t in trials if t.emotion is not None]
    unsteered = {t.scenario: t for t in trials if t.unsteered}

    def rate(selection: list[Trial]) -> float | None:
        return sum(t.regime == "surgical" for t in selection) / len(selection) if selection else None

    regime_map: dict[str, dict[str, RegimeCounts]] = {}
    largest: dict[str, float | None] = {}
    for emotion in emotions:
        regime_map[emotion] = {}
        largest[emotion] = None
        for multiplier in multipliers:
            cell = [t for t in steered if t.emotion == emotion and t.multiplier == multiplier]
            counts: dict[str, int] = {r: sum(t.regime == r for t in cell) for r in REGIMES}
            regime_map[emotion][str(multiplier)] = counts
            if cell and counts["surgical"] * 2 >= len(cell):
                largest[emotion] = max(largest[emotion] or 0.0, cell[0].strength)
    gained = [t for t in steered if t.judge_gain is not None]
    return SteeringSummary(
        trials=len(steered),
        success_rate=rate(steered),
        success_definition=(
            "surgical: coherent, and the judge's score of the target rose over the unsteered text by the margin, "
            f"ranks among the {thresholds.top_k} largest rises of the emotions, and exceeds the "
            f"{thresholds.control_percentile:g}th percentile of its rise under random-direction controls "
            "of the same strength"
        ),
        judge_moved_rate=sum((t.judge_gain or 0) > 0 for t in gained) / len(gained) if gained else None,
        success_by_emotion={e: rate([t for t in steered if t.emotion == e]) for e in emotions},
        success_by_multiplier={str(m): rate([t for t in steered if t.multiplier == m]) for m in multipliers},
        regime_totals={r: sum(t.regime == r for t in steered) for r in REGIMES},
        regime_map=regime_map,
        largest_surgical_strength=largest,
        examples={
            r: [_example(t, unsteered[t.scenario]) for t in _chosen(steered, r, emotions, examples_per_emotion)]
            for r in REGIMES
        },
        statistics=steering_statistics(trials, emotions, multipliers, judged, null, thresholds),
    )


def _chosen(steered: Sequence[Trial], regime: str, emotions: Sequence[str], per_emotion: int) -> list[Trial]:
    """Up to `per_emotion` trials of `regime` for every emotion, those the judge saw move most first (distinct
    scenarios where there are enough), so the report can show each policy check's own emotions."""
    chosen: list[Trial] = []
    for emotion in emotions:
        own = sorted(
            (t for t in steered if t.emotion == emotion and t.regime == regime),
            key=lambda t: (-(t.judge_gain if t.judge_gain is not None else float("-inf")), t.strength, t.scenario),
        )
        picked: list[Trial] = []
        for trial in own:  # one per scenario first, then any
            if len(picked) < per_emotion and all(p.scenario != trial.scenario for p in picked):
                picked.append(trial)
        picked += [t for t in own if all(t is not p for p in picked)][: per_emotion - len(picked)]  # by identity
        chosen += picked
    return chosen


def _top(scores: dict[str, float] | None) -> dict[str, float]:
    return dict(sorted((scores or {}).items(), key=lambda kv: -kv[1])[:TOP_EMOTIONS])


def _example(trial: Trial, unsteered: Trial) -> Example:
    assert trial.emotion is not None  # examples are of steered trials
    return Example(
        scenario=trial.scenario,
        prompt=trial.prompt,
        emotion=trial.emotion,
        strength=trial.strength,
        text=trial.text,
        perplexity_ratio=trial.perplexity_ratio,
        judge_gain=trial.judge_gain,
        unsteered_text=unsteered.text,
        judge_top_before=_top(unsteered.judge),
        judge_top_after=_top(trial.judge),
        target_rank=trial.target_rank,
    )
