"""A loaded model as every stage reads it: the network, its tokenizer, identity and residual stream.

Its own module, below both loading (`load`) and running (`runtime`), so that neither imports the other.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from emoaudit.model.architectures import ResidualStream
from emoaudit.model.hooks import module_device
from emoaudit.results.identity import ModelIdentity


@dataclass
class LoadedModel:
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    identity: ModelIdentity
    stream: ResidualStream
    pad_id: int  # fills padded positions: masked out, so any id with an embedding row will do
    context_length: int | None  # positions the model was built for (None where its config names no limit)

    @property
    def device(self) -> torch.device:
        """Where inputs go: the input embedding's device (under a device map, other blocks run elsewhere)."""
        return module_device(self.model.get_input_embeddings())

    @property
    def embedding_rows(self) -> int:
        """Token ids the input embedding has a row for: 0 .. embedding_rows - 1."""
        return int(self.model.get_input_embeddings().weight.shape[0])  # type: ignore[index]
