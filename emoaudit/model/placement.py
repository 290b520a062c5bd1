"""Where a model's weights go: one device, or a device map through accelerate (with CPU and disk
offload), and quantised loading through bitsandbytes.

`--max-memory` takes accelerate's own budget format (`0=70GiB,1=70GiB,cpu=200GiB`): per device, the
most its weights may take. Weights past every budget go to disk when disk offload is allowed (the
default with a device map); their blocks run on the main device, loaded from disk one at a time.
"""

from __future__ import annotations

import re
from decimal import Decimal
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import get_args

import torch

from emoaudit.errors import EmoauditError
from emoaudit.results.identity import DeviceMap, Quantization

DEVICE_MAPS: tuple[DeviceMap, ...] = get_args(DeviceMap)
QUANTIZATIONS: tuple[Quantization, ...] = get_args(Quantization)
# Decimal and binary units, as accelerate's max_memory strings take them.
_UNITS = {
    "B": 1,
    "KB": 10**3,
    "MB": 10**6,
    "GB": 10**9,
    "TB": 10**12,
    "KIB": 2**10,
    "MIB": 2**20,
    "GIB": 2**30,
    "TIB": 2**40,
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?I?B)\s*$", re.IGNORECASE)
_DEVICE = re.compile(r"^(cpu|\d+)$")


@dataclass(frozen=True)
class Placement:
    """How to place the weights. No device map and no quantisation: the whole model on one device."""

    device_map: DeviceMap | None = None
    max_memory: Mapping[str, int] = field(default_factory=dict)  # bytes per device: "cpu", "0", "1", ...
    disk_offload: bool = True
    quantize: Quantization | None = None

    def __post_init__(self) -> None:
        """Raises EmoauditError for a device map or a quantisation accelerate and bitsandbytes do not know."""
        if self.device_map is not None and self.device_map not in DEVICE_MAPS:
            raise EmoauditError(f"unknown --device-map {self.device_map!r}: use {', '.join(DEVICE_MAPS)}")
        if self.quantize is not None and self.quantize not in QUANTIZATIONS:
            raise EmoauditError(f"unknown --quantize {self.quantize!r}: use 4bit or 8bit")

    @property
    def mapped(self) -> bool:
        """Whether accelerate places the weights (a device map, asked for or implied by --max-memory)."""
        return self.device_map is not None or bool(self.max_memory)


# accelerate and torch hold a memory budget in a signed 64-bit integer: 8 EiB less one byte.
MAX_SIZE = 2**63 - 1


def parse_size(text: str) -> int:
    """Bytes in a size such as `70GiB`, `2MB` or `512B`. Raises EmoauditError for anything else, and for a size
    above `MAX_SIZE` (a budget no machine has, that no 64-bit count can hold)."""
    match = _SIZE.match(text)
    if not match:
        raise EmoauditError(f"cannot read the size {text!r}: write a number and a unit, e.g. 70GiB, 2MB, 512KB")
    number, unit = match.groups()
    size = int(Decimal(number) * _UNITS[unit.upper()])  # exact: a float of 1e400 is infinity
    if size > MAX_SIZE:
        shown = text.strip() if len(text.strip()) <= 40 else f"{text.strip()[:20]}…{text.strip()[-8:]}"
        raise EmoauditError(f"the size {shown!r} is more than the {MAX_SIZE} bytes (8 EiB) a size can be")
    return size


def parse_max_memory(text: str | None) -> dict[str, int]:
    """`0=70GiB,1=70GiB,cpu=200GiB` as bytes per device. Raises EmoauditError for a malformed entry,
    a device named twice, or a budget of 0."""
    if text is None or not text.strip():
        return {}
    budgets: dict[str, int] = {}
    for entry in text.split(","):
        device, sep, size = entry.strip().partition("=")
        device = device.strip().lower()
        if not sep or not _DEVICE.match(device):
            raise EmoauditError(
                f"cannot read --max-memory entry {entry.strip()!r}: write DEVICE=SIZE, DEVICE a CUDA index or cpu "
                "(e.g. 0=70GiB,1=70GiB,cpu=200GiB)"
            )
        if device in budgets:
            raise EmoauditError(f"--max-memory names {device} twice")
        budgets[device] = parse_size(size)
        if budgets[device] == 0:
            raise EmoauditError(f"--max-memory gives {device} 0 bytes: leave the device out instead")
    return budgets


