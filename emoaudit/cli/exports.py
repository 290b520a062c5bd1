"""`emoaudit export-vectors` and `emoaudit verify`: an audit's outputs for other tools, and their integrity."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from emoaudit.cli.common import guard
from emoaudit.escaping import console_text
from emoaudit.cli.paths import AUDIT_HELP, audit_folder


class VectorFormat(str, Enum):
    gguf = "gguf"
    safetensors = "safetensors"


def export_vectors(
    audit_out: Annotated[Path, typer.Argument(help=AUDIT_HELP)],
    emotion: Annotated[str, typer.Option(help="The emotion whose vector to export.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The file to write.")],
    format: Annotated[
        VectorFormat, typer.Option(help="gguf: a llama.cpp control vector; safetensors: {layer: vector}.")
    ] = VectorFormat.gguf,
    method: Annotated[str, typer.Option(help="comprehension or generation vectors.")] = "comprehension",
    layers: Annotated[
        str | None, typer.Option(help="Comma-separated layers (emoaudit numbering); the emotion layer if omitted.")
    ] = None,
) -> None:
    """Write one emotion's vector for llama.cpp (`--control-vector-scaled FILE:SCALE`) or steering-vectors, in
    the units of `emoaudit steer --strength` (SCALE = the strength)."""
    from emoaudit.export.control_vectors import export_gguf, export_safetensors
    from emoaudit.vectors import EmotionVectors

    def run() -> list[int]:
        vectors = EmotionVectors.load(_vector_file(audit_folder(audit_out), method))
        chosen = _parse_layers(layers) if layers is not None else [vectors.layer_or_default(None)]
        for layer in chosen:
            vectors.direction(emotion, layer)  # an unknown emotion or layer is one line, before any file
        if format is VectorFormat.gguf:
            model_type = vectors.origin.model.model_type if vectors.origin.model is not None else None
            export_gguf(vectors, emotion, chosen, model_type or "", out)
        else:
            export_safetensors(vectors, emotion, chosen, out)
        return chosen

    chosen = guard(run)
    layer_list = ", ".join(map(str, chosen))
    _say(f"{out}: {emotion} ({method}), layers {layer_list}, {format.value}")


def verify(audit_out: Annotated[Path, typer.Argument(help=AUDIT_HELP)]) -> None:
    """Check every file of an audit against its manifest; exit 1 naming the first that differs."""
    from emoaudit.export.manifest import verify as verify_manifest

    audit_out = audit_folder(audit_out)
    discrepancies = guard(lambda: verify_manifest(audit_out))
    if discrepancies:
        first = discrepancies[0]
        more = f" (and {len(discrepancies) - 1} more)" if len(discrepancies) > 1 else ""
        _say(f"{audit_out}: {first.path} {first.kind} since the manifest was written{more}")
        raise typer.Exit(1)
    _say(f"{audit_out}: every file matches its manifest")


def _say(line: str) -> None:
    """One unwrapped line on stdout (scripts read it): file names from OUT shown inert, on one line."""
    Console(soft_wrap=True).print(console_text(line, one_line=True))


def _vector_file(audit_out: Path, method: str) -> Path:
    folder = audit_out / "vectors" if (audit_out / "vectors").is_dir() else audit_out
    return folder / f"{method}.safetensors"


def _parse_layers(text: str) -> list[int]:
    from emoaudit.errors import EmoauditError

    try:
        return sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError as exc:
        raise EmoauditError(f"--layers takes comma-separated layer numbers, not {text!r}") from exc
