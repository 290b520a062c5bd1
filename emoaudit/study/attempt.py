"""One model's audit in a study, whichever executor runs it: its failure becomes an error line instead of
ending the study."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

from rich.console import Console

from emoaudit.errors import EmoauditError, input_error_line
from emoaudit.pipeline.options import AuditOptions
from emoaudit.progress import Progress

ErrorKind = Literal["input", "internal"]


@dataclass(frozen=True)
class Attempt:
    """How one audit went: its wall time, and its error line if it failed."""

    seconds: float
    error: str | None = None
    error_kind: ErrorKind | None = None  # input: bad input (exit status 2 alone); internal: anything else


def attempt_audit(options: AuditOptions, console: Console, progress: Progress | None = None) -> Attempt:
    """Run one audit (`progress` as `pipeline.run.audit` takes it); its failure becomes an error line."""
    from emoaudit.pipeline.run import audit

    start = time.perf_counter()
    try:
        audit(options, console, progress)
    except (EmoauditError, OSError) as exc:
        return Attempt(time.perf_counter() - start, input_error_line(exc), "input")
    except Exception as exc:  # a defect, or the machine (memory, a driver): the other models still run
        first = (str(exc).strip().splitlines() or [""])[0]
        return Attempt(time.perf_counter() - start, f"{type(exc).__name__}: {first}".rstrip(": "), "internal")
    return Attempt(time.perf_counter() - start)
