"""Where a study's audits run: one after another in this process, or as Ray tasks on a cluster.

Either way each model gets one ordinary audit (`emoaudit.pipeline.run.audit`) whose outputs end up in
OUT/<slug>/, and a model whose audit fails is reported while the others finish. Ray workers need not
share OUT's file system: a worker audits into a temporary directory of its own (seeded with what an
earlier run left in OUT/<slug>/, so that it resumes) and returns the directory as a tar archive, which
the driver writes under OUT/<slug>/ file by file, atomically, results.json last.
"""

from __future__ import annotations

import contextlib
import gc
import io
import tarfile
import shutil
import time
from functools import partial
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from rich.console import Console
from emoaudit.escaping import console_text

from emoaudit.pipeline.options import AuditOptions
from emoaudit.errors import EmoauditError, input_error_line
from emoaudit.memory import release_free_memory
from emoaudit.storage import write_with
from emoaudit.study.ray_workspace import CONNECT_TIMEOUT_S, check_reachable, study_root, worker_folder
from emoaudit.study.targets import Target

ErrorKind = Literal["input", "internal"]
_HEARTBEAT_S = 60.0


@dataclass(frozen=True)
class Attempt:
    """How one audit went: its wall time, and its error line if it failed."""

    seconds: float
    error: str | None = None
    error_kind: ErrorKind | None = None  # input: bad input (exit status 2 alone); internal: anything else


@dataclass(frozen=True)
class RayResources:
    """Where the Ray tasks go, and what each model's task asks of the cluster."""

    address: str | None  # None: start a local Ray instance for this study
    cpus_per_model: float
    gpus_per_model: float
    connect_timeout_s: float = CONNECT_TIMEOUT_S  # how long a cluster's address may take to answer


@dataclass(frozen=True)
class WorkerReport:
    """What a Ray task sends back: the audit's output directory as a tar archive, and how it went."""

    attempt: Attempt
    archive: bytes | None


def attempt_audit(options: AuditOptions, console: Console) -> Attempt:
    """Run one audit; its failure becomes an error line instead of ending the study."""
    from emoaudit.pipeline.run import audit

    start = time.perf_counter()
    try:
        audit(options, console)
    except (EmoauditError, OSError) as exc:
        return Attempt(time.perf_counter() - start, input_error_line(exc), "input")
    except Exception as exc:  # a defect, or the machine (memory, a driver): the other models still run
        first = (str(exc).strip().splitlines() or [""])[0]
        return Attempt(time.perf_counter() - start, f"{type(exc).__name__}: {first}".rstrip(": "), "internal")
    return Attempt(time.perf_counter() - start)


def run_local(targets: list[Target], template: AuditOptions, out: Path, console: Console) -> dict[str, Attempt]:
    """The models one after another in this process, each audited straight into OUT/<slug>/."""
    attempts = {}
    for target in targets:
        console.print(
            f"study: auditing {console_text(target.reference)} into {console_text(str(out / target.slug))}",
            soft_wrap=True,
        )
        attempts[target.slug] = attempt_audit(replace(template, model=target.reference, out=out / target.slug), console)
        _report(console, target, attempts[target.slug])
        gc.collect()  # the model of this audit, before the next one loads beside it
        release_free_memory()
    return attempts


def run_ray(
    targets: list[Target], template: AuditOptions, out: Path, console: Console, resources: RayResources
) -> dict[str, Attempt]:
    """Each model as a Ray task with the resources it asks for; results are written under OUT as they come.

    Raises EmoauditError when ray is not installed or the cluster cannot be reached.
    """
    try:
        import ray
        from ray.exceptions import RayError
    except ImportError as exc:
        raise EmoauditError("--executor ray needs ray: pip install 'emoaudit[study]'") from exc
    started_here = not ray.is_initialized()
    if started_here:
        if resources.address is not None:
            check_reachable(resources.address, resources.connect_timeout_s)
        _connect(ray, resources.address)
    root = study_root()
    # max_calls=1: a fresh worker process per model, so that no model's memory outlives its audit and
    # each audit's recorded peak memory is its own.
    task = ray.remote(num_cpus=resources.cpus_per_model, num_gpus=resources.gpus_per_model, max_calls=1)(
        audit_in_worker
    )
    attempts: dict[str, Attempt] = {}
    pending: dict[object, Target] = {}
    try:
        _check_fits(ray.cluster_resources(), resources, console)
        pending = {
            task.remote(replace(template, model=t.reference), pack(out / t.slug), str(worker_folder(root, t.slug))): t
            for t in targets
        }
        console.print(f"study: {len(pending)} audit(s) submitted to Ray ({_where(resources)})")
        start = time.monotonic()
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=_HEARTBEAT_S)
            if not ready:  # workers' progress stays in their logs: say now and then that they still run
                names = ", ".join(t.reference for t in pending.values())
                minutes = (time.monotonic() - start) / 60
                console.print(f"study: still auditing {console_text(names)} ({minutes:.0f} min)", soft_wrap=True)
                continue
            done = ready[0]
            target = pending.pop(done)
            try:
                report: WorkerReport = ray.get(done)
            except RayError as exc:  # the worker died (memory, a lost node): the task's own errors are caught in it
                first = (str(exc).strip().splitlines() or [""])[0]
                attempts[target.slug] = Attempt(0.0, f"Ray task failed: {type(exc).__name__}: {first}", "internal")
            else:
                if report.archive is not None:
                    unpack(report.archive, out / target.slug)
                attempts[target.slug] = report.attempt
            _report(console, target, attempts[target.slug])
    finally:
        # Interrupted (Ctrl-C) or failed: the stages the unfinished tasks completed, kept in OUT. Their folders
        # are on this machine's disk with a local instance; a cluster's other nodes keep theirs (each task
        # removes its own when it ends).
        if resources.address is None:
            for target in pending.values():
                salvage(worker_folder(root, target.slug), out / target.slug)
        if started_here:
            ray.shutdown()
        shutil.rmtree(root, ignore_errors=True)
    return attempts


