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
    # transformers' own progress bars and advice would bury ours; errors still reach stderr.
    os.environ.setdefault("TQDM_DISABLE", "1")
    from huggingface_hub.utils import logging as hub_logging
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    hub_logging.set_verbosity_error()
    app()
