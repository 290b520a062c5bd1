"""The `emoaudit` command line: one module per command group, options shared in `common`."""

from __future__ import annotations

import io
import os
import sys
from typing import Annotated

import typer

from emoaudit import __version__
from emoaudit.cli.audit import extract, scan
from emoaudit.cli.exports import export_vectors, verify
from emoaudit.cli.models import models_app
from emoaudit.cli.report import compare, report
from emoaudit.cli.steer import steer
from emoaudit.cli.study import EXIT_STATUS, study

app = typer.Typer(
    help="Audit the emotion representations of an open-weight causal language model.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(models_app, name="models")
for command in (scan, extract, steer, report, compare, verify):
    app.command()(command)
app.command(epilog=EXIT_STATUS)(study)
app.command("export-vectors")(export_vectors)


def _version(value: bool) -> None:
    if value:
        print(f"emoaudit {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """Audit the emotion representations of an open-weight causal language model."""


def main() -> None:
    # A path or model reference may hold lone surrogates (bytes that were not UTF-8): printed escaped, as
    # stderr already does, rather than crashing the command after its work is done.
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(errors="backslashreplace")
    # transformers' own progress bars and advice would bury ours; errors still reach stderr. Told by the
    # environment, which both libraries read when first imported: `--help` and `models list` import neither.
    for name, value in _QUIET_LIBRARIES.items():
        os.environ.setdefault(name, value)
    app()


_QUIET_LIBRARIES = {
    "TQDM_DISABLE": "1",
    "TRANSFORMERS_VERBOSITY": "error",
    "HF_HUB_VERBOSITY": "error",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
}
