"""Residual-stream capture: one batched forward pass reads every decoder block's output, pooled over tokens.

Positions are read from the attention mask, never from padded offsets, so a text's activations do
not depend on the batch it lands in or on which side the batch is padded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import torch

from emoaudit.errors import EmoauditError
from emoaudit.layers import block_output
from emoaudit.loading import LoadedModel
from emoaudit.memory import release_free_memory

PadSide = Literal["left", "right"]

# Tokens per batch of a forward pass over whole texts. On a 2-core CPU 4096 ran faster than 8192
# (SmolLM2: 2900-3200 against 2200-2400 tokens/s, the activations staying in cache) and halves a
# batch's transient memory.
READ_BATCH_TOKENS = 4096


@dataclass(frozen=True)
class Pooling:
    """Which tokens of a sequence enter its activation.

    `mean` averages the real tokens from `start` on (counted among real tokens, so padding never
    shifts it). `last` takes the last real token.
    """

    kind: Literal["mean", "last"] = "mean"
    start: int = 0

    @classmethod
    def parse(cls, text: str) -> Pooling:
        """`mean`, `mean:K` (mean from token K on) or `last`."""
        kind, _, start = text.partition(":")
        if kind not in ("mean", "last") or (start and (kind == "last" or not start.isdigit())):
            raise EmoauditError(f"unknown pooling {text!r}: use mean, mean:K (from token K on) or last")
        return cls(kind, int(start or 0))  # type: ignore[arg-type]

    def __str__(self) -> str:
        return f"mean:{self.start}" if self.kind == "mean" and self.start else self.kind


def pooling_weights(mask: torch.Tensor, pooling: Pooling) -> torch.Tensor:
    """Per-token weights [batch, tokens] that sum to one over the pooled real tokens of each row."""
    mask = mask.bool()
    position = mask.long().cumsum(dim=1) - 1  # index among real tokens, whichever side pads
    if pooling.kind == "last":
        selected = mask & (position == mask.sum(dim=1, keepdim=True) - 1)
    else:
        selected = mask & (position >= pooling.start)
    counts = selected.sum(dim=1, keepdim=True)
    if bool((counts == 0).any()):
        raise EmoauditError("a sequence has no tokens left to pool: its start lies beyond its end")
    return selected.float() / counts


def pad_batch(sequences: Sequence[Sequence[int]], pad_id: int, side: PadSide) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids and attention mask for sequences of different lengths."""
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        span = slice(width - len(seq), width) if side == "left" else slice(0, len(seq))
        ids[row, span] = torch.tensor(list(seq), dtype=torch.long)
        mask[row, span] = 1
    return ids, mask


