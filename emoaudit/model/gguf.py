"""GGUF files as transformers checkpoints: dequantised once into safetensors under the cache."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from rich.console import Console
from safetensors.torch import save_model
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel

from emoaudit.errors import EmoauditError
from emoaudit.progress import ConsoleProgress
from emoaudit.model import registry
from emoaudit.model.architectures import check_causal
from emoaudit.storage import check_free_space, share_like_umask, tree_digests, utf8_view, write_json

_CONVERTED_MARKER = "emoaudit-converted.json"


def converted_gguf(path: Path, sha256: str, dtype: torch.dtype, console: Console) -> Path:
    """A safetensors copy of a GGUF model, made once: transformers' GGUF conversion takes tens of seconds.

    The float32 copy holds the dequantised weights exactly. A copy in a narrower dtype is cast from it
    once, so that loading maps the narrow file instead of reading all of float32 to cast it (3x the memory).
    """
    base = registry.cache_dir() / "converted" / sha256[:16]
    name = str(dtype).removeprefix("torch.")
    target = base if dtype == torch.float32 else base.with_name(f"{base.name}-{name}")
    if (target / _CONVERTED_MARKER).is_file() and _check_converted(target):
        return target
    if dtype != torch.float32:
        exact = converted_gguf(path, sha256, torch.float32, console)
        with utf8_view(exact) as readable:
            model = AutoModelForCausalLM.from_pretrained(readable, dtype=dtype, use_safetensors=True)
        extras = [p for p in exact.iterdir() if p.name not in ("model.safetensors", _CONVERTED_MARKER)]
        _write_converted(target, model, lambda tmp: [shutil.copy2(p, tmp / p.name) for p in extras], path, sha256)
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with ConsoleProgress(console).stage(f"converting {path.name} to safetensors (once)", 1) as advance:
        try:
            tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
            model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
        except Exception as exc:  # the GGUF reader raises anything from ValueError to struct errors
            first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise EmoauditError(f"cannot read GGUF file {path}: {type(exc).__name__}: {first_line[:200]}") from exc
        check_causal(model.config, str(path))
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config  # the copy holds plain dequantised weights

        def write_rest(tmp: Path) -> None:
            model.config.save_pretrained(tmp)
            model.generation_config.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)

        _write_converted(target, model, write_rest, path, sha256)
        advance(1)
    return target


def _check_converted(target: Path) -> bool:
    """Whether the copy records its files (an older version's does not: it is converted again), raising
    EmoauditError unless it holds exactly those: what loads (config, tokenizer, weights) is then what the
    pinned GGUF became, not a file edited or added since."""
    try:
        recorded = json.loads((target / _CONVERTED_MARKER).read_text(encoding="utf-8")).get("files")
    except (ValueError, AttributeError):
        recorded = None
    if not isinstance(recorded, dict):
        return False
    found = tree_digests(target, skip=frozenset({_CONVERTED_MARKER}))
    differing = sorted(set(found.items()) ^ set(recorded.items()))
    if differing:
        raise EmoauditError(
            f"{target}: {differing[0][0]} is not the file its conversion wrote; delete {target} to convert again"
        )
    return True


def _write_converted(
    target: Path, model: PreTrainedModel, write_rest: Callable[[Path], object], source: Path, sha256: str
) -> None:
    """Weights, the files `write_rest` adds, and a marker, moved into place at once: a crash leaves no half copy."""
    target.parent.mkdir(parents=True, exist_ok=True)
    # Tied tensors (the embedding and the unembedding) are one storage, written once.
    weights = sum({t.data_ptr(): t.numel() * t.element_size() for t in model.state_dict().values()}.values())
    check_free_space(target.parent, weights + (64 << 20), f"converting {source.name} to {target.name}")
    tmp = Path(tempfile.mkdtemp(prefix=".convert-", dir=target.parent))
    try:
        save_model(model, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        write_rest(tmp)
        files = tree_digests(tmp)
        write_json(tmp / _CONVERTED_MARKER, {"source": str(source), "sha256": sha256, "files": files})
        # mkdtemp's 0700 and safetensors' 0600 would lock the other users of a shared cache out.
        for item in [tmp, *tmp.iterdir()]:
            share_like_umask(item)
        shutil.rmtree(target, ignore_errors=True)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def gguf_type(path: Path) -> str | None:
    """The quantisation type a GGUF file's header names (`general.file_type`: Q4_1, Q4_K_M, F16), or None
    where the header names none or is unreadable (loading then reports the file's own error)."""
    from gguf import GGUFReader, LlamaFileType

    try:
        field = GGUFReader(path).fields.get("general.file_type")
        if field is None:
            return None
        return LlamaFileType(int(field.parts[field.data[0]][0])).name.removeprefix("MOSTLY_")
    except (ValueError, OSError, IndexError, KeyError):
        return None


@dataclass(frozen=True)
class GgufShape:
    """What a GGUF file's header says of its model: decoder blocks (`{arch}.block_count`), residual width
    (`{arch}.embedding_length`), and parameters (its tensors' elements, whatever their quantisation: what the
    model weighs once loaded unquantised, at a dtype's bytes each)."""

    blocks: int
    width: int
    parameters: int


def gguf_shape(path: Path) -> GgufShape | None:
    """The file's `GgufShape`, or None where its header names no blocks or width or is unreadable. One parse:
    `GGUFReader` reads every tensor's description (about 6 s for the 1.5B alias on 2 cores)."""
    from gguf import GGUFReader

    try:
        reader = GGUFReader(path)
        fields = reader.fields
        arch = fields["general.architecture"]
        name = bytes(arch.parts[arch.data[0]]).decode("utf-8")
        blocks, width = (fields[f"{name}.{key}"] for key in ("block_count", "embedding_length"))
        parameters = sum(int(t.n_elements) for t in reader.tensors)
        return GgufShape(int(blocks.parts[blocks.data[0]][0]), int(width.parts[width.data[0]][0]), parameters)
    except (ValueError, OSError, IndexError, KeyError, UnicodeDecodeError):
        return None
