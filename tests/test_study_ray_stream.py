"""Issue 27, class 5 ("Ray loses nothing"): on a local Ray instance, a study's finished stages reach OUT as
each finishes, streamed from the worker (a cluster's nodes' folders are out of the driver's reach), so that
Ctrl-C keeps them and a rerun resumes from them."""

import io
import os
import queue
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from rich.console import Console

from emoaudit.pipeline.options import AuditOptions, audit_options
from emoaudit.study import executors, ray_worker
from emoaudit.study.executors import RayResources, run_ray
from emoaudit.study.targets import Target
from tests.conftest import REPO
from tests.test_study import SPEC, judge_dir  # noqa: F401 (a fixture, shared)

ray = pytest.importorskip("ray")


class InterruptAt(io.StringIO):
    """A console's file that raises KeyboardInterrupt (Ctrl-C) once `line` is printed."""

    def __init__(self, line: str) -> None:
        super().__init__()
        self.line = line

    def write(self, text: str) -> int:
        written = super().write(text)
        if self.line in self.getvalue():
            raise KeyboardInterrupt
        return written


def _default_sigint() -> None:
    """A terminal's Ctrl-C reaches a process that does not ignore it; a test suite started in the background by
    a shell without job control ignores SIGINT, and every process it starts inherits that (Ray's workers too)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A Ray instance this test process joins as a study would join a cluster, by its address; its workers'
    temporary directory is not the driver's, as on another node."""
    node_tmp = tmp_path_factory.mktemp("node-tmp")
    # Ray cancels a task with a KeyboardInterrupt in its worker, which a worker that inherited an ignored SIGINT
    # never raises: the instance starts with SIGINT handled, whatever this test process was started with.
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"TMPDIR": str(node_tmp)}},
    )
    signal.signal(signal.SIGINT, before)
    try:
        yield ray.get_runtime_context().gcs_address, node_tmp
    finally:
        ray.shutdown()


@pytest.fixture
def tiny_study(
    tiny_dir: Callable[[str], Path],
    judge_dir: Path,  # noqa: F811
    tmp_path: Path,
) -> tuple[AuditOptions, Path, Target]:
    """A quick audit's options of the tiny specification, the study's OUT, and the tiny Llama as its model."""
    values = {"profile": "quick", "spec_path": SPEC, "judge": str(judge_dir), "device": "cpu", "dtype": "float32"}
    return audit_options("m", tmp_path, values), tmp_path / "study", Target(str(tiny_dir("llama")), "llama")


@pytest.fixture
def received(monkeypatch: pytest.MonkeyPatch) -> list[tuple[bytes, list[str]]]:
    """Each archive the driver receives from a worker, with the names it wrote of it."""
    seen: list[tuple[bytes, list[str]]] = []
    original = executors.unpack

    def unpack(data: bytes, directory: Path) -> list[str]:
        seen.append((data, original(data, directory)))
        return seen[-1][1]

    monkeypatch.setattr(executors, "unpack", unpack)
    return seen


