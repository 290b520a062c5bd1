"""Emotion vectors as steering vectors for other tools.

* llama.cpp control vectors (GGUF, architecture `controlvector`), the format repeng's
  `ControlVector.export_gguf` writes and llama.cpp's `--control-vector` reads: one F32 tensor
  `direction.N` of the hidden size per steered layer, with `controlvector.model_hint` and
  `controlvector.layer_count`. llama.cpp adds `direction.N` to the output of its block N (0-based), the
  same hook point as emoaudit's layer N; it never steers block 0's input and keeps no tensor for
  `direction.0`, so layer 0 cannot be exported. Each direction is written as mean_norm[N] × v/‖v‖, so
  that `--control-vector-scaled FILE:S` adds exactly what `emoaudit steer --strength S` adds.
* a safetensors file `{"N": [hidden]}` in the same units and layer numbering, which steering-vectors'
  `SteeringVector(layer_activations={int(k): v ...}, layer_type="decoder_block")` applies unchanged
  (its decoder-block layer N is the output of block N).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import gguf
from safetensors.torch import save_file

from emoaudit.errors import EmoauditError
from emoaudit.storage import write_with
from emoaudit.vectors import EmotionVectors

# transformers model_type -> llama.cpp's architecture name (the GGUF `general.architecture` of the model).
LLAMA_CPP_ARCHITECTURES = {
    "gpt2": "gpt2",
    "gpt_neox": "gptneox",
    "llama": "llama",
    "mistral": "llama",
    "mixtral": "llama",
    "qwen2": "qwen2",
    "qwen2_moe": "qwen2moe",
    "qwen3": "qwen3",
    "qwen3_moe": "qwen3moe",
    "gemma": "gemma",
    "gemma2": "gemma2",
    "gemma3": "gemma3",
    "gemma3_text": "gemma3",
    "phi": "phi2",
    "phi3": "phi3",
    "olmo2": "olmo2",
    "granite": "granite",
    "smollm3": "smollm3",
}


def export_gguf(vectors: EmotionVectors, emotion: str, layers: Sequence[int], model_type: str, path: Path) -> None:
    """Write a llama.cpp control vector; EmoauditError for layer 0 or a layer outside the vectors."""
    if any(layer == 0 for layer in layers):
        raise EmoauditError("llama.cpp cannot steer layer 0 (it keeps no direction.0): choose layers from 1 on")
    deltas = {layer: vectors.delta(emotion, layer, 1.0).float().numpy() for layer in layers}

    def write(tmp: Path) -> None:
        writer = gguf.GGUFWriter(str(tmp), "controlvector")
        writer.add_string("controlvector.model_hint", LLAMA_CPP_ARCHITECTURES.get(model_type, model_type))
        writer.add_uint32("controlvector.layer_count", len(deltas))
        for layer, delta in sorted(deltas.items()):
            writer.add_tensor(f"direction.{layer}", delta)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()

    write_with(path, write)


def export_safetensors(vectors: EmotionVectors, emotion: str, layers: Sequence[int], path: Path) -> None:
    """Write `{str(layer): [hidden]}` at strength 1, with the convention in the file's metadata."""
    tensors = {str(layer): vectors.delta(emotion, layer, 1.0).contiguous() for layer in layers}
    metadata = {
        "emotion": emotion,
        "method": vectors.origin.method,
        "layer_type": "decoder_block",
        "layers": json.dumps(sorted(layers)),
        "units": "strength 1 = the layer's mean residual norm along the unit direction; multiply by "
        "`emoaudit steer --strength`",
        "operation": "add to the output of decoder block N, every position",
    }
    write_with(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))
