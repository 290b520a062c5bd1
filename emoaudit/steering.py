"""Steering: add strength × mean‖h‖ × v̂ to the residual stream at chosen layers, at every position.

Strengths are in units of the layer's mean per-token residual norm, so one grid means the same
thing for every model; the grid itself is calibrated per model (see `calibrate`).
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch

from emoaudit.activations import pad_batch, run_body
from emoaudit.generation import chat_prompt_ids, generate
from emoaudit.layers import block_output
from emoaudit.loading import LoadedModel
from emoaudit.memory import release_free_memory
from emoaudit.regimes import REGIMES, Thresholds, classify, perplexity_ratio, shape


@contextmanager
def steering(lm: LoadedModel, layers: Sequence[int], deltas: torch.Tensor) -> Iterator[None]:
    """Add `deltas` to the output of each block in `layers` while the block is active.

    `deltas` is [hidden] (every row of a batch) or [batch, hidden] (one per row). The hooks are
    removed on exit, whatever happens inside, leaving the model exactly as it was.
    """
    param = next(lm.model.parameters())
    delta = deltas.to(device=param.device, dtype=param.dtype)
    delta = delta[:, None, :] if delta.dim() == 2 else delta

    def hook(_module: torch.nn.Module, _inputs: object, output: object) -> object:
        if isinstance(output, torch.Tensor):
            return output + delta
        hidden = block_output(output)  # type: ignore[arg-type]
        return (hidden + delta, *output[1:])  # type: ignore[index]

    handles = [lm.stream.blocks[layer].register_forward_hook(hook) for layer in layers]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def steering_deltas(directions: torch.Tensor, strengths: Sequence[float], mean_norm: float) -> torch.Tensor:
    """[n, hidden] deltas: each direction made a unit vector, scaled by its strength × the mean norm."""
    unit = directions / directions.norm(dim=-1, keepdim=True)
    return unit * torch.tensor(list(strengths), dtype=unit.dtype)[:, None] * mean_norm


def continuation_nll(
    lm: LoadedModel, prompts: Sequence[Sequence[int]], continuations: Sequence[Sequence[int]], max_batch: int = 32
) -> list[float | None]:
    """Mean negative log-likelihood per continuation token under the (unsteered) model; None when empty.

    A sweep writes many continuations of few prompts: each distinct prompt runs once and its KV cache
    is shared by its continuations, which then run alone. The unembedding runs only at the positions
    that predict continuation tokens, never over the whole vocabulary at every prompt position.
    """
    out: list[float | None] = [None] * len(prompts)
    by_prompt: dict[tuple[int, ...], list[int]] = {}
    for i, continuation in enumerate(continuations):
        if continuation:
            by_prompt.setdefault(tuple(prompts[i]), []).append(i)
    pad_id = int(lm.tokenizer.pad_token_id)
    device = lm.device
    # transformers 5.24 renamed the forward's and the output's `past_key_values` to `cache`
    cache_keyword = "cache" if "cache" in inspect.signature(lm.stream.body.forward).parameters else "past_key_values"
    for prompt, members in by_prompt.items():
        with torch.inference_mode():
            prefix = lm.stream.body(input_ids=torch.tensor([prompt], device=device), use_cache=True)
            shared = getattr(prefix, cache_keyword)
            first = torch.log_softmax(_final_logits(lm, prefix.last_hidden_state[0, -1:]), dim=-1)  # token 0
        for start in range(0, len(members), max_batch):
            batch = members[start : start + max_batch]
            ids, mask = pad_batch([continuations[i] for i in batch], pad_id, "right")
            ids, mask = ids.to(device), mask.to(device)
            cache = copy.deepcopy(shared)
            cache.batch_repeat_interleave(len(batch))
            width = ids.shape[1]
            with torch.inference_mode():
                hidden = lm.stream.body(
                    input_ids=ids,
                    attention_mask=torch.cat([torch.ones_like(ids[:, :1]).expand(-1, len(prompt)), mask], dim=1),
                    position_ids=(len(prompt) + torch.arange(width, device=device)).expand(len(batch), -1),
                    use_cache=True,
                    **{cache_keyword: cache},
                ).last_hidden_state
                # token j > 0 is predicted at position j - 1 of the continuation
                rows, cols = torch.nonzero(mask[:, 1:], as_tuple=True)
                rest = _target_logprobs(lm, hidden[rows, cols], ids[rows, cols + 1])
                firsts = first[0, ids[:, 0]]
            totals = firsts.cpu().double()  # a copy: float32 in
            totals.index_add_(0, rows.cpu(), rest.cpu().double())
            lengths = mask.sum(dim=1).cpu()
            for r, i in enumerate(batch):
                out[i] = float(-totals[r] / lengths[r])
            release_free_memory()
    return out


def _target_logprobs(lm: LoadedModel, normed: torch.Tensor, targets: torch.Tensor, chunk: int = 64) -> torch.Tensor:
    """log p(target) at each position, a chunk of positions at a time: vocabulary-wide logits stay small.

    Results go into one tensor made up front: appended per chunk, small tensors landed in the holes the
    logits left, and peak RSS rose by 170 MB over a standard sweep's scoring (SmolLM2, CPU).
    """
    out = torch.empty(len(targets), device=normed.device)
    for start in range(0, len(targets), chunk):
        logits = _final_logits(lm, normed[start : start + chunk])
        picked = logits.gather(-1, targets[start : start + chunk, None])[:, 0]
        out[start : start + chunk] = picked - torch.logsumexp(logits, dim=-1)
    return out


def _final_logits(lm: LoadedModel, normed: torch.Tensor) -> torch.Tensor:
    """Logits from final-normed hidden states, with the model's logit soft-capping where it has one (Gemma 2/3)."""
    logits = lm.stream.unembed(normed).float()
    cap = getattr(lm.model.config, "final_logit_softcapping", None)
    return torch.tanh(logits / cap) * cap if cap else logits


