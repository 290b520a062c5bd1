"""Running a loaded model: padded batches, the model body over them, tokenisation and prompts."""

from __future__ import annotations

import inspect
import itertools
from collections.abc import Sequence
from typing import Literal

import torch

from emoaudit.errors import EmoauditError
from emoaudit.model.loaded import LoadedModel

PadSide = Literal["left", "right"]
# Read texts (passages, held-out sentences; ~100 tokens) are cut here, or at the model's context if shorter.
READ_MAX_TOKENS = 512


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


def even_batches(lengths: Sequence[int], max_tokens: int) -> list[list[int]]:
    """Indices longest first in as few groups as `length_batches` makes (more where those do not fit), of
    sizes that differ by at most one, each group's padded size within `max_tokens`.

    For generation: a decoding step costs about as much for one row as for dozens (it reads every weight
    either way, and a GPU's steps are bound by launches), so a last batch of one row took as long as the
    batch of 83 before it (a loaded 2-core CPU: 4.5 of 24 min writing SmolLM2's quick stories), a row
    was no unit of progress, and the ETA shown at a quarter of the way in was 3-14x too short."""
    if not lengths:
        return []
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    for count in range(len(length_batches(lengths, max_tokens)), len(order) + 1):
        size, extra = divmod(len(order), count)
        bounds = [g * size + min(g, extra) for g in range(count + 1)]
        groups = [order[a:b] for a, b in itertools.pairwise(bounds)]
        if all(lengths[g[0]] * len(g) <= max_tokens for g in groups):
            return groups
    return [[i] for i in order]  # a row longer than the budget runs alone, as in `length_batches`


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


def cache_keyword(lm: LoadedModel) -> str:
    """The name of the KV cache in the body's forward and output, and in `generate`: transformers 5.24 renamed
    `past_key_values` to `cache`."""
    return "cache" if "cache" in inspect.signature(lm.stream.body.forward).parameters else "past_key_values"


def pad_id(lm: LoadedModel) -> int:
    return lm.pad_id


def read_limit(lm: LoadedModel) -> int:
    """The most tokens of a read text that enter its activations."""
    return min(READ_MAX_TOKENS, lm.context_length or READ_MAX_TOKENS)


def tokenize(lm: LoadedModel, texts: Sequence[str]) -> list[list[int]]:
    """Token ids of texts read as plain documents (with the tokenizer's usual special tokens), each cut to
    `read_limit` tokens (`truncated` counts the texts that were). Raises EmoauditError for a token id
    without an embedding row."""
    encoded = lm.tokenizer(list(texts), add_special_tokens=True, truncation=True, max_length=read_limit(lm))
    return [_embeddable(lm, list(ids), "a read text") for ids in encoded["input_ids"]]


def truncated(lm: LoadedModel, texts: Sequence[str]) -> int:
    """How many of the texts `tokenize` cuts short."""
    lengths = [len(ids) for ids in lm.tokenizer(list(texts), add_special_tokens=True)["input_ids"]]
    return sum(n > read_limit(lm) for n in lengths)


def token_ids(lm: LoadedModel, text: str, *, literal: bool = True) -> list[int]:
    """A text's token ids without added special tokens: how a stored continuation is re-tokenised.

    `literal`: a special token's spelling in the text ("<|im_end|>", which a model can write from ordinary
    tokens) stays text, as it was generated, and never becomes the control token; only a chat template's own
    rendering is read with `literal=False`."""
    encoded = lm.tokenizer(text, add_special_tokens=False, split_special_tokens=literal)
    return _embeddable(lm, list(encoded["input_ids"]), "a text")


def token_count(lm: LoadedModel, texts: Sequence[str]) -> int:
    return sum(len(ids) for ids in lm.tokenizer(list(texts), add_special_tokens=False)["input_ids"])


def generated_text(lm: LoadedModel, ids: Sequence[int]) -> str:
    """Generated token ids as text, without a character the generation cut short.

    A multi-byte character split by the token limit decodes to U+FFFD (one per byte with byte-fallback
    tokenizers). As in tokenizers' DecodeStream and transformers' TextStreamer, a decode that ends in
    U+FFFD is taken as incomplete: the last tokens are dropped, at most 3 (a character's UTF-8 has at
    most 4 bytes), until it does not; if it still does, the text is kept whole. U+FFFD before the end is
    always kept; one the model itself wrote last cannot be told from a cut character and goes too.
    """
    text = str(lm.tokenizer.decode(list(ids), skip_special_tokens=True))
    if text.endswith("\ufffd"):
        for cut in range(1, min(3, len(ids)) + 1):
            shorter = str(lm.tokenizer.decode(list(ids[:-cut]), skip_special_tokens=True))
            if not shorter.endswith("\ufffd"):
                return shorter
    return text


def chat_prompt_ids(lm: LoadedModel, prompt: str, *, quoted: bool = False) -> list[int]:
    """The chat template where the tokenizer has one, the plain prompt otherwise.

    `quoted`: the prompt quotes text from elsewhere (a model's reply, which is hostile): each added token's
    spelling in it ("<|im_end|>") is broken by a zero-width space, so that it stays text and cannot end the
    user's turn and open one of its own; a prompt without one has the same ids either way. A template that
    cannot render (a Jinja syntax error, a `raise_exception` of its own) raises EmoauditError: prompts in
    another format than the model's would audit another interface.
    """
    tok = lm.tokenizer
    if quoted:
        for spelling in sorted({t.content for t in tok.added_tokens_decoder.values()}, key=len, reverse=True):
            if len(spelling) > 1:
                prompt = prompt.replace(spelling, f"{spelling[0]}\u200b{spelling[1:]}")
    if tok.chat_template:
        try:
            text = tok.apply_chat_template(
                [{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=False
            )
        except Exception as exc:  # the template is the checkpoint's code: Jinja, or anything it raises
            first_line = (str(exc).strip().splitlines() or [""])[0]
            raise EmoauditError(
                f"the chat template of {lm.identity.reference} cannot render a user turn: "
                f"{type(exc).__name__}: {first_line[:200]}"
            ) from exc
        return token_ids(lm, str(text), literal=False)
    return _embeddable(lm, list(tok(prompt + "\n\n", add_special_tokens=True)["input_ids"]), "a prompt")


def _embeddable(lm: LoadedModel, ids: list[int], what: str) -> list[int]:
    """The ids, once each is known to have a row in the input embedding (else the model's IndexError)."""
    rows = lm.embedding_rows
    outside = [i for i in ids if not 0 <= i < rows]
    if outside:
        token = lm.tokenizer.convert_ids_to_tokens(outside[0])
        raise EmoauditError(
            f"{lm.identity.reference}: {what} holds token {token!r} (id {outside[0]}), which has no row in the "
            f"input embedding ({rows} rows); the tokenizer was extended without resizing the model's embeddings"
        )
    return ids


def eos_ids(lm: LoadedModel) -> set[int]:
    """Every token id that ends a generation: the generation config's and the tokenizer's."""
    configured = lm.model.generation_config.eos_token_id
    ids = set(configured if isinstance(configured, list) else [configured] if configured is not None else [])
    if lm.tokenizer.eos_token_id is not None:
        ids.add(int(lm.tokenizer.eos_token_id))
    return ids
