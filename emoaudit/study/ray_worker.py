"""A model's audit as a Ray task that streams its work to the driver as the work is done.

The task is a Ray streaming generator (`num_returns="streaming"`): each time the audit tells its progress
that a stage, or one reading's activations, is written (`Progress.kept`), the task yields the files written
since its last yield as a tar archive (`Kept`); at its end it yields a `WorkerReport` with the rest. The
driver writes each under OUT/<slug>/ as it comes, so a driver interrupted, or a cluster lost, keeps every
finished stage although it never reads the node's folder. The audit runs in a thread of the task: the
progress callback is deep in the audit's own calls, where a generator cannot yield, so it queues what the
task's generator then yields.
"""

from __future__ import annotations

import contextlib
import os
import queue
import shutil
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from rich.console import Console

from emoaudit.pipeline.options import AuditOptions
from emoaudit.progress import Advance
from emoaudit.study.archive import pack, unpack
from emoaudit.study.attempt import Attempt, attempt_audit
from emoaudit.study.ray_workspace import worker_folder

# How long an ending task waits for its audit's thread to reach a progress step and stop, before removing its
# folder anyway (short: a worker told to exit is killed soon after).
_STOP_WAIT_S = 10.0


@dataclass(frozen=True)
class Kept:
    """Work a task finished, streamed to the driver: what it was, and the files written since the last yield."""

    work: str  # a stage's name, or "<reading> activations"
    archive: bytes  # a tar archive, names relative to the audit's folder


@dataclass(frozen=True)
class WorkerReport:
    """A task's last yield: how its audit went, and the files written since its last `Kept`."""

    attempt: Attempt
    archive: bytes | None


class _Stopped(Exception):
    """Raised in the audit's thread at its next progress step once its task is ending."""


class FolderStream:
    """Progress for an audit in a worker: shows nothing (a worker's output reaches only its log; the driver
    reports each model) and, each time work is kept, hands `send` the files of `folder` that changed since
    it last did. `known`: the folder holds what the driver already has (seeded from OUT/<slug>/); otherwise
    (a killed attempt's folder) everything in it is sent once."""

    def __init__(self, folder: Path, send: Callable[[Kept], None], known: bool) -> None:
        self.folder, self.send = folder, send
        self.stopping = threading.Event()
        self._sent = _signatures(folder) if known else {}

    @contextmanager
    def stage(self, description: str, total: float, unit: str = "") -> Iterator[Advance]:
        yield self._advance

    def kept(self, work: str) -> None:
        archive = self.changes()
        if archive is not None:
            self.send(Kept(work, archive))

    def changes(self) -> bytes | None:
        """The files written or replaced since the last call (an atomic write is a new inode), as a tar archive."""
        now = _signatures(self.folder)
        changed = [name for name, signature in now.items() if self._sent.get(name) != signature]
        self._sent = now
        return pack(self.folder, changed) if changed else None

    def _advance(self, _: float) -> None:
        if self.stopping.is_set():
            raise _Stopped("the Ray task is ending")


def audit_in_worker(
    options: AuditOptions, previous: bytes | None, study: str, slug: str
) -> Iterator[Kept | WorkerReport]:
    """A Ray streaming generator task: the audit in this node's folder for `study` and `slug`, yielding its
    work as it is kept, then a WorkerReport. A task retried on the node where its killed attempt ran resumes
    that attempt's folder; otherwise the folder starts from what OUT/<slug>/ held (`previous`, a tar
    archive). The folder is removed however the task ends."""
    out = worker_folder(study, slug)
    items: queue.SimpleQueue[Kept | Attempt] = queue.SimpleQueue()
    stream: FolderStream | None = None
    audit: threading.Thread | None = None
    try:
        resumed = out.is_dir()
        if not resumed and previous is not None:
            unpack(previous, out)
        stream = FolderStream(out, items.put, known=not resumed)
        audit = threading.Thread(
            target=_audit,
            args=(replace(options, out=out), stream, items.put),
            name=f"emoaudit audit {slug}",
            daemon=True,
        )
        audit.start()
        while not isinstance(item := _next(items), Attempt):
            yield item
        yield WorkerReport(item, stream.changes())
    finally:
        if stream is not None and audit is not None:  # cancelled, or the worker told to exit: stop writing first
            stream.stopping.set()
            audit.join(_STOP_WAIT_S)
        shutil.rmtree(out, ignore_errors=True)
        with contextlib.suppress(OSError):
            out.parent.rmdir()  # the study's folder on this node, once its last task is done


def _audit(options: AuditOptions, stream: FolderStream, put: Callable[[Attempt], None]) -> None:
    attempt = Attempt(0.0, "the audit's thread stopped without a result", "internal")  # only a BaseException
    try:
        attempt = attempt_audit(options, Console(quiet=True), stream)
    finally:
        put(attempt)


def _next(items: queue.SimpleQueue[Kept | Attempt]) -> Kept | Attempt:
    """The audit's next item. Waited for a second at a time: Ray cancels a task by raising KeyboardInterrupt in
    its thread, which a thread blocked in one wait without a timeout never sees."""
    while True:
        with contextlib.suppress(queue.Empty):
            return items.get(timeout=1.0)


def _signatures(folder: Path) -> dict[str, tuple[int, int, int]]:
    """Each file's (inode, size, modification time in ns) by its name relative to `folder`; files being
    written (`*.tmp`) left out."""
    found = {}
    for path in folder.rglob("*") if folder.is_dir() else ():
        with contextlib.suppress(OSError):  # replaced between the listing and the stat
            if path.is_file() and not path.name.endswith(".tmp"):
                status = os.stat(path)
                found[path.relative_to(folder).as_posix()] = (status.st_ino, status.st_size, status.st_mtime_ns)
    return found
