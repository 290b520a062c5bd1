"""Steering trials: greedy continuations of the scenario prompts, unsteered, steered (strength × mean‖h‖ × v̂
added to the residual stream at one layer, at every position or only after the prompt) toward an emotion,
or steered the same way along a random direction (the control); then judged, measured and classified.

Strengths are in units of the layer's mean per-token residual norm, so one grid means the same
thing for every model; the grid itself is calibrated per model (see `calibration`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch

from emoaudit.model.generation import BatchContext, generate
from emoaudit.model.hooks import add_to_blocks
from emoaudit.model.loaded import LoadedModel
from emoaudit.model.runtime import chat_prompt_ids, generated_text, token_ids
from emoaudit.steering.fluency import fluency
from emoaudit.steering.perplexity import continuation_nll
from emoaudit.results.steering import Thresholds
from emoaudit.steering.regimes import classify, perplexity_ratio, shape
from emoaudit.steering.specificity import ControlThresholds, control_thresholds, on_target, rank, rises
from emoaudit.vectors import unit_deltas

T = TypeVar("T")
POSITIONS = ("all", "generated")  # where the delta is added: every position, or only after the prompt


@dataclass(frozen=True)
class Row:
    """One continuation to generate: the prompt's index, what steers it (delta None: unsteered), and how
    the trial is labelled (`control` "random" for a random-direction control, whose emotion is None)."""

    prompt: int
    emotion: str | None
    strength: float
    multiplier: float | None
    delta: torch.Tensor | None
    control: str | None = None


@dataclass
class Trial:
    """One continuation: unsteered (emotion None, strength 0, control None), steered toward `emotion`, or a
    random-direction control (emotion None, control "random")."""

    scenario: str
    kind: str
    prompt: str
    emotion: str | None
    strength: float  # in units of the layer's mean residual norm; negative steers away
    multiplier: float | None  # of the calibrated unit strength
    text: str
    tokens: int
    nll: float | None  # mean per-token NLL of the text after the prompt, under the unsteered model
    perplexity_ratio: float | None = None
    distinct2: float = 1.0
    repeat_share: float = 0.0
    echo_share: float = 0.0  # `steering.fluency`
    word_repeats: int = 0
    judge: dict[str, float] | None = None
    judge_gain: float | None = None  # the target's judge score minus the unsteered text's
    regime: str | None = None
    control: str | None = None  # "random" for a random-direction control
    target_rank: int | None = None  # 0-based rank of the target's judge gain among all the emotions' gains

    @property
    def unsteered(self) -> bool:
        return self.emotion is None and self.control is None


def generate_trials(
    lm: LoadedModel,
    prompts: Sequence[tuple[str, str, str]],
    rows: Sequence[Row],
    layer: int,
    max_new_tokens: int,
    seed: int,
    on_progress: Callable[[float], None] | None = None,
    positions: str = "all",
) -> list[Trial]:
    """Greedy continuations for each row, steered at `layer` where the row has a delta.

    Each row's delta applies to that row alone, so steered, control and unsteered rows of many emotions
    and strengths share batches. `positions` "generated" adds the delta only at the positions after the
    (left-padded) prompt: the prompt is read unsteered, once for all the rows that ask it (their KV cache
    shared), and the continuation written steered (the first new token is still predicted from the
    unsteered prompt).
    """
    prompt_ids = [chat_prompt_ids(lm, prompt) for _, _, prompt in prompts]
    hidden = lm.identity.hidden_size
    deltas = torch.stack([r.delta if r.delta is not None else torch.zeros(hidden) for r in rows])
    row_ids = [prompt_ids[r.prompt] for r in rows]
    steer = steering_context(lm, layer, deltas, [len(ids) for ids in row_ids], positions)
    new_ids = generate(
        lm, row_ids, max_new_tokens, seed, temperature=0.0, top_p=1.0, on_progress=on_progress, batch_context=steer,
        shared_prompts=positions == "generated",
    )  # fmt: skip
    texts = [generated_text(lm, ids) for ids in new_ids]
    # The NLL is of the text as stored, re-tokenised, so anyone can recompute it from samples.jsonl.
    text_ids = [token_ids(lm, t) for t in texts]
    nlls = continuation_nll(lm, row_ids, text_ids)
    trials = []
    for row, text, ids, nll in zip(rows, texts, text_ids, nlls, strict=True):
        scenario_id, kind, prompt = prompts[row.prompt]
        trial = Trial(scenario_id, kind, prompt, row.emotion, row.strength, row.multiplier, text, len(ids), nll)
        trial.control = row.control
        trials.append(trial)
    return trials


def steering_context(
    lm: LoadedModel, layer: int, deltas: torch.Tensor, prompt_lengths: Sequence[int], positions: str
) -> BatchContext:
    """What `generate` enters around a batch: each row's delta [rows, hidden] added at `layer`, from the
    batch's (left-padded) prompt length on when `positions` is "generated", at every position otherwise."""

    def steer(batch: list[int]) -> AbstractContextManager[None]:
        start = max(prompt_lengths[i] for i in batch) if positions == "generated" else 0
        return add_to_blocks(lm.stream, [layer], deltas[batch], start=start)

    return steer