def next_token_kl(
    lm: LoadedModel,
    prompts: Sequence[Sequence[int]],
    layer: int,
    deltas: torch.Tensor,
    base: torch.Tensor | None = None,
) -> np.ndarray:
    """KL(unsteered ‖ steered) of the next-token distribution after each prompt, one delta per prompt.

    `base`, the unsteered log-probabilities, may be passed in when several strengths share it.
    """
    base = _next_token_logprobs(lm, prompts) if base is None else base
    with steering(lm, [layer], deltas):
        steered = _next_token_logprobs(lm, prompts)
    return (base.exp() * (base - steered)).sum(dim=-1).cpu().numpy()


def _next_token_logprobs(lm: LoadedModel, prompts: Sequence[Sequence[int]]) -> torch.Tensor:
    ids, mask = pad_batch(prompts, int(lm.tokenizer.pad_token_id), "left")
    hidden = run_body(lm, ids, mask)
    with torch.inference_mode():
        return torch.log_softmax(_final_logits(lm, hidden[:, -1]), dim=-1)


@dataclass(frozen=True)
class Calibration:
    """The strength at which steering starts to move the next-token distribution by `target_kl` nats."""

    unit_strength: float
    target_kl: float
    probed: list[tuple[float, float]]  # (strength, mean KL) pairs measured


def calibrate(
    lm: LoadedModel,
    prompts: Sequence[Sequence[int]],
    layer: int,
    directions: torch.Tensor,
    mean_norm: float,
    target_kl: float,
    probe_strengths: Sequence[float],
) -> Calibration:
    """Interpolate, on a log scale, the strength whose mean next-token KL reaches `target_kl`."""
    probed = []
    n = len(prompts) * len(directions)
    rows = [p for p in prompts for _ in directions]
    dirs = directions.repeat(len(prompts), 1)
    base = _next_token_logprobs(lm, rows)
    for strength in probe_strengths:
        kl = next_token_kl(lm, rows, layer, steering_deltas(dirs, [strength] * n, mean_norm), base)
        probed.append((float(strength), float(kl.mean())))
    strengths = np.log([s for s, _ in probed])
    kls = np.maximum.accumulate(np.array([k for _, k in probed]))  # KL grows with strength; ignore wiggles
    if kls[-1] < target_kl:
        unit = float(np.exp(strengths[-1]))
    elif kls[0] >= target_kl:
        unit = float(np.exp(strengths[0]))
    else:
        unit = float(np.exp(np.interp(target_kl, kls, strengths)))
    return Calibration(unit, target_kl, probed)


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
        batch_context=lambda batch: steering(lm, [layer], deltas[batch]),
    )
    texts = [lm.tokenizer.decode(ids, skip_special_tokens=True) for ids in new_ids]
    # The NLL is of the text as stored, re-tokenised, so anyone can recompute it from samples.jsonl.
    text_ids = [list(lm.tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts]
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


def summarise(
    trials: Sequence[Trial], emotions: Sequence[str], multipliers: Sequence[float], examples_per_regime: int = 3
) -> dict[str, object]:
    """Success rates, the emotion × strength regime map, the largest surgical strength, and examples."""
    steered = [t for t in trials if t.emotion is not None]

    def rate(selection: list[Trial]) -> float | None:
        return sum(t.regime == "surgical" for t in selection) / len(selection) if selection else None

    regime_map: dict[str, dict[str, dict[str, int]]] = {}
    largest: dict[str, float | None] = {}
    for emotion in emotions:
        regime_map[emotion] = {}
        largest[emotion] = None
        for multiplier in multipliers:
            cell = [t for t in steered if t.emotion == emotion and t.multiplier == multiplier]
            counts = {r: sum(t.regime == r for t in cell) for r in REGIMES}
            regime_map[emotion][str(multiplier)] = counts
            if cell and counts["surgical"] * 2 >= len(cell):
                largest[emotion] = max(largest[emotion] or 0.0, cell[0].strength)
    gained = [t for t in steered if t.judge_gain is not None]
    return {
        "trials": len(steered),
        "success_rate": rate(steered),
        "success_definition": "surgical: coherent, and the judge's score for the target rose by the margin",
        "judge_moved_rate": sum((t.judge_gain or 0) > 0 for t in gained) / len(gained) if gained else None,
        "success_by_emotion": {e: rate([t for t in steered if t.emotion == e]) for e in emotions},
        "success_by_multiplier": {str(m): rate([t for t in steered if t.multiplier == m]) for m in multipliers},
        "regime_totals": {r: sum(t.regime == r for t in steered) for r in REGIMES},
        "regime_map": regime_map,
        "largest_surgical_strength": largest,
        "examples": {r: [_example(t) for t in steered if t.regime == r][:examples_per_regime] for r in REGIMES},
    }


def _example(trial: Trial) -> dict[str, object]:
    return {
        "scenario": trial.scenario,
        "prompt": trial.prompt,
        "emotion": trial.emotion,
        "strength": trial.strength,
        "text": trial.text,
        "perplexity_ratio": trial.perplexity_ratio,
        "judge_gain": trial.judge_gain,
    }
