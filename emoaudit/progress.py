"""Progress of long work: one line per stage, advanced by the loops that do the work, with an ETA.

The loops (decoding steps, forward passes, judge batches) are handed an `Advance` callback and call it
with the units they finished; they know nothing of terminals. `Progress.stage` makes one: a live rich
line on a terminal (bar, done/total, elapsed, ETA), left as the stage's line with its time when it ends.
Off a terminal (a CI log, a test's pipe) and with `QuietProgress` nothing is printed: there stderr holds
errors alone, one line each. Imports neither torch nor transformers.

The ETA is the remaining work at the throughput measured so far in the stage (elapsed / done), not a
windowed speed: decoding steps slow a little as the KV cache grows, and a mean over the whole stage
is what a quarter-way estimate of the rest can honestly rest on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol

from rich.console import Console
from rich.progress import BarColumn, Progress as RichProgress, ProgressColumn, Task, TextColumn
from rich.text import Text

Advance = Callable[[float], None]
"""Told how many units (rows, texts, steps; fractions allowed) of the stage finished since its last call."""


class Progress(Protocol):
    """Makes one stage's progress line; `total` is in the units its `Advance` is told."""

    def stage(self, description: str, total: float, unit: str = "") -> AbstractContextManager[Advance]: ...

    def kept(self, work: str) -> None:
        """Told, once written under the audit's OUT, each piece of work a rerun resumes from: a finished stage
        (`extraction`, ...) or one reading's activations (`generation activations`)."""


def ignore(_: float) -> None:
    """An `Advance` that shows nothing."""


class QuietProgress:
    """Progress that shows nothing and costs one no-op call per advance."""

    @contextmanager
    def stage(self, description: str, total: float, unit: str = "") -> Iterator[Advance]:
        yield ignore

    def kept(self, work: str) -> None:
        pass


class ConsoleProgress:
    """A rich progress line per stage on `console` (one at a time; a stage opened inside another's
    line reports into nothing rather than fight it for the terminal)."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._open = False

    @contextmanager
    def stage(self, description: str, total: float, unit: str = "") -> Iterator[Advance]:
        if not self.console.is_terminal or self.console.quiet or self._open:
            yield ignore
            return
        columns = (
            TextColumn("{task.description}"),
            BarColumn(bar_width=24),
            _Done(),
            _Eta(),
        )
        line = RichProgress(*columns, console=self.console, refresh_per_second=4)
        task = line.add_task(description, total=max(float(total), 1e-9), unit=unit)
        self._open = True
        try:
            with line:
                try:
                    yield lambda n: line.advance(task, n)
                except BaseException:
                    line.live.transient = True  # a failed stage leaves no line: the error is what to read
                    raise
                line.update(task, completed=max(float(total), 1e-9))
        finally:
            self._open = False

    def kept(self, work: str) -> None:
        pass  # the stage's own line has said it finished


def note(console: Console, text: str) -> None:
    """A line for a person at a terminal (sizes, estimates); nothing elsewhere, as `ConsoleProgress`."""
    if console.is_terminal:
        console.print(text, markup=False, highlight=False)


def eta_seconds(elapsed: float, done: float, total: float) -> float | None:
    """Seconds left at the throughput measured so far, or None before anything is done."""
    if done <= 0 or elapsed <= 0:
        return None
    return elapsed * max(total - done, 0.0) / done


def duration(seconds: float) -> str:
    """`42 s`, `3 min 05 s`, `1 h 02 min`."""
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


class _Done(ProgressColumn):
    def render(self, task: Task) -> Text:
        unit = task.fields.get("unit") or ""
        total = task.total or 0
        if total <= 1e-6:
            return Text("")
        return Text(f"{int(task.completed)}/{round(total)} {unit}".rstrip(), style="progress.download")


class _Eta(ProgressColumn):
    def render(self, task: Task) -> Text:
        elapsed = task.finished_time if task.finished else task.elapsed
        elapsed = elapsed or 0.0
        if task.finished:
            return Text(f"done in {duration(elapsed)}", style="progress.elapsed")
        left = eta_seconds(elapsed, task.completed, task.total or 0.0)
        remaining = "ETA …" if left is None else f"ETA {duration(left)}"
        return Text(f"{duration(elapsed)} elapsed, {remaining}", style="progress.remaining")
