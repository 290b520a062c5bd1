"""Batched generation: left padding, seeded sampling, a per-batch context (for steering or reading)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext

from typing import cast

import torch
from transformers import LogitsProcessor, LogitsProcessorList, StoppingCriteria, StoppingCriteriaList

from emoaudit.errors import EmoauditError
from emoaudit.memory import release_free_memory
from emoaudit.model.loaded import LoadedModel
from emoaudit.model.runtime import eos_ids, length_batches, pad_batch, pad_id

BatchContext = Callable[[list[int]], AbstractContextManager[object]]

# Prompt plus new tokens per batch. On a CPU a decoding step is bound by its matrix products, which
# run faster per row on more rows: SmolLM2's 252 standard stories took 221 s in batches of 6144 tokens
# (~32 rows), 154 s in 12288 (~63 rows), 155-165 s in 16384-32768 and 211 s in one batch of all
# (the KV cache's growth by concatenation then dominates). The KV cache is most of what a batch
# holds (23 kB a token on SmolLM2 in float32: 280 MB at 12288).
GENERATION_BATCH_TOKENS = 12288
# What a written token costs in read tokens, for progress only (the prefill's weight in a batch): an idle
# 2-core CPU wrote 112-135 tokens/s where it read 545 (bench/results/cpu-2core-epyc-*-float32.json), the
# same CPU shared with six other jobs 9 against 60 (a scan's probe), and a GPU's decoding steps are bound
# by launches, not tokens. At 4 a loaded machine's first step looked like a quarter of the stories and
# the ETA a quarter of the way in was 3-14x too short; erring high only slows the first step's report.
_DECODE_COST = 8.0


def generate(
    lm: LoadedModel,
    prompt_ids: Sequence[Sequence[int]],
    max_new_tokens: int,
    seed: int,
    *,
    temperature: float,
    top_p: float,
    max_batch_tokens: int = GENERATION_BATCH_TOKENS,
    on_progress: Callable[[float], None] | None = None,
    batch_context: BatchContext | None = None,
) -> list[list[int]]:
    """New token ids per prompt, cut at the first end-of-text token; seeded sampling (greedy at temperature 0).

    `on_progress` is told the prompts finished, in fractions at every decoding step (a batch's rows
    advance by 1/max_new_tokens each step; a batch that stops early reports the rest when it ends).
    `batch_context(indices)` is entered around each batch's generation, e.g. to steer those rows. Raises
    EmoauditError, before anything runs, when a prompt and its new tokens do not fit the model's context.
    """
    check_fits(lm, prompt_ids, max_new_tokens)
    eos = eos_ids(lm)
    results: list[list[int]] = [[] for _ in prompt_ids]
    lengths = [len(p) + max_new_tokens for p in prompt_ids]
    device = lm.device
    for batch_index, batch in enumerate(length_batches(lengths, max_batch_tokens)):
        ids, mask = pad_batch([prompt_ids[i] for i in batch], pad_id(lm), "left")
        context = batch_context(batch) if batch_context is not None else nullcontext()
        sampler = []
        if temperature > 0:
            generator = torch.Generator(device=device).manual_seed(seed + batch_index)
            sampler = [NucleusSampler(temperature, top_p, generator)]
        steps = _StepReport(len(batch), ids.shape[1], max_new_tokens, on_progress)
        with torch.inference_mode(), context:
            out = lm.model.generate(  # type: ignore[operator]
                input_ids=ids.to(device),
                attention_mask=mask.to(device),
                max_new_tokens=max_new_tokens,
                do_sample=False,  # sampling, when asked for, is the NucleusSampler's
                logits_processor=LogitsProcessorList(sampler),
                temperature=None,
                top_p=None,
                top_k=None,
                pad_token_id=pad_id(lm),
                eos_token_id=sorted(eos),
                stopping_criteria=StoppingCriteriaList([steps]),
            )
        for row, i in enumerate(batch):
            generated = out[row, ids.shape[1] :].tolist()
            cut = next((k for k, t in enumerate(generated) if t in eos), len(generated))
            results[i] = generated[:cut]
        release_free_memory()  # the batch's KV cache, before the next batch's shape fragments the heap
        steps.finish()
    return results


class _StepReport(StoppingCriteria):
    """Stops nothing: called after every decoding step, it reports the batch's share of the work done, so
    that a batch of minutes moves the progress line every step rather than once at its end. The first
    step carries the prompts' prefill, weighed in read-token equivalents against the steps after it."""

    def __init__(self, rows: int, width: int, max_new_tokens: int, report: Callable[[float], None] | None) -> None:
        prefill, step = rows * width, rows * _DECODE_COST
        whole = prefill + step * max(max_new_tokens, 1)
        self.next, self.step = rows * (prefill + step) / whole, rows * step / whole
        self.left, self.report = float(rows), report

    def __call__(self, input_ids: torch.LongTensor, scores: object, **kwargs: object) -> torch.BoolTensor:
        if self.report is not None and self.left > 1e-9:
            done = min(self.next, self.left)
            self.next, self.left = self.step, self.left - done
            self.report(done)
        return cast(torch.BoolTensor, torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device))

    def finish(self) -> None:
        if self.report is not None and self.left > 1e-9:
            self.report(self.left)
        self.left = 0.0


def check_fits(lm: LoadedModel, prompt_ids: Sequence[Sequence[int]], max_new_tokens: int) -> None:
    """EmoauditError unless the longest prompt plus `max_new_tokens` fits the model's context: past it,
    learned position embeddings raise an IndexError and rotary ones run where the model never trained."""
    longest = max((len(p) for p in prompt_ids), default=0)
    if lm.context_length is not None and longest + max_new_tokens > lm.context_length:
        raise EmoauditError(
            f"{lm.identity.reference} holds {lm.context_length} positions; a prompt of {longest} tokens and "
            f"{max_new_tokens} new ones do not fit (use a profile with fewer new tokens, or a longer-context model)"
        )


class NucleusSampler(LogitsProcessor):
    """Draws each next token itself (temperature, then nucleus sampling) and leaves greedy decoding one choice.

    transformers' sampler sorts the whole vocabulary and draws over all of it at every step: on a CPU
    that was half the time of writing stories. A nucleus almost always lies among the few hundred
    likeliest tokens, found with topk; rows whose nucleus is wider get the full sort. Same distribution.
    """

    def __init__(self, temperature: float, top_p: float, generator: torch.Generator, candidates: int = 256) -> None:
        self.temperature, self.top_p, self.generator, self.candidates = temperature, top_p, generator, candidates

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        probs = torch.softmax(scores.float() / self.temperature, dim=-1)
        top, index = probs.topk(min(self.candidates, probs.shape[-1]), dim=-1)
        tokens = self._draw(top, index)
        wide = top.sum(dim=-1) < self.top_p
        if bool(wide.any()):
            tokens[wide] = self._draw(*probs[wide].sort(dim=-1, descending=True))
        chosen = torch.full_like(scores, -float("inf"))
        return cast(torch.FloatTensor, chosen.scatter_(1, tokens[:, None], 0.0))

    def _draw(self, ranked: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """One token per row from probabilities sorted in descending order, within the nucleus."""
        inside = ranked.cumsum(dim=-1) - ranked < self.top_p  # the token that crosses top_p is kept
        pick = torch.multinomial(ranked * inside, 1, generator=self.generator)
        return index.gather(1, pick)[:, 0]
