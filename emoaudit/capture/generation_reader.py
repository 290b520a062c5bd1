"""Reading the residual stream of generated text while `generate` writes it: no second pass."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch

from emoaudit.capture.reading import Captured
from emoaudit.model.hooks import block_device, block_hooks, input_ids_hook
from emoaudit.model.loaded import LoadedModel


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
        # Each block's sums live on the device it runs on (under a device map, blocks run on several).
        places = [block_device(self._lm.stream, layer)[0] for layer in range(n_layers)]
        sums = [torch.zeros((len(rows), hidden), dtype=torch.float32, device=d) for d in places]
        norm_sums = [torch.zeros(len(rows), dtype=torch.float32, device=d) for d in places]
        live = torch.ones(len(rows), dtype=torch.bool, device=device)
        counts = torch.zeros(len(rows), dtype=torch.long, device=device)
        calls = [0]

        def read_ids(ids: torch.Tensor) -> None:
            calls[0] += 1
            if calls[0] > 1:  # the first call reads the prompt, which is not generated text
                live.logical_and_(~torch.isin(ids[:, -1].to(device), self._eos))
                counts.add_(live)

        def read(layer: int, hidden_states: torch.Tensor) -> None:
            if calls[0] > 1:
                states = hidden_states[:, -1].float() * live.to(hidden_states.device)[:, None]
                sums[layer] += states
                norm_sums[layer] += torch.linalg.vector_norm(states, dim=-1)

        with (
            input_ids_hook(self._lm.model, read_ids),
            block_hooks(self._lm.stream, dict.fromkeys(range(n_layers), read)),
        ):
            yield
        self.sums[rows] = torch.stack([s.cpu() for s in sums], dim=1)
        self.norm_sums[rows] = torch.stack([n.cpu() for n in norm_sums], dim=1)
        self.counts[rows] = counts.cpu()

    def captured(self, rows: Sequence[int]) -> Captured:
        """Means over the read tokens of these sequences; each must have at least one."""
        counts = self.counts[list(rows)].clamp(min=1).float()
        return Captured(self.sums[list(rows)] / counts[:, None, None], self.norm_sums[list(rows)] / counts[:, None])