def check_devices(placement: Placement) -> None:
    """EmoauditError, before any weight is read, when --max-memory budgets a CUDA device torch does not see."""
    visible = torch.cuda.device_count() if torch.cuda.is_available() else 0
    for device in placement.max_memory:
        if device.isdigit() and int(device) >= visible:
            raise EmoauditError(
                f"--max-memory names CUDA device {device}, but torch sees {visible} CUDA device(s) here: "
                "budget only cpu, or the devices listed by nvidia-smi"
            )


def check_quantization(placement: Placement, device: torch.device) -> None:
    """EmoauditError, before any weight is read, where bitsandbytes cannot quantise: no CUDA, or not installed."""
    if placement.quantize is None:
        return
    if not torch.cuda.is_available():
        raise EmoauditError(
            f"--quantize {placement.quantize} needs a CUDA device (bitsandbytes), and torch sees none here: "
            "drop --quantize, or run on a GPU machine"
        )
    if device.type != "cuda" and not placement.mapped:
        raise EmoauditError(
            f"--quantize {placement.quantize} runs on CUDA (bitsandbytes), not on --device {device.type}: "
            "use --device cuda or a --device-map"
        )
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise EmoauditError(f"--quantize {placement.quantize} needs bitsandbytes: pip install bitsandbytes") from None


def load_arguments(placement: Placement, dtype: torch.dtype, offload_folder: Path | None) -> dict[str, object]:
    """Keyword arguments for `from_pretrained` beyond the checkpoint's: empty for one device."""
    kwargs: dict[str, object] = {}
    if placement.mapped:
        kwargs["device_map"] = placement.device_map or "auto"
        if placement.max_memory:
            kwargs["max_memory"] = {(int(k) if k.isdigit() else k): v for k, v in placement.max_memory.items()}
        if offload_folder is not None:
            kwargs["offload_folder"] = str(offload_folder)
    if placement.quantize is not None:
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = (
            BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=dtype, bnb_4bit_quant_type="nf4")
            if placement.quantize == "4bit"
            else BitsAndBytesConfig(load_in_8bit=True)
        )
        kwargs.setdefault("device_map", "auto")
    return kwargs


def offload_folder(placement: Placement, cache: Path) -> Path | None:
    """A fresh folder for disk-offloaded weights under `cache`/offload (the caller removes it with
    `remove_folder`); None where nothing may be offloaded to disk."""
    if not (placement.mapped and placement.disk_offload):
        return None
    root = cache / "offload"
    root.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(dir=root))


def remove_folder(folder: Path | None) -> None:
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)


def placement_record(
    device_map: Mapping[str, object] | None, blocks: list[str], device: str | None = None
) -> dict[str, list[str]]:
    """Module names per place ("cpu", "cuda:0", "disk") from a model's `hf_device_map`, every decoder block
    (named in `blocks`) by its own name even where the map places a module holding it. Without a map: every
    block on `device` when one is given (a device map asked for on a machine with one device, where accelerate
    places the whole model there and records no map), else {}."""
    if not device_map:
        if device is None:
            return {}
        device_map = {"": device}

    def place(module: str) -> str:
        holder = max((k for k in device_map if k == "" or module == k or module.startswith(k + ".")), key=len)
        where = device_map[holder]
        return f"cuda:{where}" if isinstance(where, int) else str(where)

    record: dict[str, list[str]] = {}
    inside = [k for k in device_map if any(b == k or b.startswith(k + ".") or k == "" for b in blocks)]
    for module in [k for k in device_map if k not in inside] + blocks:
        record.setdefault(place(module), []).append(module)
    return record
