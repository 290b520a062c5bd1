"""Options and error handling shared by every command (after inspect_ai's `_cli/common.py`)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console

from emoaudit.escaping import console_text, terminal
from emoaudit.errors import EmoauditError, input_error_line
from emoaudit.options import TABLE
from emoaudit.results.common import FailLevel

T = TypeVar("T")


ModelArg = Annotated[
    str,
    typer.Argument(
        help="Offline alias (see `emoaudit models list`), a .gguf file, a checkpoint directory, "
        "or a Hugging Face ID[@revision]."
    ),
]
OutOpt = Annotated[Path, typer.Option("--out", "-o", help="Output directory; a rerun with the same one resumes.")]
FailOnOpt = Annotated[FailLevel, typer.Option(help="Exit 1 when a finding is at this severity or above.")]
# The policy outside an audit (`report`, `compare`), with the help of its row in the options table.
PolicyOpt = Annotated[Path | None, typer.Option(help=TABLE["policy"].help)]
JUnitOpt = Annotated[Path | None, typer.Option(help="Write a JUnit XML file, one test case per check.")]
SarifOpt = Annotated[
    Path | None, typer.Option("--sarif", help="Write the findings as SARIF 2.1.0 (code-scanning dashboards).")
]
ModelCardOpt = Annotated[
    Path | None, typer.Option("--model-card", help="Write a Markdown section for a Hugging Face model card.")
]
PdfOpt = Annotated[
    Path | None, typer.Option("--pdf", help="Print the report to a paginated PDF (needs headless Chromium).")
]


terminal_text = console_text  # model output printed through Rich (`escaping.console_text`)


def stderr_console() -> Console:
    return Console(stderr=True)


RESUME = "completed stages are kept, rerun with the same --out to resume"


def guard(action: Callable[[], T], interrupted: str = RESUME) -> T:
    """Bad input ends in one line on stderr and exit status 2, never a traceback; Ctrl-C ends in one line
    saying what of the work is kept (`interrupted`), and exit status 130."""
    try:
        return action()
    except (EmoauditError, OSError) as exc:
        # The message quotes paths and checkpoint fields (a config's model_type) that may hold terminal escapes.
        print(f"emoaudit: error: {terminal(input_error_line(exc), one_line=True)}", file=sys.stderr)
        raise typer.Exit(2) from None
    except MemoryError:
        # Not a finding (exit 1) and not a traceback: a data file or model larger than this machine's memory.
        print(
            "emoaudit: error: out of memory (a model, data file or batch larger than this machine holds)",
            file=sys.stderr,
        )
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        print(f"emoaudit: interrupted; {interrupted}", file=sys.stderr)
        raise typer.Exit(130) from None
