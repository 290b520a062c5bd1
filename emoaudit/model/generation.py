"""Batched generation: left padding, seeded sampling, a per-batch context (for steering or reading)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import cast

import torch
from transformers import Cache, LogitsProcessor, LogitsProcessorList, StoppingCriteria, StoppingCriteriaList

from emoaudit.errors import EmoauditError
from emoaudit.memory import release_free_memory
from emoaudit.model.loaded import LoadedModel
from emoaudit.model.runtime import cache_keyword, eos_ids, even_batches, pad_batch, pad_id

BatchContext = Callable[[list[int]], AbstractContextManager[object]]
Clock = Callable[[], float]

# Prompt plus new tokens per batch. On a CPU a decoding step is bound by its matrix products, which
# run faster per row on more rows: SmolLM2's 252 standard stories took 221 s in batches of 6144 tokens
# (~32 rows), 154 s in 12288 (~63 rows), 155-165 s in 16384-32768 and 211 s in one batch of all
# (the KV cache's growth by concatenation then dominates). The KV cache is most of what a batch
# holds (23 kB a token on SmolLM2 in float32: 280 MB at 12288).
GENERATION_BATCH_TOKENS = 12288


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
    shared_prompts: bool = False,
) -> list[list[int]]:
    """New token ids per prompt, cut at the first end-of-text token; seeded sampling (greedy at temperature 0).

    `on_progress` is told the prompts finished, in fractions at every decoding step from the second on
    (`StepReport`: a batch's rows in proportion to its time measured so far; a batch that stops early
    reports the rest when it ends). Batches hold like numbers of rows (`even_batches`).
    `batch_context(indices)` is entered around each batch's generation, e.g. to steer those rows.
    `shared_prompts` says that the context leaves every prompt position as the model reads it unsteered (it
    steers only the generated positions, or there is none): rows of a batch with the same prompt then share
    its KV cache (`shared_prompt_cache`). Raises EmoauditError, before anything runs, when a prompt and its
    new tokens do not fit the model's context.
    """
    check_fits(lm, prompt_ids, max_new_tokens)
    eos = eos_ids(lm)
    results: list[list[int]] = [[] for _ in prompt_ids]
    lengths = [len(p) + max_new_tokens for p in prompt_ids]
    device = lm.device
    for batch_index, batch in enumerate(even_batches(lengths, max_batch_tokens)):
        ids, mask = pad_batch([prompt_ids[i] for i in batch], pad_id(lm), "left")
        context = batch_context(batch) if batch_context is not None else nullcontext()
        sampler = []
        if temperature > 0:
            generator = torch.Generator(device=device).manual_seed(seed + batch_index)
            sampler = [NucleusSampler(temperature, top_p, generator)]
        steps = StepReport(len(batch), max_new_tokens, on_progress)
        with torch.inference_mode(), context:
            # Inside the context: a steering hook counts the positions it has seen, the shared prefix's too.
            cached = shared_prompt_cache(lm, ids, mask) if shared_prompts else {}
            out = lm.model.generate(  # type: ignore[operator]
                **cached,
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
        del cached  # a shared cache is the batch's KV cache, grown in place by generate: not kept past the batch
        release_free_memory()  # the batch's KV cache, before the next batch's shape fragments the heap
        steps.finish()
    return results


def shared_prompt_cache(lm: LoadedModel, ids: torch.Tensor, mask: torch.Tensor) -> dict[str, object]:
    """`generate`'s cache keyword for a left-padded batch `ids`, `mask` [rows, width] whose rows repeat prompts:
    the KV cache of every position but the last, read once per distinct prompt and copied to each row that
    repeats it; {} when no row repeats another, or when the model's generation config names a cache of its
    own (Gemma 2 and 3 checkpoints ask for "hybrid": transformers refuses a cache passed beside that), or its
    forward returns no `Cache` (remote code with tuple caches).

    A steered sweep asks each prompt once unsteered, once per emotion and strength and once per random
    direction (15 rows a prompt in the behaviour stage's standard profile): read per row, the prompts took
    about a third of the time of its 32-token replies on a CPU (bench/shared_prompts.py). The last prompt
    token is left to `generate`, which reads it from the cache and predicts the first new token as it would
    from the whole prompt. Positions follow the mask as `generate` sets them for left padding.
    """
    rows = [tuple(r) for r in ids.tolist()]
    groups: dict[tuple[int, ...], int] = {}
    copies = [groups.setdefault(r, len(groups)) for r in rows]  # each row's distinct prompt
    own_cache = getattr(lm.model.generation_config, "cache_implementation", None) is not None
    if len(groups) == len(rows) or ids.shape[1] < 2 or own_cache:
        return {}
    distinct = torch.tensor([rows.index(r) for r in groups])
    prefix, prefix_mask = ids[distinct, :-1].to(lm.device), mask[distinct, :-1].to(lm.device)
    keyword = cache_keyword(lm)
    read = lm.stream.body(
        input_ids=prefix,
        attention_mask=prefix_mask,
        position_ids=(prefix_mask.cumsum(dim=1) - 1).clamp(min=0),
        use_cache=True,
    )
    cache = getattr(read, keyword)
    if not isinstance(cache, Cache):
        return {}
    cache.reorder_cache(cast(torch.LongTensor, torch.tensor(copies)))
    return {keyword: cache}


def generation_steps(
    prompt_ids: Sequence[Sequence[int]], max_new_tokens: int, max_batch_tokens: int = GENERATION_BATCH_TOKENS
) -> int:
    """The decoding steps `generate` takes at most: `max_new_tokens` for each of its batches. A step costs
    about the same whatever its rows (`even_batches`), so steps are the unit in which work split over
    calls with different numbers of rows is counted."""
    lengths = [len(p) + max_new_tokens for p in prompt_ids]
    return len(even_batches(lengths, max_batch_tokens)) * max_new_tokens


class StepReport(StoppingCriteria):
    """Stops nothing: called after every decoding step, it reports the batch's rows done in proportion to
    the batch's time, so that a batch of minutes moves the progress line every step and its rows are a
    unit of work whose rate an ETA can rest on.

    The first call follows the prefill (the prompts read) and the first new token; what a prefill costs
    against a decoding step is the machine's: 8 step-rows a prompt token was guessed before, and a loaded
    2-core CPU measured ~90 (the prefill is one large matrix product, a step re-reads every weight and
    the vocabulary's logits for few rows). So nothing is reported until a step after it has been timed;
    from then on the batch's time is estimated as the first call's plus `max_new_tokens - 1` steps at
    their mean time so far, and the share of it elapsed is the share of rows reported.
    """

    def __init__(
        self, rows: int, max_new_tokens: int, report: Callable[[float], None] | None, clock: Clock | None = None
    ) -> None:
        clock = clock or time.perf_counter
        self.rows, self.steps, self.report, self.clock = float(rows), max(max_new_tokens, 1), report, clock
        self.start, self.first, self.calls, self.told = clock(), 0.0, 0, 0.0

    def __call__(self, input_ids: torch.LongTensor, scores: object, **kwargs: object) -> torch.BoolTensor:
        self.tick()
        return cast(torch.BoolTensor, torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device))

    def tick(self) -> None:
        """One decoding step done."""
        self.calls += 1
        now = self.clock() - self.start
        if self.calls == 1:
            self.first = now
            if self.steps > 1:
                return
        step = (now - self.first) / (self.calls - 1) if self.calls > 1 else 0.0
        whole = self.first + step * (self.steps - 1)
        self._tell(self.rows * min(now / whole, 1.0) if whole > 0 else self.rows * self.calls / self.steps)

    def finish(self) -> None:
        """The batch ended (at its last step or because every row ended its text): the rest of its rows."""
        self._tell(self.rows)

    def _tell(self, done: float) -> None:
        if self.report is not None and done > self.told + 1e-12:
            self.report(done - self.told)
            self.told = done


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
