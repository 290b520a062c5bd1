"""`emoaudit steer`: one prompt, unsteered and steered, side by side."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from emoaudit.cli.common import ModelArg, guard, stderr_console, terminal_text
from emoaudit.cli.options import with_options
from emoaudit.options import MODEL_OPTIONS


@with_options(*MODEL_OPTIONS)
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
            help="A previous run's --out (or its vectors/ folder); vectors are extracted on the fly if omitted."
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
    **options: Any,
) -> None:
    """Print MODEL's unsteered and steered answers to PROMPT side by side."""
    from emoaudit.pipeline.options import audit_options
    from emoaudit.pipeline.steer import steer_once

    settings = guard(lambda: audit_options(model, Path("."), options))
    result = guard(
        lambda: steer_once(
            settings, stderr_console(), prompt, emotion, strength, vectors, method, layer, max_new_tokens
        )
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
