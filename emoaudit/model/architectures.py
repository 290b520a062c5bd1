"""Residual-stream access: the ordered decoder blocks, final norm and unembedding of a causal LM.

Layer index convention used throughout emoaudit: layer i is the output of decoder block i
(0-based), the residual stream after that block has added its update. In Hugging Face terms this is
`hidden_states[i + 1]`, except for the last block, whose `hidden_states` entry already has the final
norm applied in most families; emoaudit always reads the block output itself, before any final norm.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn
from transformers import PretrainedConfig

from emoaudit.errors import EmoauditError

LAYER_CONVENTION = "i = output of decoder block i (0-based) = hidden_states[i+1], read before the final norm"

# model_type -> (body without LM head, decoder blocks, final norm), as attribute paths from the
# *ForCausalLM module. Families share layouts, but an explicit table makes an unknown
# architecture an error instead of a silent guess.
_LLAMA_LIKE = ("model", "model.layers", "model.norm")
FAMILIES: dict[str, tuple[str, str, str]] = {
    "gpt2": ("transformer", "transformer.h", "transformer.ln_f"),
    "gpt_neox": ("gpt_neox", "gpt_neox.layers", "gpt_neox.final_layer_norm"),
    "llama": _LLAMA_LIKE,
    "mistral": _LLAMA_LIKE,
    "mixtral": _LLAMA_LIKE,
    "qwen2": _LLAMA_LIKE,
    "qwen2_moe": _LLAMA_LIKE,
    "qwen3": _LLAMA_LIKE,
    "qwen3_moe": _LLAMA_LIKE,
    "gemma": _LLAMA_LIKE,
    "gemma2": _LLAMA_LIKE,
    "gemma3_text": _LLAMA_LIKE,
    "gemma3": ("model.language_model", "model.language_model.layers", "model.language_model.norm"),
    "phi3": _LLAMA_LIKE,
    "olmo2": _LLAMA_LIKE,
    "granite": _LLAMA_LIKE,
    "smollm3": _LLAMA_LIKE,
    "phi": ("model", "model.layers", "model.final_layernorm"),
}


@dataclass(frozen=True)
class ResidualStream:
    """Handles on the modules that read and write a causal LM's residual stream."""

    body: nn.Module
    blocks: tuple[nn.Module, ...]
    final_norm: nn.Module
    unembed: nn.Module

    @property
    def n_layers(self) -> int:
        return len(self.blocks)


def supported_model_types() -> list[str]:
    return sorted(FAMILIES)


def check_supported(model_type: str) -> None:
    if model_type not in FAMILIES:
        raise EmoauditError(
            f"unsupported architecture {model_type!r}: emoaudit knows the residual stream of "
            f"{', '.join(supported_model_types())}"
        )


def residual_stream(model: nn.Module) -> ResidualStream:
    """Find the residual-stream modules of a Hugging Face causal LM."""
    model_type = getattr(model.config, "model_type", type(model).__name__)
    check_supported(model_type)
    body_path, blocks_path, norm_path = FAMILIES[model_type]
    blocks = _get(model, blocks_path, model_type)
    unembed = model.get_output_embeddings()  # type: ignore[operator]  # nn.Module types attributes as Tensor
    if not isinstance(blocks, nn.ModuleList) or unembed is None:
        raise EmoauditError(f"{type(model).__name__} ({model_type}) has no decoder blocks or no unembedding")
    return ResidualStream(
        body=_get(model, body_path, model_type),
        blocks=tuple(blocks),
        final_norm=_get(model, norm_path, model_type),
        unembed=unembed,
    )


def _get(model: nn.Module, path: str, model_type: str) -> nn.Module:
    obj: object = model
    for attr in path.split("."):
        if not hasattr(obj, attr):
            raise EmoauditError(f"{type(model).__name__} ({model_type}) has no module {path!r}")
        obj = getattr(obj, attr)
    assert isinstance(obj, nn.Module)
    return obj


def check_causal(config: PretrainedConfig, reference: str) -> None:
    """Refuse encoder-decoder and non-causal checkpoints, and architectures without a known residual stream."""
    architectures = config.architectures or []
    causal = any(a.endswith(("ForCausalLM", "LMHeadModel", "ForConditionalGeneration")) for a in architectures)
    if getattr(config, "is_encoder_decoder", False) or (architectures and not causal):
        raise EmoauditError(
            f"{reference} is not a decoder-only causal language model "
            f"({config.model_type}: {', '.join(architectures) or 'encoder-decoder'})"
        )
    check_supported(config.model_type)
