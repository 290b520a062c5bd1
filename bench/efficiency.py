"""How far a scan is from its limit: the ideal time of its model-bound stages against the time they took.

ideal = tokens read / raw forward throughput (model body, no hooks, no LM head, the reading batches)
      + tokens generated / raw generation throughput (transformers' generate, KV cache, no hooks, no
        early stop, the generation batches)
      + tokens scored / forward throughput with the LM head (the same reading batches)

The token counts are the ones the scan records (results.json stages.*.tokens). Throughputs are measured
on the scan's own prompts and batch shapes, on the first batches only (the scan runs many alike).
Calibration and the logit lens read a few hundred prompt tokens; they count in the stages' actual time
and not in the ideal, so the figure errs low.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import torch

from emoaudit.capture.reading import READ_BATCH_TOKENS
from emoaudit.capture.stimuli import generation_prompts
from emoaudit.model.generation import GENERATION_BATCH_TOKENS
from emoaudit.model.loaded import LoadedModel
from emoaudit.model.runtime import chat_prompt_ids, even_batches, length_batches, pad_batch, pad_id
from emoaudit.spec import AuditSpec, Profile

# Stage (results.json timings) -> the kind of work that bounds it.
MODEL_STAGES = {
    "comprehension_activations": "read",
    "heldout_activations": "read",
    "generation_activations": "generated",
    "steering_generation": "generated+scored",
}


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def head_forward_tokens_per_s(lm: LoadedModel, sequences: Sequence[Sequence[int]]) -> float:
    """The whole model, LM head over every position, over the reading batches: tokens per second."""
    batches = length_batches([len(s) for s in sequences], READ_BATCH_TOKENS)
    tokens, start = 0, time.perf_counter()
    for batch in batches:
        ids, mask = pad_batch([sequences[i] for i in batch], pad_id(lm), "right")
        with torch.inference_mode():
            lm.model(input_ids=ids.to(lm.device), attention_mask=mask.to(lm.device))  # type: ignore[operator]
        tokens += int(mask.sum())
    _sync()
    return tokens / (time.perf_counter() - start)


def raw_generation_tokens_per_s(
    lm: LoadedModel, prompts: Sequence[Sequence[int]], max_new_tokens: int, n_batches: int
) -> float:
    """Greedy `generate` with no hooks, every row writing `max_new_tokens`, on the first `n_batches` of the
    batches emoaudit's generation forms: new tokens per second."""
    lengths = [len(p) + max_new_tokens for p in prompts]
    tokens, seconds = 0, 0.0
    for batch in even_batches(lengths, GENERATION_BATCH_TOKENS)[:n_batches]:
        ids, mask = pad_batch([prompts[i] for i in batch], pad_id(lm), "left")
        start = time.perf_counter()
        with torch.inference_mode():
            lm.model.generate(  # type: ignore[operator]
                input_ids=ids.to(lm.device),
                attention_mask=mask.to(lm.device),
                max_new_tokens=max_new_tokens,
                min_new_tokens=max_new_tokens,
                do_sample=False,
                temperature=None,
                top_p=None,
                top_k=None,
                pad_token_id=pad_id(lm),
            )
        _sync()
        seconds += time.perf_counter() - start
        tokens += len(batch) * max_new_tokens
    return tokens / seconds


def throughputs(lm: LoadedModel, spec: AuditSpec, profile: Profile, read: Sequence[Sequence[int]]) -> dict[str, float]:
    """Raw generation throughput on the profile's story prompts and on its steering prompts, and the
    forward throughput with the LM head on the read texts."""
    stories = [chat_prompt_ids(lm, p) for p in generation_prompts(spec, profile)[1]]
    kinds = dict.fromkeys(sc.kind for sc in spec.scenarios)  # the steering stage's choice of scenarios
    scenarios = [
        chat_prompt_ids(lm, sc.prompt)
        for kind in kinds
        for sc in [s for s in spec.scenarios if s.kind == kind][: profile.steering_scenarios_per_kind]
    ]
    emotions = min(profile.steering_emotions, len(spec.emotion_names))
    rows = scenarios * (1 + emotions * len(spec.steering.multipliers))
    return {
        "raw_generation_tokens_per_s_stories": raw_generation_tokens_per_s(lm, stories, profile.max_new_tokens + 1, 2),
        "raw_generation_tokens_per_s_steering": raw_generation_tokens_per_s(lm, rows, profile.steering_tokens, 2),
        "head_forward_tokens_per_s": head_forward_tokens_per_s(lm, read),
    }


def efficiency(results: dict[str, Any], speeds: dict[str, float], raw_forward_tokens_per_s: float) -> dict[str, Any]:
    """Per model-bound stage: tokens, ideal seconds, actual seconds; and ideal / actual over them all."""
    extraction, steering = results["stages"]["extraction"]["tokens"], results["stages"]["steering"]["tokens"]
    timings = results["timings"]
    generated = steering["generated"]
    ideal = {
        "comprehension_activations": extraction["comprehension_read"] / raw_forward_tokens_per_s,
        "heldout_activations": extraction["heldout_read"] / raw_forward_tokens_per_s,
        "generation_activations": extraction["generation_written"] / speeds["raw_generation_tokens_per_s_stories"],
        "steering_generation": generated / speeds["raw_generation_tokens_per_s_steering"]
        + generated / speeds["head_forward_tokens_per_s"],
    }
    tokens = {
        "comprehension_activations": extraction["comprehension_read"],
        "heldout_activations": extraction["heldout_read"],
        "generation_activations": extraction["generation_written"],
        "steering_generation": generated,
    }
    stages = {
        stage: {
            "bound_by": MODEL_STAGES[stage],
            "tokens": tokens[stage],
            "ideal_seconds": ideal[stage],
            "actual_seconds": timings[stage],
            "efficiency": ideal[stage] / timings[stage],
        }
        for stage in MODEL_STAGES
        if stage in timings  # a resumed scan times only what it ran
    }
    total_ideal = sum(s["ideal_seconds"] for s in stages.values())
    total_actual = sum(s["actual_seconds"] for s in stages.values())
    return {
        "stages": stages,
        "ideal_seconds": total_ideal,
        "actual_seconds": total_actual,
        "efficiency": total_ideal / total_actual,
    }


def breakdown(name: str, found: dict[str, Any]) -> str:
    """The per-stage table `bench/run.py` prints."""
    lines = [f"{name}: ideal {found['ideal_seconds']:.1f} s / actual {found['actual_seconds']:.1f} s"]
    for stage, s in found["stages"].items():
        lines.append(
            f"  {stage:<26} {s['bound_by']:<17} {s['tokens']:>7} tokens  ideal {s['ideal_seconds']:7.1f} s  "
            f"actual {s['actual_seconds']:7.1f} s  {s['efficiency']:.2f}"
        )
    return "\n".join(lines)
