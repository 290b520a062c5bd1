"""`emoaudit extract` end to end on the real SmolLM2, through the command line."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors import safe_open

from emoaudit.loading import LoadedModel


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "emoaudit", *args], capture_output=True, text=True,
                          env={**os.environ}, timeout=1800)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory, smollm2: LoadedModel) -> tuple[Path, subprocess.CompletedProcess[str]]:
    out = tmp_path_factory.mktemp("extract")
    return out, run_cli("extract", "smollm2-135m", "--profile", "quick", "--out", str(out), "--seed", "1")


@pytest.mark.real
def test_extract_writes_results_vectors_and_stories(quick_run: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    out, proc = quick_run
    assert proc.returncode == 0, proc.stderr
    results = json.loads((out / "results.json").read_text())
    assert results["model"]["sha256"] == "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
    stage = results["stages"]["extraction"]
    n_layers = results["model"]["n_layers"]
    layer = stage["emotion_layer"]
    assert 0 <= layer["index"] < n_layers and len(layer["score"]) == n_layers
    for method in ("comprehension", "generation"):
        analysis = stage["methods"][method]
        for name, curve in analysis["curves"].items():
            assert len(curve) == n_layers, name
        assert analysis["cosine_floor"] == pytest.approx(-1 / 19)
        assert len(analysis["heldout"]["accuracy"]) == n_layers
        with safe_open(str(out / "vectors" / f"{method}.safetensors"), framework="pt") as f:
            assert f.get_tensor("calm").shape == (n_layers, 576)
            meta = f.metadata()
            assert meta["method"] == method and meta["operation"] == "add"
            assert json.loads(meta["model"])["sha256"] == results["model"]["sha256"]
    comparison = stage["comparison"]
    assert 0 <= comparison["mann_whitney_p"] <= 1 and comparison["layer"] == layer["index"]
    # Comprehension vectors read our passages; they must separate the emotions above the shuffled baseline.
    curves = stage["methods"]["comprehension"]["curves"]
    assert max(curves["probe_accuracy"]) > 3 * max(curves["probe_accuracy_shuffled"])
    stories = [json.loads(line) for line in (out / "stories.jsonl").read_text().splitlines()]
    assert len(stories) == 21 * 4 and all(s["text"].strip() for s in stories)


@pytest.mark.real
def test_rerun_resumes_and_a_different_audit_is_refused(quick_run: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    out, first = quick_run
    assert first.returncode == 0, first.stderr
    before = json.loads((out / "results.json").read_text())["stages"]["extraction"]
    again = run_cli("extract", "smollm2-135m", "--profile", "quick", "--out", str(out), "--seed", "1")
    assert again.returncode == 0 and "resuming" in again.stderr and "reusing" in again.stderr
    assert json.loads((out / "results.json").read_text())["stages"]["extraction"] == before
    other = run_cli("extract", "smollm2-135m", "--profile", "quick", "--out", str(out), "--seed", "2")
    assert other.returncode == 2 and "different seed" in other.stderr
