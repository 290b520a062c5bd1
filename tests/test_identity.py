"""An audit's identity is its content, never a spelling (issue 26, "one identity"; issue 27, class 1): the
path typed is recorded, never compared; new weights in the same folder, another dtype or another judge is
another audit, for resuming and for a study's reuse alike. Tiny random models, the tiny study spec."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from rich.console import Console
from safetensors.torch import load_file, save_file

from emoaudit.api import audit
from emoaudit.errors import EmoauditError
from emoaudit.results.common import FailLevel
from emoaudit.model.source import directory_sha256, model_content
from emoaudit.steering.judge import FixedJudge
from emoaudit.study.run import StudyRequest, run_study
from emoaudit.study.targets import study_targets
from emoaudit.pipeline.options import audit_options
from tests.conftest import REPO

SPEC = REPO / "tests" / "data" / "study" / "tiny.toml"
LABELS = ["happy", "sad", "calm", "angry", "neutral"]


def judge(name: str) -> FixedJudge:
    return FixedJudge({label: [label] for label in LABELS}, name=name)


def run_api(model: str, out: Path, name: str = "judge-a", **options: object) -> Console:
    console = Console(record=True, width=300)
    audit(model, "quick", out, judge=judge(name), console=console, spec_path=SPEC, device="cpu", **options)
    return console


def new_weights(folder: Path) -> None:
    """Other weights under the same names, sizes and modification times."""
    for path in folder.glob("*.safetensors"):
        stat = path.stat()
        tensors = {k: v + 0.01 * torch.ones_like(v) for k, v in load_file(path).items()}
        save_file(tensors, path, metadata={"format": "pt"})
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


@pytest.fixture()
def checkpoint(tiny_dir: Callable[[str], Path], tmp_path: Path) -> Path:
    folder = tmp_path / "models" / "llama"
    shutil.copytree(tiny_dir("llama"), folder)
    return folder


def test_the_same_checkpoint_typed_another_way_resumes(
    checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    run_api("models/llama/", out, dtype="float32", stages=("extraction",))
    again = run_api(str(checkpoint.resolve()), out, dtype="float32", stages=("extraction",)).export_text()
    assert "resuming" in again and "extraction: done in an earlier run" in again
    record = json.loads((out / "run.json").read_text())
    assert record["model_reference"] == str(checkpoint.resolve())  # recorded as typed, never compared
    assert record["identity"]["model"]["sha256"] == directory_sha256(checkpoint)


def test_new_weights_or_another_dtype_in_the_same_folder_is_another_audit(checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run_api(str(checkpoint), out, dtype="float32", stages=("extraction",))
    with pytest.raises(EmoauditError, match=r"holds another audit \(different dtype\)"):
        run_api(str(checkpoint), out, dtype="bfloat16", stages=("extraction",))
    new_weights(checkpoint)
    with pytest.raises(EmoauditError, match=r"holds another audit \(different sha256\)"):
        run_api(str(checkpoint), out, dtype="float32", stages=("extraction",))


def test_every_file_that_loads_is_part_of_the_identity(checkpoint: Path) -> None:
    before = model_content(str(checkpoint), "cpu", "float32", None)
    config = json.loads((checkpoint / "config.json").read_text())
    (checkpoint / "config.json").write_text(json.dumps({**config, "rms_norm_eps": 1e-3}))
    assert model_content(str(checkpoint), "cpu", "float32", None).sha256 != before.sha256
    (checkpoint / "README.md").write_text("notes do not load")
    after = model_content(str(checkpoint), "cpu", "float32", None)
    (checkpoint / "README.md").write_text("other notes")
    assert model_content(str(checkpoint), "cpu", "float32", None) == after


def study(
    targets: list[str], out: Path, judge_name: str, dtype: str, console: Console, norms: Path | None = None
) -> list[str]:
    values = {"profile": "quick", "spec_path": SPEC, "device": "cpu", "dtype": dtype, "norms": norms}
    options = audit_options("", out, values, judge=judge(judge_name))
    result = run_study(StudyRequest(study_targets(targets, None), out, options, None, FailLevel.never), console)
    return [m.status for m in result.models]


def test_a_study_reuses_only_the_same_audit(checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "study"
    console = Console(record=True, width=300)
    assert study([str(checkpoint)], out, "judge-a", "float32", console) == ["audited"]
    assert study([str(checkpoint)], out, "judge-a", "float32", console) == ["reused"]
    console.export_text()

    # norms given to the study: each model's audit runs again for them alone (every stage reused), then is reused
    norms = REPO / "tests" / "data" / "norms-nrc-vad.txt"
    assert study([str(checkpoint)], out, "judge-a", "float32", console, norms) == ["audited"]
    assert console.export_text().count("done in an earlier run, reusing") == 3
    assert json.loads(next(out.glob("*/results.json")).read_text())["norms"]["layout"] == "nrc-vad"
    assert study([str(checkpoint)], out, "judge-a", "float32", console, norms) == ["reused"]
    console.export_text()

    # another judge: the steering stage (and the leakage stage, which reads it) run again; extraction is reused
    assert study([str(checkpoint)], out, "judge-b", "float32", console) == ["audited"]
    text = console.export_text()
    assert "extraction: done in an earlier run" in text and "with the judge judge-a; running it again" in text
    results = json.loads(next(out.glob("*/results.json")).read_text())
    assert results["stages"]["steering"]["judge"]["name"] == "judge-b"

    # another dtype, then new weights in the same folder: audited again, never "reused"
    assert study([str(checkpoint)], out, "judge-b", "bfloat16", console) == ["audited"]
    assert "(dtype); auditing it again" in console.export_text()
    new_weights(checkpoint)
    assert study([str(checkpoint)], out, "judge-b", "bfloat16", console) == ["audited"]
    assert "(sha256); auditing it again" in console.export_text()
    record = json.loads(next(out.glob("*/run.json")).read_text())
    assert record["identity"]["model"]["sha256"] == directory_sha256(checkpoint)


@pytest.mark.real
def test_a_gguf_files_quantisation_type_is_read_from_its_header() -> None:
    """SmolLM2's packaged file is Q4_1 (its name says so; the header is what is read)."""
    content = model_content("smollm2-135m", "cpu", "float32", None)
    assert content.gguf_type == "Q4_1" and content.sha256 is not None


def test_a_file_that_is_not_gguf_has_no_gguf_type(tmp_path: Path) -> None:
    from emoaudit.model.gguf import gguf_type

    path = tmp_path / "fake.gguf"
    path.write_bytes(b"not a gguf header at all")
    assert gguf_type(path) is None
