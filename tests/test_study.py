"""`emoaudit study` end to end on tiny random models: on a local Ray instance with a model that fails to
load, then rerun in one process, reusing what the first run finished."""

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from xml.etree import ElementTree as ET

import jsonschema
import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification

from emoaudit.results.reading import read_json
from emoaudit.export.manifest import verify
from emoaudit.results.common import SEVERITIES
from emoaudit.results.schema import study_schema
from tests.conftest import REPO, run_cli, tiny_tokenizer

SPEC = REPO / "tests" / "data" / "study" / "tiny.toml"
LABELS = ["happy", "sad", "calm", "angry", "neutral"]  # the tiny specification's emotions, then its reference
PAYLOAD = "<img src=x onerror=alert(1)>"
CSP = (
    '<meta http-equiv="Content-Security-Policy" '
    "content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">"
)


@pytest.fixture(scope="module")
def judge_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random emotion classifier over the tiny specification's labels: a judge any worker can load."""
    directory = tmp_path_factory.mktemp("judge")
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=384,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=512,
        id2label=dict(enumerate(LABELS)),
        label2id={label: i for i, label in enumerate(LABELS)},
    )
    BertForSequenceClassification(config).save_pretrained(directory)
    tiny_tokenizer().save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def models(tiny_dir: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Two tiny models of two families, and the Llama's weights under a config.json that is not JSON, in a
    folder whose name is markup."""
    broken = tmp_path_factory.mktemp("broken") / f"broken{PAYLOAD}"
    shutil.copytree(tiny_dir("llama"), broken)
    (broken / "config.json").write_text("{not json")
    return [str(tiny_dir("llama")), str(tiny_dir("qwen2")), str(broken)]


def study_args(out: Path, judge: Path) -> list[str]:
    return ["--out", str(out), "--spec", str(SPEC), "--profile", "quick", "--judge", str(judge), "--device", "cpu"]


@pytest.fixture(scope="module")
def ray_study(
    models: list[str], judge_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    out = tmp_path_factory.mktemp("study")
    proc = run_cli(
        "study",
        *models,
        *study_args(out, judge_dir),
        "--dtype",
        "float32",
        "--executor",
        "ray",
        "--fail-on",
        "never",
        "--junit",
        str(out / "junit.xml"),
    )
    return out, proc


def test_a_ray_study_audits_each_model_and_reports_the_one_that_fails(
    ray_study: tuple[Path, subprocess.CompletedProcess[str]], models: list[str]
) -> None:
    out, proc = ray_study
    assert proc.returncode == 2, proc.stderr  # one model could not be audited
    assert "Traceback" not in proc.stderr
    failed = [line for line in proc.stderr.splitlines() if "failed:" in line]
    assert len(failed) == 1 and models[2] in failed[0] and "not a valid JSON file" in failed[0]
    study = json.loads((out / "study.json").read_text())
    assert study["executor"] == {"name": "ray", "ray_address": None, "cpus_per_model": 1.0, "gpus_per_model": 0.0}
    assert [m["reference"] for m in study["models"]] == models
    assert [m["status"] for m in study["models"]] == ["audited", "audited", "failed"]
    broken = study["models"][2]
    assert broken["error_kind"] == "input" and "not a valid JSON file" in broken["error"]
    assert broken["evidence"] is None and not (out / broken["slug"] / "results.json").exists()
    for model in study["models"][:2]:
        # The worker's outputs reached OUT/<slug>/ whole: a complete, valid audit.
        results = read_json(out / model["results"])
        assert results["complete"] is True and set(results["stages"]) == {"extraction", "steering", "leakage"}
        assert model["evidence"]["n_layers"] == results["model"]["n_layers"] == 3
        assert model["evidence"]["model_type"] == results["model"]["model_type"]
        layer = results["stages"]["extraction"]["emotion_layer"]
        assert model["evidence"]["relative_depth"] == layer["relative_depth"] == layer["index"] / 2
        assert model["evidence"]["regimes"] == results["stages"]["steering"]["summary"]["regime_totals"]
        assert (out / model["report"]).is_file()
        assert verify(out / model["slug"]) == []  # every file the worker wrote, as its manifest lists it
    suites = ET.parse(out / "junit.xml").getroot().findall("testsuite")
    assert len(suites) == 3 and suites[2].find("testcase/error") is not None
    assert [len(s.findall("testcase")) for s in suites[:2]] == [
        len(m["evidence"]["findings"]) for m in study["models"][:2]
    ]


def test_study_json_follows_its_schema_and_the_page_escapes_model_strings(
    ray_study: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    out, _ = ray_study
    document = json.loads((out / "study.json").read_text())
    jsonschema.validate(document, study_schema())
    broken = json.loads(json.dumps(document))
    broken["models"][0]["status"] = "failed"  # a failed model without its error
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, study_schema())
    page = (out / "study.html").read_text()
    report = (out / document["models"][0]["report"]).read_text()
    assert CSP in page and CSP in report
    assert PAYLOAD not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "<script" not in page
    for model in document["models"][:2]:
        assert model["slug"] in page
    assert page.count("<svg") >= 4  # depth curves, method effects, held-out accuracy, regimes


def test_a_rerun_reuses_finished_audits_and_gates_on_their_findings(
    ray_study: tuple[Path, subprocess.CompletedProcess[str]], models: list[str], judge_dir: Path
) -> None:
    out, _ = ray_study
    before = json.loads((out / "study.json").read_text())
    # float32 was the first run's dtype; "auto" may resolve to another, so the same is asked for.
    proc = run_cli("study", *models[:2], *study_args(out, judge_dir), "--dtype", "float32", "--fail-on", "low")
    study = json.loads((out / "study.json").read_text())
    assert study["executor"]["name"] == "local"
    assert [m["status"] for m in study["models"]] == ["reused", "reused"]
    assert proc.stderr.count("finished in an earlier run") == 2 and "auditing" not in proc.stderr
    assert [m["evidence"] for m in study["models"]] == [m["evidence"] for m in before["models"][:2]]
    reaches_low = any(
        f["failed"] and SEVERITIES.index(f["severity"]) >= SEVERITIES.index("low")
        for m in study["models"]
        for f in m["evidence"]["findings"]
    )
    assert proc.returncode == study["gate"]["status"] == int(reaches_low), proc.stderr
