"""Forward hooks on the residual stream: the one module that registers and removes them.

Capture, the generation reader, steering and the logit lens are all built on `block_hooks` (the
generation reader on `input_ids_hook` too, capture on `embedding_hook` for the embedding baseline).
Whatever happens inside the `with` block, every hook is removed on exit and the model is left exactly
as it was. The design follows steering-vectors' `record_activations` and `SteeringVector.apply`: one
primitive, contexts built on it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager

import torch
from torch import nn

from emoaudit.model.architectures import ResidualStream

# Called with (layer, hidden states [batch, positions, hidden]) after a decoder block ran; a tensor it
# returns replaces the block's hidden states, None leaves them as they are.
BlockHook = Callable[[int, torch.Tensor], torch.Tensor | None]


def block_output(output: torch.Tensor | tuple[torch.Tensor, ...]) -> torch.Tensor:
    """The hidden states a decoder block returned: a tensor in transformers >= 5, a tuple's head before."""
    return output if isinstance(output, torch.Tensor) else output[0]


@contextmanager
def block_hooks(stream: ResidualStream, hooks: Mapping[int, BlockHook]) -> Iterator[None]:
    """Run `hooks[layer]` on the output of decoder block `layer` for every layer named, while the block is open."""

    def forward_hook(layer: int, fn: BlockHook) -> Callable[..., object]:
        def hook(_module: nn.Module, _inputs: object, output: torch.Tensor | tuple[torch.Tensor, ...]) -> object:
            replaced = fn(layer, block_output(output))
            if replaced is None:
                return None
            return replaced if isinstance(output, torch.Tensor) else (replaced, *output[1:])

        return hook

    handles = [stream.blocks[layer].register_forward_hook(forward_hook(layer, fn)) for layer, fn in hooks.items()]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


@contextmanager
def embedding_hook(stream: ResidualStream, fn: Callable[[torch.Tensor], None]) -> Iterator[None]:
    """Show `fn` the input of decoder block 0 [batch, positions, hidden]: the token embeddings as the blocks
    receive them (`hidden_states[0]` in transformers, after any embedding scaling), the layer-free baseline."""

    def hook(_module: nn.Module, args: tuple[object, ...], kwargs: dict[str, object]) -> None:
        hidden = args[0] if args else kwargs["hidden_states"]
        assert isinstance(hidden, torch.Tensor)
        fn(hidden)

    handle = stream.blocks[0].register_forward_pre_hook(hook, with_kwargs=True)
    try:
        yield
    finally:
        handle.remove()


@contextmanager
def input_ids_hook(model: nn.Module, fn: Callable[[torch.Tensor], None]) -> Iterator[None]:
    """Show `fn` the token ids [batch, positions] of every forward pass, as they enter the input embeddings."""
    embeddings = model.get_input_embeddings()  # type: ignore[operator]
    handle = embeddings.register_forward_pre_hook(lambda _module, args: fn(args[0]))
    try:
        yield
    finally:
        handle.remove()


def module_device(module: nn.Module) -> torch.device:
    """Where a module runs. Under an accelerate device map that is its hook's execution device: the
    weights of a block offloaded to disk sit on the meta device until the hook loads them there. Otherwise
    the device of its first parameter."""
    hook = getattr(module, "_hf_hook", None)
    # accelerate chains hooks in a SequentialHook; the one that aligns devices names the execution device
    for candidate in getattr(hook, "hooks", None) or (hook,):
        execution = getattr(candidate, "execution_device", None)
        if execution is not None:
            return torch.device("cuda", execution) if isinstance(execution, int) else torch.device(execution)
    return next(module.parameters()).device


def block_device(stream: ResidualStream, layer: int) -> tuple[torch.device, torch.dtype]:
    """Where a block runs and the dtype it computes in: what a tensor added to its output must match.

    The dtype is its first floating-point parameter's: a quantised block's packed weights are integers,
    its norms are not (meta tensors keep their dtype).
    """
    block = stream.blocks[layer]
    dtype = next(p.dtype for p in block.parameters() if p.dtype.is_floating_point)
    return module_device(block), dtype


@contextmanager
def add_to_blocks(stream: ResidualStream, layers: Sequence[int], delta: torch.Tensor, start: int = 0) -> Iterator[None]:
    """Add `delta` to the output of each block in `layers`, at every position from `start` on, while the
    block is open.

    `delta` is [hidden] (every row of a batch) or [batch, hidden] (one per row); it is placed on each
    block's own device and dtype once, not at every token. Positions count across the forward passes
    made inside the block (a prompt, then one token at a time from the KV cache), so `start` = the
    padded prompt length steers only the generated tokens; 0 steers every position.
    """
    placed: dict[int, torch.Tensor] = {}
    seen = dict.fromkeys(layers, 0)  # positions each block has run on so far
    for layer in layers:
        device, dtype = block_device(stream, layer)
        d = delta.to(device=device, dtype=dtype)
        placed[layer] = d[:, None, :] if d.dim() == 2 else d

    def add(layer: int, hidden: torch.Tensor) -> torch.Tensor | None:
        first, n = seen[layer], hidden.shape[1]
        seen[layer] = first + n
        if first >= start:
            return hidden + placed[layer]
        if first + n <= start:
            return None
        after = (torch.arange(first, first + n, device=hidden.device) >= start).to(hidden.dtype)
        return hidden + placed[layer] * after[:, None]

    with block_hooks(stream, {layer: add for layer in layers}):
        yield
