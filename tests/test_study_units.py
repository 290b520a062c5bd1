"""The study's parts on their own: model folders, the models file, the correction, the claims, the archives."""

import io
import dataclasses
import json
import re
import tarfile
import tempfile
import threading
import time
from pathlib import Path

import jsonschema
import pytest

from emoaudit.errors import EmoauditError
from emoaudit.results.common import Check, FailLevel
from emoaudit.study import executors
from emoaudit.report.claims import Subject, assess, evaluate_claims, load_claims
from emoaudit.results.evidence import Comparison, MethodEvidence, ModelEvidence
from emoaudit.results.convert import to_dict
from emoaudit.results.identity import AuditIdentity, ModelContent, RunRecord
from emoaudit.results.steering import Regime
from emoaudit.study.evidence import changed, is_finished
from emoaudit.progress import Progress
from emoaudit.study import archive as archive_module
from emoaudit.study.archive import pack, salvage, unpack
from emoaudit.study.attempt import Attempt
from emoaudit.study.executors import RayResources
from emoaudit.results.schema import study_schema
from emoaudit.study.study import corrected_p_values
from emoaudit.study.targets import slug_for, study_targets
from tests.conftest import REPO, run_cli

SAFE = r"^[a-z0-9][a-z0-9._-]*$"


def evidence(
    p: float = 0.01,
    d: float = 0.5,
    depth_layer: int = 5,
    regimes: dict[Regime, int] | None = None,
    leakage: str | None = "info",
    probe: tuple[float, float, float] = (0.8, 0.2, 0.001),
    similarity: list[float] | None = None,
) -> ModelEvidence:
    """Evidence of an 11-layer model with the given measurements (what read_evidence returns); the
    similarity above anisotropy per layer is U-shaped unless given."""
    u_shape = [0.1, 0.08, 0.06, 0.04, 0.03, 0.02, 0.03, 0.05, 0.07, 0.09, 0.12]
    method = MethodEvidence(0.5, 0.25, *probe, similarity if similarity is not None else u_shape)
    return ModelEvidence(
        reference="m",
        model_type="llama",
        architecture="LlamaForCausalLM",
        parameters=10,
        n_layers=11,
        emotion_layer=depth_layer,
        relative_depth=depth_layer / 10,
        layer_method="comprehension",
        score=[0.0] * 11,
        comparison=Comparison(d, p),
        methods={"comprehension": method, "generation": method},
        regimes=regimes,
        leakage_severity=leakage,
        findings=[Check("leakage", "t", "info", False, "d", {})],
    )


