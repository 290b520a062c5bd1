"""Running a loaded model: padded batches, the model body over them, tokenisation and prompts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch

from emoaudit.model.load import LoadedModel

PadSide = Literal["left", "right"]


def pad_batch(sequences: Sequence[Sequence[int]], pad_id: int, side: PadSide) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids and attention mask [batch, width] for sequences of different lengths."""
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


def run_body(lm: LoadedModel, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The model body (no LM head) over a padded batch, positions read from the mask: final-normed states
    [batch, width, hidden]."""
    positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
    with torch.inference_mode():
        return lm.stream.body(
            input_ids=ids.to(lm.device),
            attention_mask=mask.to(lm.device),
            position_ids=positions.to(lm.device),
            use_cache=False,
        ).last_hidden_state


def pad_id(lm: LoadedModel) -> int:
    return int(lm.tokenizer.pad_token_id)


def tokenize(lm: LoadedModel, texts: Sequence[str], max_length: int = 512) -> list[list[int]]:
    """Token ids of texts read as plain documents (with the tokenizer's usual special tokens)."""
    encoded = lm.tokenizer(list(texts), add_special_tokens=True, truncation=True, max_length=max_length)
    return [list(ids) for ids in encoded["input_ids"]]


def token_ids(lm: LoadedModel, text: str) -> list[int]:
    """A text's token ids without special tokens: how a stored continuation is re-tokenised."""
    return list(lm.tokenizer(text, add_special_tokens=False)["input_ids"])


def token_count(lm: LoadedModel, texts: Sequence[str]) -> int:
    return sum(len(ids) for ids in lm.tokenizer(list(texts), add_special_tokens=False)["input_ids"])


def chat_prompt_ids(lm: LoadedModel, prompt: str) -> list[int]:
    """The chat template where the tokenizer has one, the plain prompt otherwise."""
    tok = lm.tokenizer
    if tok.chat_template:
        text = tok.apply_chat_template(
            [{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=False
        )
        return token_ids(lm, str(text))
    return list(tok(prompt + "\n\n", add_special_tokens=True)["input_ids"])


def eos_ids(lm: LoadedModel) -> set[int]:
    """Every token id that ends a generation: the generation config's and the tokenizer's."""
    configured = lm.model.generation_config.eos_token_id
    ids = set(configured if isinstance(configured, list) else [configured] if configured is not None else [])
    if lm.tokenizer.eos_token_id is not None:
        ids.add(int(lm.tokenizer.eos_token_id))
    return ids
