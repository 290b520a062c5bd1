"""`emoaudit steer`: one prompt, unsteered and steered, side by side."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from emoaudit.cli.paths import audit_folder
from emoaudit.cli.common import (
    Device,
    DeviceMapOpt,
    DeviceOpt,
    DiskOffloadOpt,
    DType,
    DTypeOpt,
    MaxMemoryOpt,
    ModelArg,
    QuantizeOpt,
    SeedOpt,
    SteerPositions,
    SteerPositionsOpt,
    SpecOpt,
    TrustOpt,
    guard,
    placement_options,
    stderr_console,
    terminal_text,
)


def steer(
    model: ModelArg,
    prompt: Annotated[str, typer.Argument(help="What the model is asked; the chat template applies where it has one.")],
    emotion: Annotated[str, typer.Option(help="The emotion to steer toward.")],
    strength: Annotated[
        float,
        typer.Option(
            help="In units of the layer's mean residual norm; negative steers away. `scan` reports a calibrated range."
        ),
    ],
    vectors: Annotated[
        Path | None,
        typer.Option(
            help="A previous run's --out (its results.json or vectors/ folder); extracted on the fly if omitted."
        ),
    ] = None,
    method: Annotated[str, typer.Option(help="comprehension or generation vectors.")] = "comprehension",
    layer: Annotated[
        int | None,
        typer.Option(
            help="Layer to steer; the run's emotion layer if omitted (the middle layer for bare vector files)."
        ),
    ] = None,
    max_new_tokens: Annotated[int, typer.Option(help="Length of each continuation.")] = 64,
    device: DeviceOpt = Device.auto,
    dtype: DTypeOpt = DType.auto,
    spec: SpecOpt = None,
    seed: SeedOpt = 0,
    trust_remote_code: TrustOpt = False,
    device_map: DeviceMapOpt = None,
    max_memory: MaxMemoryOpt = None,
    disk_offload: DiskOffloadOpt = True,
    quantize: QuantizeOpt = None,
    steer_positions: SteerPositionsOpt = SteerPositions.all,
) -> None:
    """Print MODEL's unsteered and steered answers to PROMPT side by side."""
    from emoaudit.pipeline.options import AuditOptions
    from emoaudit.pipeline.steer import steer_once

    placement = placement_options(device_map, max_memory, disk_offload, quantize)
    options = guard(
        lambda: AuditOptions(
            model=model,
            out=Path("."),
            seed=seed,
            device=device.value,
            dtype=dtype.value,
            spec_path=spec,
            trust_remote_code=trust_remote_code,
            **placement,  # type: ignore[arg-type]
            steer_positions=steer_positions.value,
        )
    )
    result = guard(
        lambda: steer_once(
            options,
            stderr_console(),
            prompt,
            emotion,
            strength,
            vectors and audit_folder(vectors),
            method,
            layer,
            max_new_tokens,
        )  # fmt: skip
    )
    table = Table(
        title=terminal_text(f"{model}: {emotion} × {strength:g} at layer {result.layer} ({method} vectors)"),
        show_lines=True,
        expand=True,
    )
    table.add_column("unsteered", ratio=1)
    table.add_column(f"steered toward {emotion}", ratio=1)
    table.add_row(terminal_text(result.unsteered), terminal_text(result.steered))
    Console().print(table)