def audit_in_worker(options: AuditOptions, previous: bytes | None, folder: str) -> WorkerReport:
    """A Ray task: the audit in `folder` on this worker's node, returned as a tar archive. A retried task
    (its worker killed) finds the killed attempt's folder and resumes it; otherwise the folder starts from
    what OUT/<slug>/ held. The folder is removed however the task ends."""
    out = Path(folder)
    try:
        if not out.is_dir() and previous is not None:
            unpack(previous, out)
        # Progress bars would only reach the worker's log file; the driver reports each model.
        attempt = attempt_audit(replace(options, out=out), Console(quiet=True))
        return WorkerReport(attempt, pack(out))
    finally:
        shutil.rmtree(out, ignore_errors=True)
        with contextlib.suppress(OSError):
            out.parent.rmdir()  # the study's folder on this node, once its last task is done


def salvage(folder: Path, out: Path) -> None:
    """Copy what an unfinished task's folder holds (its completed stages; files being written are left out)
    into OUT/<slug>/, so that the next run resumes from it. Nothing when the folder is gone."""
    with contextlib.suppress(EmoauditError, OSError, tarfile.TarError):  # a file replaced while it is read
        archive = pack(folder) if folder.is_dir() else None
        if archive is not None:
            unpack(archive, out)


def pack(directory: Path) -> bytes | None:
    """Every file under `directory` as an uncompressed tar archive (safetensors do not compress); None if absent."""
    if not directory.is_dir():
        return None
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for path in sorted(p for p in directory.rglob("*") if p.is_file() and not p.name.endswith(".tmp")):
            archive.add(path, arcname=path.relative_to(directory).as_posix())
    return buffer.getvalue()


def unpack(data: bytes, directory: Path) -> None:
    """Write an archive's regular files under `directory`, each atomically and results.json last, so
    that an interrupted write never leaves an audit that looks finished.

    Raises EmoauditError for a member that is not a plain file inside `directory`.
    """
    with tarfile.open(fileobj=io.BytesIO(data), mode="r") as archive:
        members = archive.getmembers()
        for member in sorted(members, key=lambda m: m.name == "results.json"):
            try:
                safe = tarfile.data_filter(member, str(directory))
            except tarfile.FilterError as exc:
                raise EmoauditError(f"refused an audit archive member {member.name!r}: {exc}") from exc
            # pack() writes relative names of regular files only; anything else did not come from it.
            if not safe.isfile() or safe.name != member.name:
                raise EmoauditError(f"refused an audit archive member {member.name!r}: not a relative regular file")
            source = archive.extractfile(member)
            assert source is not None  # a regular file always has contents
            payload = source.read()
            write_with(directory / safe.name, partial(_write_bytes, data=payload))


def _connect(ray: object, address: str | None) -> None:
    try:
        if address is None:
            # The embedded single-machine default: no dashboard, workers' output kept in Ray's log files.
            ray.init(include_dashboard=False, log_to_driver=False)  # type: ignore[attr-defined]
        else:
            ray.init(address=address, log_to_driver=False)  # type: ignore[attr-defined]
    except (ConnectionError, RuntimeError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise EmoauditError(f"cannot start or reach Ray at {address or 'a local instance'}: {first}") from exc


def _check_fits(total: dict[str, float], resources: RayResources, console: Console) -> None:
    """A task that asks for more than any machine has waits forever: refused on a local instance; on a
    cluster, an autoscaler may still add the machine, so only said."""
    cpus, gpus = total.get("CPU", 0.0), total.get("GPU", 0.0)
    if resources.cpus_per_model <= cpus and resources.gpus_per_model <= gpus:
        return
    message = (
        f"each model asks for {resources.cpus_per_model:g} CPU and {resources.gpus_per_model:g} GPU; "
        f"the Ray {_where(resources).split(';')[0]} has {cpus:g} CPU and {gpus:g} GPU"
    )
    if resources.address is None:
        raise EmoauditError(message)
    console.print(f"study: {console_text(message)}; the tasks wait until the cluster grows", soft_wrap=True)


def _where(resources: RayResources) -> str:
    place = f"cluster at {resources.address}" if resources.address else "local instance"
    return f"{place}; {resources.cpus_per_model:g} CPU and {resources.gpus_per_model:g} GPU per model"


def _report(console: Console, target: Target, attempt: Attempt) -> None:
    if attempt.error is None:
        console.print(f"study: {console_text(target.reference)} audited in {attempt.seconds:.0f} s", soft_wrap=True)
    else:
        # One line, unwrapped, as the CLI's other errors.
        console.print(f"study: {console_text(target.reference)} failed: {console_text(attempt.error)}", soft_wrap=True)


def _write_bytes(path: Path, *, data: bytes) -> None:
    path.write_bytes(data)
