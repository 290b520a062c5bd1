"""Residual-stream capture: one batched forward pass reads every decoder block's output, pooled over tokens.

Positions are read from the attention mask, never from padded offsets, so a text's activations do
not depend on the batch it lands in or on which side the batch is padded.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from emoaudit.spec.pooling import Pooling, pooling_weights
from emoaudit.errors import EmoauditError
from emoaudit.memory import release_free_memory
from emoaudit.model.hooks import block_hooks, embedding_hook
from emoaudit.model.loaded import LoadedModel
from emoaudit.model.runtime import PadSide, length_batches, pad_batch, pad_id, run_body

# Tokens per batch of a forward pass over whole texts. On a 2-core CPU 4096 ran faster than 8192
# (SmolLM2: 2900-3200 against 2200-2400 tokens/s, the activations staying in cache) and halves a
# batch's transient memory.
READ_BATCH_TOKENS = 4096
MEAN_POOLING = Pooling()


class _Read(Exception):
    """Raised by the last block `capture` reads, to end the forward pass there."""


@dataclass(frozen=True)
class Captured:
    """Pooled activations [n, layers, hidden] and the mean L2 norm of the pooled tokens [n, layers]; `embedding`
    [n, hidden], where read, is the same pooling of the input to block 0 (the token embeddings)."""

    means: torch.Tensor
    token_norms: torch.Tensor
    embedding: torch.Tensor | None = None


def capture(
    lm: LoadedModel,
    sequences: Sequence[Sequence[int]],
    pooling: Pooling = MEAN_POOLING,
    *,
    max_batch_tokens: int = READ_BATCH_TOKENS,
    pad_side: PadSide = "right",
    on_progress: Callable[[float], None] | None = None,
    blocks: int | None = None,
) -> Captured:
    """Pooled residual stream after every decoder block, and of the input to block 0, float32 on the CPU.

    `blocks` reads only the first that many blocks [n, blocks, hidden] and stops each forward pass after the
    last of them: a probe on block 15 of 28 needs nothing later, and a 1.5B reader's pass in float32 on a
    CPU without native bfloat16 takes seconds a question. Runs the model body only (no LM head);
    `on_progress` is told the sequences finished (weighed by their tokens) as each block finishes a batch, so
    that a batch of a minute on a loaded CPU moves the line and has an ETA within seconds. Raises
    EmoauditError when there is nothing to read, or `blocks` is not between 1 and the model's blocks.
    """
    if not sequences:
        raise EmoauditError("nothing to capture: no sequences")
    n_layers = lm.stream.n_layers if blocks is None else blocks
    hidden = lm.identity.hidden_size
    if not 0 < n_layers <= lm.stream.n_layers:
        raise EmoauditError(f"cannot read {n_layers} blocks of a model with {lm.stream.n_layers}")
    total_tokens = max(sum(len(s) for s in sequences), 1)
    out = torch.empty((len(sequences), n_layers, hidden), dtype=torch.float32)
    out_norms = torch.empty((len(sequences), n_layers), dtype=torch.float32)
    out_embedding = torch.empty((len(sequences), hidden), dtype=torch.float32)
    embedded = [torch.empty(0)]
    pooled: list[torch.Tensor] = [torch.empty(0)] * n_layers
    norms: list[torch.Tensor] = [torch.empty(0)] * n_layers
    weights = torch.empty(0)
    block_share = [0.0]  # the batch's share of the texts (by tokens) that each block's pass is worth

    def read(layer: int, hidden_states: torch.Tensor) -> None:
        # In the model's dtype (accumulating in float32): no float32 copy of every hidden state.
        w = weights.to(hidden_states.device)
        pooled[layer] = torch.bmm(w.to(hidden_states.dtype).unsqueeze(1), hidden_states).squeeze(1).float()
        norms[layer] = (w * torch.linalg.vector_norm(hidden_states, dim=-1).float()).sum(dim=1)
        if on_progress is not None:
            on_progress(block_share[0])
        if layer == n_layers - 1 and n_layers < lm.stream.n_layers:
            raise _Read  # the rest of the pass would read nothing

    def read_embedding(hidden_states: torch.Tensor) -> None:
        w = weights.to(hidden_states.device)
        embedded[0] = torch.bmm(w.to(hidden_states.dtype).unsqueeze(1), hidden_states).squeeze(1).float()

    with (
        block_hooks(lm.stream, {layer: read for layer in range(n_layers)}),
        embedding_hook(lm.stream, read_embedding),
        torch.inference_mode(),
    ):
        for batch in length_batches([len(s) for s in sequences], max_batch_tokens):
            ids, mask = pad_batch([sequences[i] for i in batch], pad_id(lm), pad_side)
            weights = pooling_weights(mask.to(lm.device), pooling)
            block_share[0] = len(sequences) * sum(len(sequences[i]) for i in batch) / total_tokens / n_layers
            try:
                run_body(lm, ids, mask)
            except _Read:
                pass
            out[batch] = torch.stack([p.cpu() for p in pooled], dim=1)
            out_norms[batch] = torch.stack([n.cpu() for n in norms], dim=1)
            out_embedding[batch] = embedded[0].cpu()
            release_free_memory()
    return Captured(out, out_norms, out_embedding)