def test_a_finished_stage_is_streamed_into_out_before_the_driver_is_interrupted(
    cluster: tuple[str, Path],
    tiny_study: tuple[AuditOptions, Path, Target],
    received: list[tuple[bytes, list[str]]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The driver is interrupted as it reports the extraction stage kept, the worker still at work: OUT holds
    the stage and the files its reuse reads, byte for byte what the worker streamed, without the driver
    reading the worker's folder (on its node, in a temporary directory that is not the driver's)."""
    address, node_tmp = cluster
    template, out, target = tiny_study

    def salvage(folder: Path, out: Path) -> None:
        raise AssertionError(f"the driver read a worker's folder {folder}")

    monkeypatch.setattr(executors, "salvage", salvage)
    console = Console(file=InterruptAt("extraction done, kept in llama/"), width=400)
    with pytest.raises(KeyboardInterrupt):
        run_ray([target], template, out, console, RayResources(address, 1, 0))

    folder = out / "llama"
    assert (folder / "stages" / "extraction.json").is_file() and not (folder / "stages" / "steering.json").exists()
    for needed in ("run.json", "stories.jsonl", "vectors/generation.safetensors", "vectors/comprehension.safetensors"):
        assert (folder / needed).is_file(), needed
    assert not list(folder.rglob("*.tmp"))
    last_streamed = {}
    for data, _ in received:
        with tarfile.open(fileobj=io.BytesIO(data)) as archive:
            for member in archive.getmembers():
                contents = archive.extractfile(member)
                assert contents is not None
                last_streamed[member.name] = contents.read()
    on_disk = {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    assert on_disk == last_streamed
    # the unfinished task, cancelled, stops its audit and removes its folder on its node
    deadline = time.monotonic() + 120
    while list(node_tmp.glob("emoaudit-study-*")) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not list(node_tmp.glob("emoaudit-study-*"))


def study_command(models: list[Path], out: Path, judge: Path) -> list[str]:
    # Each task asks for every CPU of the local instance (as Ray counts them, cgroup limits included), so the
    # models are audited one after another.
    cpus = ray._private.utils.get_num_cpus()
    return [
        sys.executable, "-m", "emoaudit", "study", *map(str, models), "--out", str(out), "--spec", str(SPEC),
        "--profile", "quick", "--judge", str(judge), "--device", "cpu", "--dtype", "float32",
        "--executor", "ray", "--cpus-per-model", str(cpus), "--fail-on", "never",
    ]  # fmt: skip


def test_ctrl_c_on_a_live_ray_study_keeps_the_streamed_stage_and_a_rerun_resumes_it(
    tiny_dir: Callable[[str], Path],
    judge_dir: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    """`emoaudit study --executor ray` (a local instance) interrupted as a terminal's Ctrl-C does, by SIGINT
    to its whole process group, once the worker's extraction stage is in OUT: exit 130, the stage kept, the
    worker's folder removed; the same command again resumes from the stage."""
    out, node_tmp = tmp_path / "study", tmp_path / "tmp"
    node_tmp.mkdir()
    # A second model waits for the first's task to end: when the first's extraction reaches OUT the study cannot
    # have finished (a tiny model's whole audit takes about 2 s on an idle machine, less than the signal's way).
    first_model, second_model = tiny_dir("llama"), tiny_dir("qwen2")
    command = study_command([first_model, second_model], out, judge_dir)
    # Ray's own session (its sockets' paths are limited to 107 bytes) in its usual place
    env = {**os.environ, "TMPDIR": str(node_tmp), "RAY_TMPDIR": "/tmp"}
    first = subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        preexec_fn=_default_sigint,
    )  # fmt: skip
    deadline = time.monotonic() + 1200
    while not list(out.glob("*/stages/extraction.json")) and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert first.poll() is None, first.communicate()[1]
    os.killpg(first.pid, signal.SIGINT)
    _, stderr = first.communicate(timeout=600)
    assert first.returncode == 130, stderr
    assert "emoaudit: interrupted; completed stages are kept" in stderr
    (folder,) = {p.parent.parent for p in out.glob("*/stages/extraction.json")}
    stage = folder / "stages" / "extraction.json"
    assert stage.is_file() and not list(folder.rglob("*.tmp"))
    assert not list(node_tmp.glob("emoaudit-study-*"))  # the worker's folder, removed
    # the audit may have gone on to finish a stage more before the signal took effect: kept as well
    kept = {p.name: p.read_bytes() for p in (folder / "stages").iterdir()}

    second = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=1800)
    assert second.returncode == 0, second.stderr
    said = f"resuming {folder.name}/ ({', '.join(Path(n).stem for n in sorted(kept))} done in an earlier run, reusing)"
    assert said in second.stderr
    first_lines = "\n".join(line for line in second.stderr.splitlines() if f"{first_model}:" in line)
    for name in ("extraction", "steering", "leakage"):  # the tiny specification's stages
        assert (f": {name} done, kept" in first_lines) == (f"{name}.json" not in kept), name
    # reused, not computed again (a stage's file holds its timings)
    assert {name: (folder / "stages" / name).read_bytes() for name in kept} == kept
    assert not list(node_tmp.glob("emoaudit-study-*"))


