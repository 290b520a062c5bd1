"""The memory preflight: what an audit will need, estimated from the model's config alone, against what
the machine (or --max-memory) offers; refused in one line before any weight is read.

The estimate has four parts: the weights (parameters counted on the meta device, at the chosen dtype
or quantisation), the KV cache of the largest generation batch (2 x layers x KV heads x head size x
bytes x tokens), the activations kept (samples x layers x hidden x 4 bytes, float32 on the CPU), and a
model loaded beside it on the same device (the refusal judge's reader: its parameters x the dtype's bytes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, PretrainedConfig

from emoaudit.errors import EmoauditError
from emoaudit.model.placement import Placement

# Bytes per quantised weight: 4-bit NF4 packs two in a byte, 8-bit one (their scales add ~1-3%).
_QUANTIZED_BYTES = {"4bit": 0.5, "8bit": 1.0}


@dataclass(frozen=True)
class Workload:
    """What an audit runs beyond the weights: texts whose activations it keeps, tokens per generation batch, and
    the parameters of a model it loads beside the audited one (the refusal judge's reader, in the same dtype)."""

    samples: int = 0
    batch_tokens: int = 0
    beside_parameters: int = 0


@dataclass(frozen=True)
class Footprint:
    """Estimated bytes: the weights, the KV cache of one generation batch, the activations kept, a model beside."""

    weights: int
    kv_cache: int
    activations: int
    beside: int = 0

    @property
    def working(self) -> int:
        return self.kv_cache + self.activations + self.beside

    @property
    def total(self) -> int:
        return self.weights + self.working


def parameter_count(config: PretrainedConfig, trust_remote_code: bool = False) -> int:
    """Parameters of the model a config describes, built on the meta device (no memory; tied weights once)."""
    from accelerate import init_empty_weights

    with init_empty_weights():
        model = AutoModelForCausalLM.from_config(config, trust_remote_code=trust_remote_code)
    return sum(p.numel() for p in model.parameters())


def estimate(
    config: PretrainedConfig,
    dtype: torch.dtype,
    placement: Placement,
    workload: Workload,
    trust_remote_code: bool = False,
) -> Footprint:
    """Bytes the audit needs, from the config alone."""
    text = config.get_text_config()
    weight_bytes = _QUANTIZED_BYTES[placement.quantize] if placement.quantize else dtype.itemsize
    heads = int(text.num_attention_heads)
    kv_heads = int(getattr(text, "num_key_value_heads", None) or heads)
    head_dim = int(getattr(text, "head_dim", None) or text.hidden_size // heads)
    n_layers = int(text.num_hidden_layers)
    kv_dtype_bytes = dtype.itemsize
    return Footprint(
        weights=math.ceil(parameter_count(config, trust_remote_code) * weight_bytes),
        kv_cache=2 * n_layers * kv_heads * head_dim * kv_dtype_bytes * workload.batch_tokens,
        activations=workload.samples * n_layers * int(text.hidden_size) * 4,
        beside=workload.beside_parameters * dtype.itemsize,
    )


def available(device: torch.device) -> int | None:
    """Bytes free now on a device: CUDA's free memory, or the CPU's MemAvailable; None where unknown."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    meminfo = Path("/proc/meminfo")
    if meminfo.is_file():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    try:
        import psutil
    except ImportError:
        return None
    return int(psutil.virtual_memory().available)


def machine_memory() -> dict[str, int | None]:
    """Free bytes per device accelerate can place weights on: "cpu" and each CUDA index."""
    free: dict[str, int | None] = {"cpu": available(torch.device("cpu"))}
    for index in range(torch.cuda.device_count() if torch.cuda.is_available() else 0):
        free[str(index)] = available(torch.device("cuda", index))
    return free


def check_fits(need: Footprint, placement: Placement, device: torch.device, free: dict[str, int | None]) -> None:
    """EmoauditError, saying what is needed, what is available and which flag helps, when the weights
    or the working memory cannot fit. `free` is `machine_memory()`'s answer; unknown amounts pass."""
    detail = (
        f"about {_size(need.total)} (weights {_size(need.weights)}, KV cache {_size(need.kv_cache)}, "
        f"activations {_size(need.activations)}"
        + (f", the refusal judge's reader {_size(need.beside)})" if need.beside else ")")
    )
    if not placement.mapped:
        where = "cpu" if device.type == "cpu" else str(device.index or 0)
        have = free.get(where)
        on_device = need.weights + need.kv_cache + need.beside + (need.activations if device.type == "cpu" else 0)
        if have is not None and on_device > have:
            raise EmoauditError(
                f"the audit needs {detail}; {device} has {_size(have)} available: pass --device-map auto "
                "--max-memory DEV=SIZE,... to spread the weights over the devices, CPU and disk, "
                "or --quantize 4bit on a GPU"
            )
        return
    known = {k: v for k, v in free.items() if v is not None}
    budgets = dict(placement.max_memory) or known
    in_memory = sum(budgets.values())
    if not placement.disk_offload and need.weights > in_memory:
        raise EmoauditError(
            f"the weights need {_size(need.weights)} and --max-memory gives {_size(in_memory)} in all, with disk "
            "offload off: raise --max-memory, allow disk offload (drop --no-disk-offload), or --quantize 4bit on a GPU"
        )
    left = sum(known.values()) - min(need.weights, in_memory)
    if len(known) == len(free) and need.working > left:
        raise EmoauditError(
            f"the audit needs {detail}; after the weights the machine has {_size(max(left, 0))} left for the KV "
            "cache and activations: lower --max-memory so more weights go to disk, or --quantize 4bit on a GPU"
        )


def _size(n: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"
