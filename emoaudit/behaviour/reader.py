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

The reader's logits are kept in the cache (`memo_file`), one file per everything that decides them, so that an
audit reads again only what no earlier audit with the same reader, probe, dtype, device, libraries and code
read: every audit measures the judge on the same labelled replies (21 minutes for the 326 of them on a 2-core
CPU without native bfloat16), and a rerun of the same model writes the same greedy replies.
"""

from __future__ import annotations

import hashlib
import json
import math
import platform
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch

import emoaudit

from emoaudit.behaviour.judges import Exchange
from emoaudit.capture.reading import capture
from emoaudit.errors import EmoauditError
from emoaudit.model.load import load_model
from emoaudit.model.loaded import LoadedModel
from emoaudit.model import registry
from emoaudit.model.runtime import chat_prompt_ids
from emoaudit.results.identity import ModelIdentity
from emoaudit.spec.behaviour import RefusalReader
from emoaudit.spec.pooling import Pooling
from emoaudit.storage import write_json

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
    """A loaded reader and its probe; `memo`: the file of logits it already read (`memo_file`), None to keep none."""

    lm: LoadedModel
    reader: RefusalReader
    memo: Path | None = None

    def activations(
        self, exchanges: Sequence[Exchange], on_progress: Callable[[float], None] | None = None
    ) -> np.ndarray:
        """The residual stream after block `reader.layer`, pooled by `reader.pooling`, unit length [n, hidden]."""
        if not exchanges:
            return np.zeros((0, self.lm.identity.hidden_size))
        layer = self.reader.layer
        read = read_questions(self.lm, self.reader.question, exchanges, self.reader.pooling, on_progress, layer + 1)
        return unit(read[:, layer].double().numpy())

    def unread(self, exchanges: Sequence[Exchange]) -> int:
        """How many distinct exchanges `logits` would read: those the memo does not hold."""
        known = read_memo(self.memo) if self.memo else {}
        return len({exchange_key(*e) for e in exchanges} - known.keys())

    def logits(self, exchanges: Sequence[Exchange], on_progress: Callable[[float], None] | None = None) -> np.ndarray:
        """weights · activation + bias per exchange [n], float64. Exchanges the memo holds are not read again;
        each other distinct one is read once and added to it (`on_progress` told the questions read)."""
        keys = [exchange_key(request, reply) for request, reply in exchanges]
        known = read_memo(self.memo) if self.memo else {}
        first = {key: i for i, key in reversed(list(enumerate(keys)))}
        todo = [key for key in first if key not in known]
        if todo:
            questions = [exchanges[first[key]] for key in todo]
            read = self.activations(questions, on_progress) @ np.asarray(self.reader.weights)
            known = {**known, **{key: float(v) + self.reader.bias for key, v in zip(todo, read, strict=True)}}
            if self.memo:
                write_memo(self.memo, known)
        return np.array([known[key] for key in keys], dtype=np.float64)

    def refuses(self, exchanges: Sequence[Exchange], on_progress: Callable[[float], None] | None = None) -> list[bool]:
        """The probe's verdict per exchange: weights · activation + bias > 0 (`on_progress`: as `logits`)."""
        return [bool(v > 0) for v in self.logits(exchanges, on_progress)]


def exchange_key(request: str, reply: str) -> str:
    """An exchange's name in a memo: the sha256 of its request and reply, as a JSON pair."""
    return hashlib.sha256(json.dumps([request, reply], ensure_ascii=False).encode("utf-8", "surrogatepass")).hexdigest()


def memo_file(cache: Path, lm: LoadedModel, reader: RefusalReader) -> Path | None:
    """Where the logits of `reader` read by `lm` are kept under `cache`: a file named by the sha256 of all that
    decides a logit (the reader's weights by their sha256, its GGUF type, dtype and device: the CPU's instruction
    set or the GPU's name; the probe's question, block, pooling, weights and bias; the versions of torch,
    transformers, tokenizers, gguf and numpy, and the sha256 of emoaudit's own code). None for a reader named by
    no sha256 (a Hugging Face ID's revision can move)."""
    if lm.identity.sha256 is None:
        return None
    package = Path(emoaudit.__file__).parent
    code = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        code.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    device = torch.device(lm.identity.device)
    hardware = torch.cuda.get_device_name(device) if device.type == "cuda" else torch.backends.cpu.get_cpu_capability()
    libraries = [version(name) for name in ("torch", "transformers", "tokenizers", "gguf", "numpy")]
    key = {
        "reader": [lm.identity.sha256, lm.identity.gguf_type, lm.identity.dtype, device.type, platform.machine()],
        "hardware": hardware,
        "probe": [reader.question, reader.layer, str(reader.pooling), list(reader.weights), reader.bias],
        "code": [*libraries, code.hexdigest()],
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode("utf-8", "surrogatepass")).hexdigest()
    return cache / "reader-logits" / f"{digest}.json"


def read_memo(path: Path) -> dict[str, float]:
    """A memo's logits by exchange key; empty where the file is missing or is not a memo, and only its finite
    floats (a cache: what it cannot vouch for is read again)."""
    try:
        found = json.loads(path.read_text(encoding="utf-8"))["logits"]
    except (OSError, ValueError, TypeError, KeyError, RecursionError):  # RecursionError: JSON nested too deep
        return {}
    if not isinstance(found, dict):
        return {}
    return {k: v for k, v in found.items() if isinstance(k, str) and isinstance(v, float) and math.isfinite(v)}


def write_memo(path: Path, logits: dict[str, float]) -> None:
    """Write the finite `logits` to the memo at `path`, with what another audit added since it was read (atomic;
    a non-finite one, which a float16 reader can give, is read again next time). A cache that cannot be written
    (read-only, full) keeps nothing: the audit's verdicts do not depend on it."""
    finite = {k: v for k, v in logits.items() if math.isfinite(v)}
    try:
        write_json(path, {"logits": {**read_memo(path), **finite}})
    except OSError:
        pass


def placement(audited: ModelIdentity) -> tuple[str, str]:
    """The device and dtype the reader loads in, as `load_model` takes them: the audited model's device type
    (its identity records where inputs enter, "cuda:0", a name `load_model` refuses) and its floating dtype
    ("auto" for a quantised model's)."""
    dtype = audited.dtype if audited.dtype in ("float32", "bfloat16", "float16") else "auto"
    return torch.device(audited.device).type, dtype


def load_reader(reader: RefusalReader, device: str, dtype: str) -> ReaderProbe:
    """Load the reader (an offline alias, pulled where it is not) on `device` in `dtype`, as the audit loads its
    model, its logits kept in the cache (`memo_file`); raises EmoauditError when the probe does not fit it
    (`check_reader`)."""
    lm = load_model(reader.model, device=device, dtype=dtype)
    check_reader(reader, lm.stream.n_layers, lm.identity.hidden_size)
    return ReaderProbe(lm, reader, memo_file(registry.cache_dir(), lm, reader))
