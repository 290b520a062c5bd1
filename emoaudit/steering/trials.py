"""Steering trials: greedy continuations of the scenario prompts, unsteered and steered (strength ×
mean‖h‖ × v̂ added to the residual stream at one layer, every position), then judged and measured.

Strengths are in units of the layer's mean per-token residual norm, so one grid means the same
thing for every model; the grid itself is calibrated per model (see `calibration`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from emoaudit.model.generation import generate
from emoaudit.model.hooks import add_to_blocks
from emoaudit.model.load import LoadedModel
from emoaudit.model.runtime import chat_prompt_ids, generated_text, token_ids
from emoaudit.steering.perplexity import continuation_nll
from emoaudit.steering.regimes import Thresholds, classify, perplexity_ratio, shape


@dataclass
class Trial:
    """One continuation: unsteered (emotion None, strength 0) or steered toward `emotion`."""

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
    judge: dict[str, float] | None = None
    judge_gain: float | None = None  # the target's judge score minus the unsteered text's
    regime: str | None = None


def generate_trials(
    lm: LoadedModel,
    prompts: Sequence[tuple[str, str, str]],
    rows: Sequence[tuple[int, str | None, float, float | None, torch.Tensor | None]],
    layer: int,
    max_new_tokens: int,
    seed: int,
    on_batch: Callable[[int], None] | None = None,
) -> list[Trial]:
    """Greedy continuations for each row (prompt index, emotion, strength, multiplier, delta or None).

    Rows with a delta are steered at `layer`; each row's delta applies to that row alone, so steered
    and unsteered rows of many emotions and strengths share batches and the KV cache.
    """
    prompt_ids = [chat_prompt_ids(lm, prompt) for _, _, prompt in prompts]
    hidden = lm.identity.hidden_size
    deltas = torch.stack([d if d is not None else torch.zeros(hidden) for *_, d in rows])
    new_ids = generate(
        lm,
        [prompt_ids[r[0]] for r in rows],
        max_new_tokens,
        seed,
        temperature=0.0,
        top_p=1.0,
        on_batch=on_batch,
        batch_context=lambda batch: add_to_blocks(lm.stream, [layer], deltas[batch]),
    )
    texts = [generated_text(lm, ids) for ids in new_ids]
    # The NLL is of the text as stored, re-tokenised, so anyone can recompute it from samples.jsonl.
    text_ids = [token_ids(lm, t) for t in texts]
    nlls = continuation_nll(lm, [prompt_ids[r[0]] for r in rows], text_ids)
    trials = []
    for (index, emotion, strength, multiplier, _), text, ids, nll in zip(rows, texts, text_ids, nlls, strict=True):
        scenario_id, kind, prompt = prompts[index]
        trials.append(Trial(scenario_id, kind, prompt, emotion, strength, multiplier, text, len(ids), nll))
    return trials


def score_trials(
    trials: Sequence[Trial],
    baselines: dict[str, Trial],
    judge_scores: np.ndarray,
    labels: list[str],
    thresholds: Thresholds,
    tokenize: Callable[[str], list[int]],
) -> None:
    """Fill each trial's judge scores, gain over its scenario's unsteered text, shape and regime."""
    for trial, scores in zip(trials, judge_scores, strict=True):
        trial.judge = {label: round(float(s), 5) for label, s in zip(labels, scores, strict=True)}
        text_shape = shape(tokenize(trial.text))
        trial.distinct2, trial.repeat_share = text_shape.distinct2, text_shape.repeat_share
        if trial.emotion is None:
            continue
        base = baselines[trial.scenario]
        assert base.judge is not None
        trial.perplexity_ratio = perplexity_ratio(trial.nll, base.nll)
        trial.judge_gain = trial.judge[trial.emotion] - base.judge[trial.emotion]
        trial.regime = classify(text_shape, trial.perplexity_ratio, trial.judge_gain, thresholds)