def test_slugs_are_folder_names_stable_and_distinct(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a" / "model").mkdir(parents=True)
    (tmp_path / "b" / "model").mkdir(parents=True)
    (tmp_path / "Model").mkdir()
    monkeypatch.chdir(tmp_path)
    references = [
        "smollm2-135m",
        str(tmp_path / "a" / "model"),
        str(tmp_path / "b" / "model"),
        "Model",
        "model",
        "HuggingFaceTB/SmolLM2-135M-Instruct@main",
        "../../etc",
    ]
    slugs = [slug_for(r) for r in references]
    assert slugs[0] == "smollm2-135m"  # an alias is its own folder
    assert all(re.match(SAFE, s) for s in slugs), slugs
    assert len({s.lower() for s in slugs}) == len(slugs)  # distinct on case-insensitive file systems too
    assert slugs[1].startswith("model-") and slugs[5].startswith("huggingfacetb-smollm2-135m-instruct-main-")
    assert slug_for("a/model") == slugs[1]  # the same directory, relative or absolute
    assert slug_for("HuggingFaceTB/SmolLM2-135M-Instruct@main") == slugs[5]  # the same on every run


def test_models_file_and_command_line_are_merged(tmp_path: Path) -> None:
    path = tmp_path / "models.toml"
    path.write_text('models = ["gemma3-270m", {reference = "./ckpt-1000", slug = "step-1000"}, "smollm2-135m"]\n')
    targets = study_targets(["smollm2-135m"], path)
    assert [(t.reference, t.slug) for t in targets] == [
        ("smollm2-135m", "smollm2-135m"),
        ("gemma3-270m", "gemma3-270m"),
        ("./ckpt-1000", "step-1000"),
    ]
    bad = {
        "missing.toml": None,
        "syntax.toml": "models = [",
        "no-list.toml": 'models = "smollm2-135m"',
        "bad-entry.toml": "models = [3]",
        "bad-slug.toml": 'models = [{reference = "x", slug = "../up"}]',
        "shared.toml": 'models = [{reference = "x", slug = "same"}, {reference = "y", slug = "same"}]',
    }
    for name, text in bad.items():
        if text is not None:
            (tmp_path / name).write_text(text)
        with pytest.raises(EmoauditError):
            study_targets([], tmp_path / name)
    with pytest.raises(EmoauditError, match="no model to study"):
        study_targets([], None)
    for args, message in (
        (["--models", str(tmp_path / "syntax.toml")], "malformed models file"),
        (["smollm2-135m", "--ray-address", "h:1"], "--ray-address needs --executor ray"),
    ):
        proc = run_cli("study", *args, "--out", str(tmp_path / "out"))
        assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1


def test_benjamini_hochberg_across_models() -> None:
    # By hand: sorted p 0.01, 0.03, 0.04, 0.2 times 4/rank = 0.04, 0.06, 0.0533, 0.2; running minimum from the top.
    raw = {"a": 0.01, "b": 0.04, "c": 0.03, "d": 0.2}
    corrected = corrected_p_values({k: evidence(p=p) for k, p in raw.items()})
    assert corrected == pytest.approx({"a": 0.04, "b": 0.16 / 3, "c": 0.16 / 3, "d": 0.2})
    assert corrected_p_values({"one": evidence(p=0.03)}) == pytest.approx({"one": 0.03})


def test_claims_follow_their_thresholds() -> None:
    claims = {c.id: c for c in load_claims()}
    assert "within [0.25, 0.75]" in claims["mid_depth"].test and "surgical, repetitive_collapse" in (
        claims["three_regimes"].test
    )
    full = {"surgical": 3, "no_effect": 1, "repetitive_collapse": 2, "explosive": 1}
    # Falling all the way down: lowest at the last layer, which is no U.
    falling = [0.1 - 0.01 * i for i in range(11)]
    subjects = [
        Subject("mid", evidence(depth_layer=5, regimes=full, leakage="medium"), 0.01),
        # Raw p 0.01 but corrected 0.2: the claim reads the corrected one.
        Subject(
            "shallow",
            evidence(depth_layer=1, regimes={**full, "explosive": 0}, probe=(0.3, 0.2, 0.001), similarity=falling),
            0.2,
        ),
        Subject("comprehension-wins", evidence(d=-0.5, regimes=None, leakage=None, probe=(0.9, 0.2, 0.3)), 0.01),
        Subject("failed", None, None),
    ]
    results = {r.id: r for r in evaluate_claims(list(claims.values()), subjects)}

    def holds(claim: str) -> list[bool | None]:
        return [m.holds for m in results[claim].models]

    assert holds("generation_separates_better") == [True, False, False, None]
    assert holds("mid_depth") == [True, False, True, None]
    assert holds("similarity_u_shape") == [True, False, True, None]
    assert holds("above_baselines") == [True, False, False, None]  # 1.5x shuffled; Fisher p 0.3
    assert holds("three_regimes") == [True, False, None, None]
    assert holds("leakage") == [True, False, None, None]
    assert (results["mid_depth"].holds_in, results["mid_depth"].measured) == (2, 3)
    assert (results["three_regimes"].holds_in, results["three_regimes"].measured) == (1, 2)


def test_one_models_claims_read_the_uncorrected_p_and_measure_the_u_shape() -> None:
    claims = {c.id: c for c in load_claims()}
    alone = assess(claims["generation_separates_better"], evidence(p=0.01))
    assert alone.holds is True and "uncorrected p 0.01" in alone.detail
    assert {m.name: m.value for m in alone.measured} == {"cohens_d": 0.5, "mann_whitney_p": 0.01}
    assert "uncorrected" in alone.measured[1].unit and "centroid margin" in alone.measured[0].unit
    in_study = assess(claims["generation_separates_better"], evidence(p=0.01), corrected_p=0.2)
    assert in_study.holds is False and "corrected p 0.2" in in_study.detail
    u = {m.name: m.value for m in assess(claims["similarity_u_shape"], evidence()).measured}
    assert u == pytest.approx(
        {
            "minimum_layer": 5,
            "minimum_relative_depth": 0.5,
            "minimum": 0.02,
            "first_layer_rise": 0.08,
            "last_layer_rise": 0.10,
        }
    )
    # A U too shallow at one end: its first layer only 0.01 above the minimum (the file asks 0.02).
    shallow = [0.03, 0.025, 0.02, 0.02, 0.02, 0.02, 0.03, 0.05, 0.07, 0.09, 0.12]
    assert assess(claims["similarity_u_shape"], evidence(similarity=shallow)).holds is False


def test_a_claims_file_names_only_claims_with_tests(tmp_path: Path) -> None:
    unknown = tmp_path / "unknown.toml"
    unknown.write_text('[claims.vibes]\nstatement = "s"\ntest = "t"\n')
    with pytest.raises(EmoauditError, match="no test for vibes"):
        load_claims(unknown)
    missing = tmp_path / "missing.toml"
    missing.write_text('[claims.mid_depth]\nstatement = "s"\ntest = "within [{low}, {high}]"\nlow = 0.25\n')
    with pytest.raises(EmoauditError, match="malformed claims file"):
        load_claims(missing)


def test_archives_round_trip_and_write_results_last(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "audit"
    for name, data in {
        "results.json": b"{}",
        "stages/extraction.json": b"[1]",
        "vectors/v.safetensors": bytes(300),
    }.items():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_bytes(data)
    written: list[str] = []
    original = archive_module.write_with
    monkeypatch.setattr(archive_module, "write_with", lambda p, w: (written.append(p.name), original(p, w)))
    unpack(pack(source) or b"", tmp_path / "copy")
    # the stage after the files its reuse reads, results.json last
    assert written == ["v.safetensors", "extraction.json", "results.json"]
    for path in source.rglob("*"):
        if path.is_file():
            assert (tmp_path / "copy" / path.relative_to(source)).read_bytes() == path.read_bytes()
    assert pack(tmp_path / "absent") is None


@pytest.mark.parametrize("kind", ["parent", "absolute", "symlink"])
def test_archives_cannot_write_outside_their_folder(tmp_path: Path, kind: str) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        member = tarfile.TarInfo({"parent": "../escaped", "absolute": "/tmp/escaped", "symlink": "link"}[kind])
        if kind == "symlink":
            member.type, member.linkname = tarfile.SYMTYPE, "/etc/passwd"
            archive.addfile(member)
        else:
            member.size = 3
            archive.addfile(member, io.BytesIO(b"bad"))
    with pytest.raises(EmoauditError, match="refused an audit archive member"):
        unpack(buffer.getvalue(), tmp_path / "into")
    assert not (tmp_path / "escaped").exists() and not Path("/tmp/escaped").exists()
    assert not any(p.is_symlink() for p in tmp_path.rglob("*"))


def test_a_ray_task_that_cannot_fit_is_refused_on_a_local_instance() -> None:
    from rich.console import Console

    local_instance = RayResources(None, cpus_per_model=1, gpus_per_model=1)
    with pytest.raises(EmoauditError, match="asks for 1 CPU and 1 GPU; the Ray local instance has 2 CPU and 0 GPU"):
        executors._check_fits({"CPU": 2.0}, local_instance, Console(quiet=True))
    console = Console(record=True, width=200)
    # A cluster may grow (an autoscaler): there it is only said.
    executors._check_fits({"CPU": 2.0}, RayResources("head:6379", 1, 1), console)
    assert "the tasks wait until the cluster grows" in console.export_text()
    executors._check_fits({"CPU": 2.0, "GPU": 1.0}, local_instance, Console(quiet=True))


def test_only_a_complete_audit_of_the_same_identity_and_judge_counts_as_finished(tmp_path: Path) -> None:
    identity = AuditIdentity(ModelContent("ab" * 32, None, "float32", None, None), "cd" * 32, "quick", 0, "all")
    (tmp_path / "run.json").write_text(json.dumps(to_dict(RunRecord(identity, "./typed/as/this"))))
    document = {
        "complete": True,
        "stages": {"extraction": {}, "steering": {"judge": {"name": "j"}}, "leakage": {}, "behaviour": {"judge": "j"}},
    }
    path = tmp_path / "results.json"
    path.write_text(json.dumps(document))
    assert is_finished(tmp_path, identity, "j")
    assert changed(tmp_path, identity) == []
    assert not is_finished(tmp_path, identity, "another-judge")  # the judge keys the steering stage
    behaviour_judged_apart = {
        "extraction": {},
        "steering": {"judge": {"name": "j"}},
        "leakage": {},
        "behaviour": {"judge": "k"},
    }
    path.write_text(json.dumps({**document, "stages": behaviour_judged_apart}))
    assert not is_finished(tmp_path, identity, "j")  # ... and the behaviour stage
    # norms need only an audit run (every stage reused): other norms, or none, are not this audit's
    assert not is_finished(tmp_path, identity, "j", "12" * 32)
    path.write_text(json.dumps({**document, "norms": {"sha256": "12" * 32}}))
    assert is_finished(tmp_path, identity, "j", "12" * 32)
    assert not is_finished(tmp_path, identity, "j", "34" * 32) and not is_finished(tmp_path, identity, "j")
    path.write_text(json.dumps(document))
    others = {
        "sha256": dataclasses.replace(identity, model=dataclasses.replace(identity.model, sha256="ef" * 32)),
        "dtype": dataclasses.replace(identity, model=dataclasses.replace(identity.model, dtype="bfloat16")),
        "gguf_type": dataclasses.replace(identity, model=dataclasses.replace(identity.model, gguf_type="Q4_1")),
        "profile": dataclasses.replace(identity, profile="standard"),
        "seed": dataclasses.replace(identity, seed=1),
        "specification_sha256": dataclasses.replace(identity, specification_sha256="00" * 32),
        "steer_positions": dataclasses.replace(identity, steer_positions="generated"),
    }
    for field, other in others.items():
        assert not is_finished(tmp_path, other, "j")
        assert changed(tmp_path, other) == [field]
    # weights not known before loading (a hub ID): the audit itself decides
    hub = dataclasses.replace(identity, model=dataclasses.replace(identity.model, sha256=None, revision="main"))
    assert changed(tmp_path, hub) == []
    # partial, an `extract` run, or an audit from before the behaviour stage (resumed, it adds the stage)
    before_behaviour = {"stages": {"extraction": {}, "steering": {"judge": {"name": "j"}}, "leakage": {}}}
    for change in ({"complete": False}, {"stages": {"extraction": {}}}, before_behaviour):
        path.write_text(json.dumps({**document, **change}))
        assert not is_finished(tmp_path, identity, "j")
    path.write_text("{not json")
    assert not is_finished(tmp_path, identity, "j")
    assert not is_finished(tmp_path / "absent", identity, "j")


def test_the_page_renders_models_without_steering_and_models_that_failed() -> None:
    from emoaudit.study.render import render_study
    from emoaudit.results.study import (
        Correction,
        Executor,
        Gate,
        ModelEntry,
        Study,
        StudyAudit,
        audited_model,
        failed_model,
    )
    from emoaudit.study.study import families

    full: dict[Regime, int] = {"surgical": 3, "no_effect": 1, "repetitive_collapse": 2, "explosive": 1}
    models: list[ModelEntry] = [
        dataclasses.replace(audited_model("a", "a", "audited", 1.0, evidence(regimes=full)), corrected_p=0.02),
        dataclasses.replace(
            audited_model("b<i>", "b-1234abcd", "reused", None, evidence(regimes=None, leakage=None)), corrected_p=0.04
        ),
        failed_model("c", "c", 0.5, "cannot load 'c' <b>", "input"),
    ]
    claims = load_claims()
    subjects = [Subject(m.slug, m.evidence, m.corrected_p) for m in models]
    study = Study(
        "1.0",
        Executor("local", None, None, None),
        StudyAudit("s", "0" * 64, "quick", 0, "cpu", "float32", "j", "0" * 64, "0" * 64, "0"),
        models,
        Correction("Benjamini-Hochberg", "p", 2),
        families(models),
        evaluate_claims(claims, subjects),
        Gate(FailLevel.high, 2, "not audited: c"),
        "2026-01-01T00:00:00+00:00",
        "2026-01-01T00:00:00+00:00",
    )
    jsonschema.validate(to_dict(study), study_schema())
    page = render_study(study)
    assert "b&lt;i&gt;" in page and "&#39;c&#39; &lt;b&gt;" in page and "<b>" not in page and "<i>" not in page
    assert [f.models for f in study.families] == [["a"]]  # the model without steering is in no family
    assert page.count("<svg") == 5  # depth curves, method effects, held-out accuracy, regimes per model and family
    assert "not measured" in page  # the failed model, and the claims the second model has no stage for


@pytest.mark.parametrize(
    ("models", "extra", "message"),
    [
        ('models = [{reference = "smollm2-135m", slug = "study.json"}]', [], "the study's own study.json"),
        ('models = [{reference = "smollm2-135m", slug = "Study.HTML"}]', [], "the study's own study.html"),
        ('models = [{reference = "smollm2-135m", slug = "junit.xml"}]', ["--junit", "OUT/junit.xml"], "own junit.xml"),
        ('models = [{reference = "smollm2-135m", slug = "notes.txt"}]', [], "notes.txt, which is a file"),
    ],
)
def test_a_slug_that_names_a_file_of_the_study_is_refused_before_any_work(
    tmp_path: Path, models: str, extra: list[str], message: str
) -> None:
    """Issue 27, class 8: a slug equal to a file the study writes ran its audit, then failed with "Is a
    directory", and no study.json or study.html was written."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (tmp_path / "models.toml").write_text(models + "\n")
    args = [a.replace("OUT", str(out)) for a in extra]
    proc = run_cli("study", "--models", str(tmp_path / "models.toml"), "--out", str(out), "--profile", "quick", *args)
    assert proc.returncode == 2 and message in proc.stderr and len(proc.stderr.splitlines()) == 1, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]  # nothing audited, nothing written
    assert slug_for("study.json") == "study.json"  # a reference can spell it too: the check covers it


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again when the block ends: nothing listens there


def test_an_unreachable_ray_cluster_is_one_line_within_the_connect_timeout(tmp_path: Path) -> None:
    """Issue 27, class 5: `--ray-address 127.0.0.1:PORT` with nothing listening was still connecting after
    120 s (13 min 54 s and about 60 lines of Ray warnings before exit 2)."""
    from emoaudit.study.ray_workspace import check_reachable

    address = f"127.0.0.1:{_closed_port()}"
    with pytest.raises(EmoauditError, match=rf"^cannot reach the Ray cluster at {address} within 0.5 s"):
        check_reachable(address, 0.5)
    check_reachable("auto", 0.5)  # left to Ray
    args = ["--executor", "ray", "--ray-address", address, "--ray-connect-timeout", "1", "--profile", "quick"]
    proc = run_cli("study", "smollm2-135m", "--out", str(tmp_path / "out"), *args)
    assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1, proc.stderr
    assert f"cannot reach the Ray cluster at {address} within 1 s" in proc.stderr


def test_a_worker_folder_is_resumed_by_a_retry_and_removed_however_the_task_ends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 27, class 5: a killed worker was retried from scratch and leaked its temporary folder."""
    from emoaudit.pipeline.options import AuditOptions, audit_options
    from emoaudit.study import ray_worker
    from emoaudit.study.ray_workspace import study_root, worker_folder

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "node"))  # the node's temporary directory
    folder = worker_folder("x", "m")
    (folder / "stages").mkdir(parents=True)
    (folder / "stages" / "extraction.json").write_text("{}")  # what the killed attempt finished
    seen: list[list[str]] = []

    def audit(options: AuditOptions, console: object, progress: Progress) -> Attempt:
        seen.append(sorted(p.relative_to(options.out).as_posix() for p in options.out.rglob("*") if p.is_file()))
        (options.out / "stages" / "steering.json").write_text("{}")
        progress.kept("steering")
        (options.out / "report.html").write_text("<p>")
        return Attempt(1.0)

    monkeypatch.setattr(ray_worker, "attempt_audit", audit)
    earlier = pack_of(tmp_path / "earlier", {"results.json": "{}"})
    *kept, report = ray_worker.audit_in_worker(audit_options("m", tmp_path, {}), earlier, "x", "m")
    assert seen == [["stages/extraction.json"]]  # the retry resumed the killed attempt, not OUT's older copy
    assert not study_root("x").exists()  # its folder and the study's, removed
    # the killed attempt's stage may never have reached the driver: streamed with the first stage kept now
    assert [k.work for k in kept] == ["steering"] and names_in(kept[0].archive) == [
        "stages/extraction.json",
        "stages/steering.json",
    ]
    assert isinstance(report, ray_worker.WorkerReport) and names_in(report.archive) == ["report.html"]

    def endless(options: AuditOptions, console: object, progress: Progress) -> Attempt:
        (options.out / "stages").mkdir()
        (options.out / "stages" / "steering.json").write_text("{}")
        progress.kept("steering")
        try:
            with progress.stage("steering", 1) as advance:
                while True:  # a stage at work, its loop advancing its progress line, until stopped there
                    (options.out / "noise.jsonl").write_text("")
                    advance(0)
                    time.sleep(0.01)
        except Exception as exc:  # as attempt_audit does
            return Attempt(0.0, str(exc), "internal")

    monkeypatch.setattr(ray_worker, "attempt_audit", endless)
    task = ray_worker.audit_in_worker(audit_options("m", tmp_path, {}), earlier, "x", "m")
    assert next(task).work == "steering"  # type: ignore[union-attr]
    with pytest.raises(KeyboardInterrupt):
        task.throw(KeyboardInterrupt)  # how Ray cancels a task; a worker told to exit raises SystemExit there
    assert not study_root("x").exists()  # the audit stopped writing before its folder was removed
    assert not [t for t in threading.enumerate() if t.name == "emoaudit audit m"]  # it stopped, not only its folder