class KillWorkerAt(io.StringIO):
    """A console's file that kills the audit's Ray worker process (as the kernel's OOM killer would) the
    first time `line` is printed."""

    def __init__(self, line: str) -> None:
        super().__init__()
        self.line, self.killed = line, False

    def write(self, text: str) -> int:
        written = super().write(text)
        if not self.killed and self.line in self.getvalue():
            for pid in workers("ray::audit_in_worker"):
                os.kill(pid, signal.SIGKILL)
                self.killed = True
        return written


def workers(title: str) -> list[int]:
    """The processes whose command line (a Ray worker's title) starts with `title`."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "cmdline").read_bytes().startswith(title.encode()):
                found.append(int(entry.name))
        except OSError:  # ended meanwhile
            continue
    return found


def test_a_killed_worker_is_retried_from_the_stages_it_streamed_without_writing_them_again(
    cluster: tuple[str, Path],
    tiny_study: tuple[AuditOptions, Path, Target],
    received: list[tuple[bytes, list[str]]],
) -> None:
    """Ray's own retry of a streaming task keeps only what the retry yields past the killed attempt's last
    yield, which would drop the resumed audit's stages: the study retries the task itself, and the retry
    resumes from the extraction stage kept (streamed again from the killed attempt's folder, but not written
    again)."""
    address, _ = cluster
    template, out, target = tiny_study
    log = KillWorkerAt("extraction done, kept in llama/")
    attempts = run_ray([target], template, out, Console(file=log, width=400), RayResources(address, 1, 0))
    said = log.getvalue()
    assert log.killed and attempts["llama"].error is None, said
    assert "study: " + target.reference + ": Ray task lost: " in said and "(1 of 3)" in said
    after_retry = said[said.index("(1 of 3)") :]
    assert "resuming llama/ (extraction done in an earlier run, reusing)" in after_retry
    assert "extraction done, kept" not in after_retry and "leakage done, kept" in after_retry
    written = [name for _, names in received for name in names]
    assert written.count("stages/extraction.json") == 1 and written.count("stages/leakage.json") == 1
    assert (out / "llama" / "results.json").is_file()


def test_a_cancelled_task_stops_waiting_for_its_audit_and_cleans_up(cluster: tuple[str, Path], tmp_path: Path) -> None:
    """The study cancels its unfinished tasks when it stops; Ray cancels by raising KeyboardInterrupt in the task's
    thread, which a wait without a timeout never sees: the task would run on, and its folder stay."""

    def waits_for_an_audit(marker: str) -> Iterator[str]:  # defined here: Ray ships it by value
        """A task waiting, as `audit_in_worker` does, for its audit's next item, that never comes."""
        try:
            yield "waiting"
            ray_worker._next(queue.SimpleQueue())
        finally:
            Path(marker).write_text("the task's own clean-up ran")

    marker = tmp_path / "cleaned"
    task = ray.remote(max_retries=0, num_returns="streaming")(waits_for_an_audit).remote(str(marker))
    assert ray.get(next(task)) == "waiting"
    deadline = time.monotonic() + 60
    while not marker.exists() and time.monotonic() < deadline:
        # Asked again until it lands: a cancel that reaches the worker while it is between the yield and the
        # wait was lost once in a whole-suite run (idle machine); what is tested is that a cancel is not ignored
        # by the wait, which a plain blocking wait never leaves however often it is asked.
        ray.cancel(task)
        time.sleep(0.5)
    assert marker.read_text() == "the task's own clean-up ran"