def length_batches(lengths: Sequence[int], max_tokens: int) -> list[list[int]]:
    """Indices grouped longest first, each group's padded size within `max_tokens`: little padding."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    for i in order:
        if batches and lengths[batches[-1][0]] * (len(batches[-1]) + 1) <= max_tokens:
            batches[-1].append(i)
        else:
            batches.append([i])
    return batches


@dataclass(frozen=True)
class Captured:
    """Pooled activations [n, layers, hidden] and the mean L2 norm of the pooled tokens [n, layers]."""

    means: torch.Tensor
    token_norms: torch.Tensor


def capture(
    lm: LoadedModel,
    sequences: Sequence[Sequence[int]],
    pooling: Pooling = Pooling(),
    *,
    max_batch_tokens: int = READ_BATCH_TOKENS,
    pad_side: PadSide = "right",
    on_batch: Callable[[int], None] | None = None,
) -> Captured:
    """Pooled residual stream after every decoder block, float32 on the CPU.

    Runs the model body only (no LM head); `on_batch` is told how many sequences finished.
    """
    if not sequences:
        raise EmoauditError("nothing to capture: no sequences")
    n_layers, hidden = lm.stream.n_layers, lm.identity.hidden_size
    out = torch.empty((len(sequences), n_layers, hidden), dtype=torch.float32)
    out_norms = torch.empty((len(sequences), n_layers), dtype=torch.float32)
    pad_id = int(lm.tokenizer.pad_token_id)
    device = lm.device
    pooled: list[torch.Tensor] = [torch.empty(0)] * n_layers
    norms: list[torch.Tensor] = [torch.empty(0)] * n_layers
    weights = torch.empty(0)

    def hook_for(layer: int) -> Callable[..., None]:
        def hook(_module: torch.nn.Module, _inputs: object, output: object) -> None:
            hidden_states = block_output(output)  # type: ignore[arg-type]
            # In the model's dtype (accumulating in float32): no float32 copy of every hidden state.
            w = weights.to(hidden_states.dtype)
            pooled[layer] = torch.bmm(w.unsqueeze(1), hidden_states).squeeze(1).float()
            norms[layer] = (weights * torch.linalg.vector_norm(hidden_states, dim=-1).float()).sum(dim=1)

        return hook

    handles = [block.register_forward_hook(hook_for(i)) for i, block in enumerate(lm.stream.blocks)]
    try:
        with torch.inference_mode():
            for batch in length_batches([len(s) for s in sequences], max_batch_tokens):
                ids, mask = pad_batch([sequences[i] for i in batch], pad_id, pad_side)
                weights = pooling_weights(mask.to(device), pooling)
                run_body(lm, ids, mask)
                out[batch] = torch.stack(pooled, dim=1).cpu()
                out_norms[batch] = torch.stack(norms, dim=1).cpu()
                release_free_memory()
                if on_batch is not None:
                    on_batch(len(batch))
    finally:
        for handle in handles:
            handle.remove()
    return Captured(out, out_norms)


class GenerationReader:
    """Pools every block's output over generated tokens while `generate` writes them: no second pass.

    With a KV cache, each decoding step feeds the model the token sampled at the step before, so the
    residual stream of generated token t is computed at step t + 1. A reader therefore wants one token
    more generated than kept: generate max_new_tokens + 1 and keep max_new_tokens, and every kept token
    has been read. A row stops counting at its first end-of-text token, as the kept text does.
    """

    def __init__(self, lm: LoadedModel, n_sequences: int, eos_ids: set[int]) -> None:
        self._lm = lm
        self._eos = torch.tensor(sorted(eos_ids), device=lm.device)
        shape = (n_sequences, lm.stream.n_layers)
        self.sums = torch.zeros((*shape, lm.identity.hidden_size), dtype=torch.float32)
        self.norm_sums = torch.zeros(shape, dtype=torch.float32)
        self.counts = torch.zeros(n_sequences, dtype=torch.long)

    @contextmanager
    def batch(self, rows: list[int]) -> Iterator[None]:
        """Read the generation of these sequences (in this order) while the context is open."""
        n_layers = self._lm.stream.n_layers
        hidden = self._lm.identity.hidden_size
        device = self._lm.device
        sums = torch.zeros((len(rows), n_layers, hidden), dtype=torch.float32, device=device)
        norm_sums = torch.zeros((len(rows), n_layers), dtype=torch.float32, device=device)
        live = torch.ones(len(rows), dtype=torch.bool, device=device)
        counts = torch.zeros(len(rows), dtype=torch.long, device=device)
        calls = [0]

        def read_inputs(_module: torch.nn.Module, args: tuple[torch.Tensor, ...]) -> None:
            calls[0] += 1
            if calls[0] > 1:  # the first call reads the prompt, which is not generated text
                live.logical_and_(~torch.isin(args[0][:, -1], self._eos))
                counts.add_(live)

        def hook_for(layer: int) -> Callable[..., None]:
            def hook(_module: torch.nn.Module, _inputs: object, output: object) -> None:
                if calls[0] > 1:
                    states = block_output(output)[:, -1].float() * live[:, None]  # type: ignore[arg-type]
                    sums[:, layer] += states
                    norm_sums[:, layer] += torch.linalg.vector_norm(states, dim=-1)

            return hook

        embeddings = self._lm.model.get_input_embeddings()
        handles = [embeddings.register_forward_pre_hook(read_inputs)]
        handles += [block.register_forward_hook(hook_for(i)) for i, block in enumerate(self._lm.stream.blocks)]
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()
        self.sums[rows] = sums.cpu()
        self.norm_sums[rows] = norm_sums.cpu()
        self.counts[rows] = counts.cpu()

    def captured(self, rows: Sequence[int]) -> Captured:
        """Means over the read tokens of these sequences; each must have at least one."""
        counts = self.counts[list(rows)].clamp(min=1).float()
        return Captured(self.sums[list(rows)] / counts[:, None, None], self.norm_sums[list(rows)] / counts[:, None])


def run_body(lm: LoadedModel, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The model body (no LM head) over a padded batch, positions read from the mask: final-normed states."""
    positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
    with torch.inference_mode():
        return lm.stream.body(
            input_ids=ids.to(lm.device),
            attention_mask=mask.to(lm.device),
            position_ids=positions.to(lm.device),
            use_cache=False,
        ).last_hidden_state


def tokenize(lm: LoadedModel, texts: Sequence[str], max_length: int = 512) -> list[list[int]]:
    """Token ids of texts read as plain documents (with the tokenizer's usual special tokens)."""
    encoded = lm.tokenizer(list(texts), add_special_tokens=True, truncation=True, max_length=max_length)
    return [list(ids) for ids in encoded["input_ids"]]