def test_an_interrupted_tasks_finished_stages_are_salvaged_into_out(tmp_path: Path) -> None:
    folder = tmp_path / "worker"
    (folder / "stages").mkdir(parents=True)
    (folder / "stages" / "extraction.json").write_text('{"done": true}')
    (folder / "stages" / ".steering.json.abc.tmp").write_text("half")  # being written: left out
    salvage(folder, tmp_path / "out" / "m")
    assert [p.name for p in (tmp_path / "out" / "m" / "stages").iterdir()] == ["extraction.json"]
    salvage(tmp_path / "gone", tmp_path / "out" / "n")  # a task that never started
    assert not (tmp_path / "out" / "n").exists()


def names_in(archive: bytes | None) -> list[str]:
    assert archive is not None
    with tarfile.open(fileobj=io.BytesIO(archive)) as opened:
        return sorted(opened.getnames())


def pack_of(directory: Path, files: dict[str, str]) -> bytes:
    directory.mkdir(parents=True)
    for name, text in files.items():
        (directory / name).write_text(text)
    archive = pack(directory)
    assert archive is not None
    return archive


def test_the_summary_never_cuts_a_slug_on_a_narrow_terminal(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two checkpoints of one family differ late in their slugs ("qwen2.5-coder-0.5b", "-1.5b"): an 80-column
    terminal once showed both as "qwen2.5-…"."""
    from types import SimpleNamespace

    from emoaudit.cli.study import _print_summary

    monkeypatch.setenv("COLUMNS", "80")
    slugs = ["qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b", "gemma3-270m-with-a-long-checkpoint-name-step-1000"]
    models = [SimpleNamespace(slug=s, evidence=None, error_kind="load") for s in slugs]
    _print_summary(SimpleNamespace(models=models, claims=[]))  # type: ignore[arg-type]
    rows = capsys.readouterr().out.splitlines()
    # The model column's cells, each slug's pieces joined back in reading order.
    cells = "".join(line.split("│")[1].strip() for line in rows if line.startswith("│"))
    assert all(s in cells for s in slugs) and "…" not in cells


def test_the_study_page_says_not_measured_where_a_check_measured_nothing() -> None:
    """A model's check that measured nothing (here, semantic entanglement without translations) is shown as
    "not measured" on the study page, never as a pass, as in the model's own report."""
    from emoaudit.results.common import NOT_MEASURED
    from emoaudit.results.convert import from_dict
    from emoaudit.results.study import Study
    from emoaudit.study.render import render_study

    study = from_dict(Study, json.loads((REPO / "tests" / "data" / "tiny-study.json").read_text()), "tiny-study")
    model = next(m for m in study.models if m.evidence is not None)
    assert model.evidence is not None
    checks = [
        dataclasses.replace(c, failed=False, detail="not measured: no translations", evidence={NOT_MEASURED: True})
        if c.id == "semantic_entanglement"
        else c
        for c in model.evidence.findings
    ]
    evidence = dataclasses.replace(model.evidence, findings=checks)
    models = [dataclasses.replace(m, evidence=evidence) if m is model else m for m in study.models]
    page = render_study(dataclasses.replace(study, models=models))
    assert "not measured</span> not measured: no translations" in page
