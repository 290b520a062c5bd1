"""What a MODEL argument names and what its numbers depend on, before anything is loaded: the source
(alias, .gguf file, checkpoint directory, Hugging Face ID), the device and dtype it runs in, and the
content identity (sha256 over every file that loads, a GGUF's quantisation type)."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from emoaudit.errors import EmoauditError
from emoaudit.model import registry
from emoaudit.model.gguf import gguf_type
from emoaudit.results.identity import ModelContent, SourceKind
from emoaudit.storage import sha256_file

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
# Files of a checkpoint directory that do not load: documentation and version-control metadata.
_NOT_LOADED = (".md",)


@dataclass(frozen=True)
class ModelSource:
    """Where a model comes from, before anything is loaded."""

    kind: SourceKind
    reference: str
    path: Path | None = None
    revision: str | None = None
    sha256: str | None = None


def resolve(reference: str) -> ModelSource:
    """Decide what a MODEL argument names, without loading anything."""
    aliases = registry.load_registry()
    if reference in aliases:
        return ModelSource("alias", reference, sha256=aliases[reference].sha256)
    path = Path(reference).expanduser()
    if path.suffix.lower() == ".gguf":
        if not path.is_file():
            raise EmoauditError(f"no such GGUF file: {reference}")
        return ModelSource("gguf", reference, path=path.resolve())
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise EmoauditError(f"{reference} is a directory but holds no config.json: not a transformers checkpoint")
        return ModelSource("directory", reference, path=path.resolve())
    if path.exists():
        raise EmoauditError(f"{reference} is neither a .gguf file nor a checkpoint directory")
    hub_id, _, revision = reference.partition("@")
    if reference.startswith((".", "/", "~")) or not _HUB_ID.match(hub_id):
        raise EmoauditError(f"no such model file or directory: {reference}")
    return ModelSource("hub", hub_id, revision=revision or None)


def torch_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise EmoauditError("--device cuda was asked for, but torch sees no CUDA device")
    if name not in ("cpu", "cuda"):
        raise EmoauditError(f"unknown device {name!r}: use auto, cpu or cuda")
    return torch.device(name)


def torch_dtype(name: str, device: torch.device) -> torch.dtype:
    if name == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        # CPUs with native bfloat16 (AVX512-BF16, AMX) run the model 2-4x faster in it; the vectors agree
        # with float32 ones at cosine > 0.99 (bench/run.py measures it). Elsewhere bfloat16 is emulated: slower.
        return torch.bfloat16 if _cpu_has_native_bfloat16() else torch.float32
    table = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if name not in table:
        raise EmoauditError(f"unknown dtype {name!r}: use auto, float32, bfloat16 or float16")
    return table[name]


def _cpu_has_native_bfloat16() -> bool:
    """oneDNN's own check (the one PyTorch's tests use); a torch without it gets float32, never a crash."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def directory_sha256(path: Path) -> str:
    """Identity of a local checkpoint: a hash over the names and sha256s of every file that loads (weights,
    config, tokenizer, chat template; every top-level file but hidden ones and Markdown), hashed on every load.

    Never from a cache keyed by size and mtime: weights replaced by others of the same size and mtime
    (fixed source dates, Nix) kept the old identity, and a rerun resumed the old model's stages. A changed
    config.json (fewer layers, say) changes the model as surely as new weights.
    Hashing costs 0.7-1.0 s for SmolLM2's 538 MB float32 checkpoint (from the page cache, 2-core CPU).
    Raises EmoauditError for a directory without safetensors weights.
    """
    files = sorted(
        p for p in path.iterdir() if p.is_file() and not p.name.startswith(".") and p.suffix not in _NOT_LOADED
    )
    if not any(p.suffix == ".safetensors" for p in files):
        raise EmoauditError(
            f"{path} holds no .safetensors weights; emoaudit does not unpickle .bin/.pt files "
            "(convert them to safetensors first)"
        )
    combined = "\n".join(f"{file.name}:{sha256_file(file)}" for file in files)
    return hashlib.sha256(combined.encode("utf-8", "surrogateescape")).hexdigest()


def model_content(reference: str, device: str, dtype: str, quantize: str | None) -> ModelContent:
    """What loading `reference` this way would read, without loading it: for a study to tell a finished audit
    of these weights from one of other weights in the same place. An alias not pulled yet, or a hub ID
    without a revision, gives a content that is not `known`. Raises EmoauditError as `resolve` does."""
    source = resolve(reference)
    resolved = str(torch_dtype(dtype, torch_device(device))).removeprefix("torch.")
    if source.kind == "alias":
        alias = registry.load_registry()[reference]
        pulled = registry.is_pulled(alias)
        kind = gguf_type(registry.alias_path(alias)) if pulled else None
        return ModelContent(alias.sha256 if pulled else None, None, resolved, quantize, kind)
    if source.kind == "gguf":
        assert source.path is not None
        return ModelContent(sha256_file(source.path), None, resolved, quantize, gguf_type(source.path))
    if source.kind == "directory":
        assert source.path is not None
        return ModelContent(directory_sha256(source.path), None, resolved, quantize, None)
    return ModelContent(None, source.revision, resolved, quantize, None)
