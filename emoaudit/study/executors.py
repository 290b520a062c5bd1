"""Where a study's audits run: one after another in this process, or as Ray tasks on a cluster.

Either way each model gets one ordinary audit (`emoaudit.pipeline.run.audit`) whose outputs end up in
OUT/<slug>/, and a model whose audit fails is reported while the others finish. Ray workers need not
share OUT's file system: a worker audits into a temporary directory of its own (seeded with what an
earlier run left in OUT/<slug>/, so that it resumes) and streams each stage to the driver as it finishes
(`study.ray_worker`), which writes it under OUT/<slug>/ file by file, atomically, the stage's own file
after those its reuse reads and results.json last.
"""

from __future__ import annotations

import contextlib
import gc
import shutil
import time
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from rich.console import Console
from emoaudit.escaping import console_text

from emoaudit.pipeline.options import AuditOptions
from emoaudit.errors import EmoauditError
from emoaudit.memory import release_free_memory
from emoaudit.study.archive import pack, salvage, unpack
from emoaudit.study.attempt import Attempt, attempt_audit
from emoaudit.study.ray_worker import Kept, WorkerReport, audit_in_worker
from emoaudit.study.ray_workspace import CONNECT_TIMEOUT_S, check_reachable, new_study_id, study_root, worker_folder
from emoaudit.study.targets import Target

_HEARTBEAT_S = 60.0
# Ray would retry a task whose worker died itself, but it keeps only what a retry yields past the killed
# attempt's last yield (it takes a generator to be deterministic), and a resumed audit yields other stages:
# the driver retries instead, from what OUT/<slug>/ then holds.
_RETRIES = 3


@dataclass(frozen=True)
class RayResources:
    """Where the Ray tasks go, and what each model's task asks of the cluster."""

    address: str | None  # None: start a local Ray instance for this study
    cpus_per_model: float
    gpus_per_model: float
    connect_timeout_s: float = CONNECT_TIMEOUT_S  # how long a cluster's address may take to answer


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
    """Each model as a Ray task with the resources it asks for; each stage is written under OUT as it finishes.

    Raises EmoauditError when ray is not installed or the cluster cannot be reached.
    """
    try:
        import ray
    except ImportError as exc:
        raise EmoauditError("--executor ray needs ray: pip install 'emoaudit[study]'") from exc
    started_here = not ray.is_initialized()
    if started_here:
        if resources.address is not None:
            check_reachable(resources.address, resources.connect_timeout_s)
        _connect(ray, resources.address)
    study = new_study_id()
    # max_calls=1: a fresh worker process per model, so that no model's memory outlives its audit and
    # each audit's recorded peak memory is its own.
    task = ray.remote(
        num_cpus=resources.cpus_per_model,
        num_gpus=resources.gpus_per_model,
        max_calls=1,
        max_retries=0,
        num_returns="streaming",
    )(audit_in_worker)

    def submit(target: Target) -> Any:
        kept = sorted(p.stem for p in (out / target.slug / "stages").glob("*.json"))
        if kept:  # the worker's own "done in an earlier run, reusing" lines reach only its log
            console.print(
                f"study: {console_text(target.reference)}: resuming {target.slug}/ ({', '.join(kept)} done in an "
                "earlier run, reusing)",
                soft_wrap=True,
            )
        return task.remote(replace(template, model=target.reference), pack(out / target.slug), study, target.slug)

    attempts: dict[str, Attempt] = {}
    streams: dict[Any, Target] = {}
    try:
        _check_fits(ray.cluster_resources(), resources, console)
        streams = {submit(t): t for t in targets}
        console.print(f"study: {len(streams)} audit(s) submitted to Ray ({_where(resources)})")
        start, retries = time.monotonic(), Counter[str]()
        while streams:
            ready, _ = ray.wait(list(streams), num_returns=1, timeout=_HEARTBEAT_S)
            if not ready:  # workers' progress stays in their logs: say now and then that they still run
                names = ", ".join(t.reference for t in streams.values())
                minutes = (time.monotonic() - start) / 60
                console.print(f"study: still auditing {console_text(names)} ({minutes:.0f} min)", soft_wrap=True)
                continue
            stream = ready[0]
            target = streams[stream]
            item = _receive(ray, stream, out / target.slug, console, target)
            if isinstance(item, Kept):
                continue
            del streams[stream]
            if isinstance(item, _Lost) and retries[target.slug] < _RETRIES:  # again, from the stages kept
                retries[target.slug] += 1
                console.print(
                    f"study: {console_text(target.reference)}: {console_text(item.error)}; retrying from the "
                    f"stages kept in {target.slug}/ ({retries[target.slug]} of {_RETRIES})",
                    soft_wrap=True,
                )
                streams[submit(target)] = target
                continue
            attempts[target.slug] = item.attempt if isinstance(item, WorkerReport | _Lost) else item
            _report(console, target, attempts[target.slug])
    finally:
        # Interrupted (Ctrl-C) or failed: what the unfinished tasks streamed and this loop has not read yet.
        for stream, target in streams.items():
            _drain(ray, stream, out / target.slug)
            # A task left running (an instance this study did not start stays up) would write on into a
            # folder this study removes: cancelled, it stops its audit and removes the folder itself.
            with contextlib.suppress(Exception):
                ray.cancel(stream)
        if started_here:
            ray.shutdown()
        if resources.address is None:
            # This machine's own workers, stopped now: what they wrote after their last yield (written files
            # only; those streamed already are not written again), then their folders.
            for target in streams.values():
                salvage(worker_folder(study, target.slug), out / target.slug)
        shutil.rmtree(study_root(study), ignore_errors=True)
    return attempts


@dataclass(frozen=True)
class _Lost:
    """A task whose worker or node was lost (killed, out of memory, a node gone), not its code failing."""

    error: str

    @property
    def attempt(self) -> Attempt:
        return Attempt(0.0, self.error, "internal")


def _receive(
    ray: Any, stream: Any, out: Path, console: Console, target: Target
) -> Kept | WorkerReport | _Lost | Attempt:
    """The next item of a task's stream, its files written under `out` as it comes; a failed Attempt where
    the task itself failed, _Lost where its worker or node was lost."""
    from ray.exceptions import RayError, RayTaskError, TaskCancelledError

    try:
        item = ray.get(next(stream))
    except StopIteration:  # every task yields a WorkerReport last; the stream ended without one
        return Attempt(0.0, "Ray task ended without a report", "internal")
    except RayError as exc:
        first = (str(exc).strip().splitlines() or [""])[0]
        error = f"{type(exc).__name__}: {first}".rstrip(": ")
        if isinstance(exc, RayTaskError | TaskCancelledError):
            return Attempt(0.0, f"Ray task failed: {error}", "internal")
        return _Lost(f"Ray task lost: {error}")
    if item.archive is not None:
        unpack(item.archive, out)
    if isinstance(item, Kept):
        console.print(
            f"study: {console_text(target.reference)}: {console_text(item.work)} done, kept in {target.slug}/",
            soft_wrap=True,
        )
    return item  # type: ignore[no-any-return]


def _drain(ray: Any, stream: Any, out: Path) -> None:
    """Write what a task streamed and this process has received but not read yet; nothing else is waited for."""
    with contextlib.suppress(Exception):  # ending anyway: a failed task or a refused archive keeps the rest
        while ray.wait([stream], timeout=0)[0]:
            item = ray.get(next(stream))
            if item.archive is not None:
                unpack(item.archive, out)


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