def score_trials(
    trials: Sequence[Trial],
    judge_scores: np.ndarray,
    labels: list[str],
    emotions: Sequence[str],
    thresholds: Thresholds,
    tokenize: Callable[[str], list[int]],
) -> ControlThresholds:
    """Fill each trial's judge scores, shape, perplexity ratio against its scenario's unsteered text, gain,
    the target's rank among the emotions' gains, and regime (`specificity` says when a trial is on target).

    `trials` holds each scenario's unsteered trial; `emotions` are the judge's labels that gains are
    ranked among. Returns the random-direction controls' percentile gains the regimes were judged against.
    """
    for trial, scores in zip(trials, judge_scores, strict=True):
        trial.judge = {label: round(float(s), 5) for label, s in zip(labels, scores, strict=True)}
    baselines = {t.scenario: t for t in trials if t.unsteered}
    gains: dict[int, dict[str, float]] = {}
    for i, trial in enumerate(trials):
        if not trial.unsteered:
            base = baselines[trial.scenario]
            assert trial.judge is not None and base.judge is not None
            gains[i] = rises(trial.judge, base.judge, emotions)
            trial.perplexity_ratio = perplexity_ratio(trial.nll, base.nll)
    controls = [(t.multiplier or 0.0, gains[i]) for i, t in enumerate(trials) if t.control is not None]
    null = control_thresholds(controls, emotions, thresholds.control_percentile) if controls else {}
    for i, trial in enumerate(trials):
        text_shape, loops = shape(tokenize(trial.text)), fluency(trial.text)
        trial.distinct2, trial.repeat_share = text_shape.distinct2, text_shape.repeat_share
        trial.echo_share, trial.word_repeats = round(loops.echo_share, 4), loops.word_repeats
        if trial.unsteered:
            continue
        target = False
        if trial.emotion is not None:
            trial.judge_gain = gains[i][trial.emotion]
            trial.target_rank = rank(gains[i], trial.emotion)
            floor = null.get(trial.emotion, {}).get(str(trial.multiplier), float("-inf"))
            target = on_target(gains[i], trial.emotion, floor, thresholds)
        trial.regime = classify(text_shape, trial.perplexity_ratio, target, thresholds, loops)
    return null


def plan_rows(
    n_prompts: int,
    directions: dict[str, torch.Tensor],
    controls: torch.Tensor,
    multipliers: list[float],
    unit_strength: float,
    mean_norm: float,
) -> list[Row]:
    """Every continuation the steering stage generates, in order: each prompt unsteered; each emotion's
    direction [hidden] at each multiplier of the calibrated `unit_strength` on each prompt; then the random
    control directions [n, hidden], scaled like the vectors, at each multiplier on each prompt (in the same
    batches as the emotions). Deltas are in units of the layer's `mean_norm` (`vectors.unit_deltas`)."""
    rows = [Row(i, None, 0.0, None, None) for i in range(n_prompts)]
    for emotion, direction in directions.items():
        for multiplier in multipliers:
            strength = unit_strength * multiplier
            delta = unit_deltas(direction[None], [strength], mean_norm)[0]
            rows += [Row(i, emotion, strength, multiplier, delta) for i in range(n_prompts)]
    for multiplier in multipliers:
        strength = unit_strength * multiplier
        deltas = unit_deltas(controls, [strength] * len(controls), mean_norm)
        rows += [Row(i, None, strength, multiplier, d, "random") for d in deltas for i in range(n_prompts)]
    return rows


def spread(items: Sequence[T], n: int) -> list[T]:
    """`n` items spread evenly over the list (all of them when n covers it): the emotions steered."""
    if n >= len(items):
        return list(items)
    return [items[round(i * len(items) / n)] for i in range(n)]
