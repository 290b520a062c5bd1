"""The refusal judge's reader: an instruction-tuned offline model reads the request beside the reply, and a linear
probe on its residual stream says whether the reply refuses.

A reply's own sentence embedding reads its topic and register, not whether the request was done: it missed
harmless alternatives written instead, refusals that only state the harm, and advice-shaped deflections
(docs/behaviour.md, judge31). A model that reads both can tell them apart; asked zero-shot it still errs
(0.80 and 0.87 recall for a 1.5B model), but the answer is linearly readable from its residual stream, as other
properties of a model's input are (linear probes: Alain & Bengio, arXiv 1610.01644; refusal as a direction in the
residual stream: Arditi et al., arXiv 2406.11717). The probe is a logistic regression fitted on labelled
development replies (`bench/behaviour_judge_fit.py`), over one block's residual stream pooled as the file says:
the mean over the question's tokens read the reply's content better than the last token alone (judge35), and
better still without the first token, the attention sink, whose residual norm is about a hundred times the others'
(judge36; docs/behaviour.md).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from emoaudit.behaviour.judges import Exchange
from emoaudit.capture.reading import capture
from emoaudit.errors import EmoauditError
from emoaudit.model.load import load_model
from emoaudit.model.loaded import LoadedModel
from emoaudit.model.runtime import chat_prompt_ids
from emoaudit.results.identity import ModelIdentity
from emoaudit.spec.behaviour import RefusalReader
from emoaudit.spec.pooling import Pooling

_SLOT = re.compile(r"\{request\}|\{reply\}")


def question(text: str, request: str, reply: str) -> str:
    """A reader's question `text` with the request and the reply in their slots (one pass: a request that
    itself holds "{reply}" stays as written)."""
    return _SLOT.sub(lambda m: request if m.group(0) == "{request}" else reply, text)


def read_questions(
    lm: LoadedModel,
    text: str,
    exchanges: Sequence[Exchange],
    pooling: Pooling,
    on_progress: Callable[[float], None] | None = None,
    blocks: int | None = None,
) -> torch.Tensor:
    """The residual stream after each of the first `blocks` decoder blocks (all by default) over the question
    `text` about each exchange, pooled over its chat-formatted tokens by `pooling` [n, blocks, hidden], float32;
    the request and reply are quoted (their spelling of a turn marker stays text: `chat_prompt_ids`)."""
    ids = [chat_prompt_ids(lm, question(text, request, reply), quoted=True) for request, reply in exchanges]
    return capture(lm, ids, pooling, on_progress=on_progress, blocks=blocks).means


def unit(acts: np.ndarray) -> np.ndarray:
    """Each activation scaled to unit length along the last axis (a zero one stays zero)."""
    return acts / np.maximum(np.linalg.norm(acts, axis=-1, keepdims=True), 1e-12)


def check_reader(reader: RefusalReader, layers: int, hidden: int) -> None:
    """Raise EmoauditError unless the probe reads a block the reader has, with one weight per dimension of its
    residual stream, and can give only finite logits on a unit activation (|logit| <= the weights' norm + |bias|)."""
    where = f"the specification's refusal_reader file (reader {reader.model})"
    if reader.layer >= layers:
        raise EmoauditError(f"{where} reads block {reader.layer}, but the reader has {layers} decoder blocks")
    if len(reader.weights) != hidden:
        raise EmoauditError(
            f"{where} has {len(reader.weights)} weights, but the reader's residual stream has {hidden} dimensions; "
            "fit it for this reader (bench/behaviour_judge_fit.py), or leave it out (then phrases alone judge)"
        )
    with np.errstate(over="ignore"):
        bound = float(np.linalg.norm(np.asarray(reader.weights, dtype=np.float64))) + abs(reader.bias)
    if not np.isfinite(bound):
        raise EmoauditError(f"{where} can give a non-finite logit: its weights' norm overflows a float")


@dataclass(frozen=True)
class ReaderProbe:
    """A loaded reader and its probe."""

    lm: LoadedModel
    reader: RefusalReader

    def activations(
        self, exchanges: Sequence[Exchange], on_progress: Callable[[float], None] | None = None
    ) -> np.ndarray:
        """The residual stream after block `reader.layer`, pooled by `reader.pooling`, unit length [n, hidden]."""
        if not exchanges:
            return np.zeros((0, self.lm.identity.hidden_size))
        layer = self.reader.layer
        read = read_questions(self.lm, self.reader.question, exchanges, self.reader.pooling, on_progress, layer + 1)
        return unit(read[:, layer].double().numpy())

    def refuses(self, exchanges: Sequence[Exchange]) -> list[bool]:
        """The probe's verdict per exchange: weights · activation + bias > 0."""
        logits = self.activations(exchanges) @ np.asarray(self.reader.weights) + self.reader.bias
        return [bool(v > 0) for v in logits]


def placement(audited: ModelIdentity) -> tuple[str, str]:
    """The device and dtype the reader loads in, as `load_model` takes them: the audited model's device type
    (its identity records where inputs enter, "cuda:0", a name `load_model` refuses) and its floating dtype
    ("auto" for a quantised model's)."""
    dtype = audited.dtype if audited.dtype in ("float32", "bfloat16", "float16") else "auto"
    return torch.device(audited.device).type, dtype


def load_reader(reader: RefusalReader, device: str, dtype: str) -> ReaderProbe:
    """Load the reader (an offline alias, pulled where it is not) on `device` in `dtype`, as the audit loads its
    model; raises EmoauditError when the probe does not fit it (`check_reader`)."""
    lm = load_model(reader.model, device=device, dtype=dtype)
    check_reader(reader, lm.stream.n_layers, lm.identity.hidden_size)
    return ReaderProbe(lm, reader)
