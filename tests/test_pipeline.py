"""`emoaudit scan`, `extract` and `steer` end to end on the real SmolLM2, through the command line."""

import json
import math
import re
import subprocess
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from emoaudit.model.load import load_model
from emoaudit.model.loaded import LoadedModel
from emoaudit.spec import load_spec
from tests.conftest import run_cli
from emoaudit.results.reading import read_results


@pytest.mark.real
def test_scan_writes_results_vectors_and_stories(quick_run: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    out, proc = quick_run
    assert proc.returncode == 0, proc.stderr
    assert "extraction: done in an earlier run" in proc.stderr
    results = read_results(out / "results.json")  # validates against the JSON Schema, then types it
    stages = results.stages
    assert results.complete is True and None not in (stages.extraction, stages.steering, stages.leakage)
    assert results.model.sha256 == "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
    stage = stages.extraction
    assert stage is not None
    n_layers = results.model.n_layers
    layer = stage.emotion_layer
    assert 0 <= layer.index < n_layers and len(layer.score) == n_layers
    for method in ("comprehension", "generation"):
        analysis = stage.methods[method]
        curves = vars(analysis.curves)
        # A real model's layers all separate: no layer's ratio is undefined, so no reason is recorded.
        assert curves.pop("undefined") is None
        for name, curve in curves.items():
            assert len(curve) == n_layers and None not in curve, name
        assert analysis.cosine_floor == pytest.approx(-1 / 19)
        assert len(analysis.heldout.accuracy) == n_layers
        with safe_open(str(out / "vectors" / f"{method}.safetensors"), framework="pt") as f:
            assert f.get_tensor("calm").shape == (n_layers, 576)
            meta = f.metadata()
            assert meta["method"] == method and meta["operation"] == "add"
            assert json.loads(meta["model"])["sha256"] == results.model.sha256
    comparison = stage.comparison
    assert 0 <= comparison.mann_whitney_p <= 1 and comparison.layer == layer.index
    # Comprehension vectors read our passages; they must separate the emotions above the shuffled baseline.
    curves = stage.methods["comprehension"].curves
    assert max(curves.probe_accuracy) > 3 * max(curves.probe_accuracy_shuffled)
    stories = [json.loads(line) for line in (out / "stories.jsonl").read_text().splitlines()]
    # Four prompts for each of the 21 labels; a story of under a few tokens is left out (generation_activations),
    # and every label keeps some: which short story a seed gives changes with the batches' make-up.
    assert 21 * 3 <= len(stories) <= 21 * 4 and all(s["text"].strip() for s in stories)
    assert {s["label"] for s in stories} == set(load_spec().labels)
    # The peak holds the model's weights on top of the runtime.
    memory, model = results.resources, results.model
    assert memory is not None and stage.resources is not None
    weight_bytes = model.parameters * torch.finfo(getattr(torch, model.dtype)).bits // 8
    assert memory.peak_cuda_bytes is None and memory.runtime_rss_bytes is not None and memory.peak_rss_bytes
    assert memory.runtime_rss_bytes > 100e6 and memory.peak_rss_bytes - memory.runtime_rss_bytes > 0.8 * weight_bytes
    # This run reused the extraction: the audit's peak counts the run that made it too.
    assert memory.peak_rss_bytes >= (stage.resources.peak_rss_bytes or 0) > 0


@pytest.mark.real
def test_rerun_resumes_and_a_different_audit_is_refused(
    quick_run: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    out, first = quick_run
    assert first.returncode == 0, first.stderr
    before = json.loads((out / "results.json").read_text())
    again = run_cli(
        "scan", "smollm2-135m", "--profile", "quick", "--out", str(out), "--seed", "1", "--fail-on", "never"
    )
    assert again.returncode == 0 and "resuming" in again.stderr and "reusing" in again.stderr
    after = json.loads((out / "results.json").read_text())
    assert after["stages"] == before["stages"] and after["timings"] == before["timings"]
    other = run_cli("extract", "smollm2-135m", "--profile", "quick", "--out", str(out), "--seed", "2")
    assert other.returncode == 2 and "different seed" in other.stderr


@pytest.mark.real
def test_steering_sweep_is_judged_and_its_perplexity_ratios_recompute(
    quick_run: tuple[Path, subprocess.CompletedProcess[str]], smollm2: LoadedModel
) -> None:
    out, proc = quick_run
    assert proc.returncode == 0, proc.stderr
    results = json.loads((out / "results.json").read_text())
    steering = results["stages"]["steering"]
    summary = steering["summary"]
    assert (
        steering["judge"]["name"] == load_spec().steering.judge == "mpnet-base-v2"
        and steering["judge"]["validation"]["accuracy"] > 0.3
    )
    assert summary["trials"] == 4 * 3 * 5 and 0 <= summary["success_rate"] <= 1
    low, high = (summary["success_by_multiplier"][k] for k in ("0.25", "4.0"))
    # Surgical within the calibrated range (multipliers <= 1) more often than at four times it, where most degrade.
    calibrated = ("0.25", "0.5", "1.0")
    totals = {m: sum(cell[m]["surgical"] for cell in summary["regime_map"].values()) for m in (*calibrated, "4.0")}
    degraded = sum(
        cell["4.0"]["repetitive_collapse"] + cell["4.0"]["explosive"] for cell in summary["regime_map"].values()
    )
    assert sum(totals[m] for m in calibrated) > totals["4.0"] and degraded >= 8, summary["regime_map"]
    assert low is not None and high is not None
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    controls = steering["controls"]["directions"] * 3 * 5  # random directions x scenarios x strengths
    assert len(samples) == 3 + 60 + controls and sum(s["control"] == "random" for s in samples) == controls
    assert {s["regime"] for s in samples if s["emotion"]} <= set(summary["regime_totals"])
    baselines = {s["scenario"]: s for s in samples if s["emotion"] is None and s["control"] is None}
    # Recomputed from samples.jsonl alone, with the model in the dtype the scan chose (results.json says which).
    # In bfloat16 another batch composition rounds differently: log ratios then agree to ~0.03 nats (measured).
    dtype = results["model"]["dtype"]
    tolerance = 1e-3 if dtype == "float32" else 0.05
    lm = smollm2 if dtype == "float32" else load_model("smollm2-135m", device="cpu", dtype=dtype)
    tok = lm.tokenizer
    from emoaudit.model.runtime import chat_prompt_ids
    from emoaudit.steering.perplexity import continuation_nll

    for sample in [s for s in samples if s["emotion"]][::7]:
        base = baselines[sample["scenario"]]
        prompt = chat_prompt_ids(lm, sample["prompt"])
        ids = [tok(t, add_special_tokens=False)["input_ids"] for t in (sample["text"], base["text"])]
        steered_nll, base_nll = continuation_nll(lm, [prompt, prompt], ids)
        if sample["perplexity_ratio"] is not None:
            assert steered_nll - base_nll == pytest.approx(math.log(sample["perplexity_ratio"]), abs=tolerance)


@pytest.mark.real
def test_steer_prints_both_texts_from_stored_vectors(quick_run: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    out, _ = quick_run
    proc = run_cli(
        "steer",
        "smollm2-135m",
        "Describe the sea.",
        "--emotion",
        "angry",
        "--strength",
        "0.5",
        "--vectors",
        str(out),
        "--max-new-tokens",
        "16",
    )
    assert proc.returncode == 0, proc.stderr
    assert "unsteered" in proc.stdout and "steered toward angry" in proc.stdout
    bad = run_cli("steer", "smollm2-135m", "Hi", "--emotion", "smug", "--strength", "1", "--vectors", str(out))
    assert bad.returncode == 2 and "unknown emotion" in bad.stderr


@pytest.mark.real
def test_leakage_rates_agree_with_an_independent_han_count(
    quick_run: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    out, proc = quick_run
    assert proc.returncode == 0, proc.stderr
    leakage = json.loads((out / "results.json").read_text())["stages"]["leakage"]
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    han = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
    for sample in samples:
        letters = sum(c.isalpha() for c in sample["text"])
        expected = len(han.findall(sample["text"])) / letters if letters else 0.0
        assert sample["leakage"]["scripts"].get("Han", 0.0) == pytest.approx(expected, abs=1e-4)
    for cell in leakage["cells"]:
        texts = [s for s in samples if s["emotion"] == cell["emotion"] and s["multiplier"] == cell["multiplier"]]
        rate = sum(s["leakage"]["foreign_share"] > leakage["thresholds"]["text_share"] for s in texts) / len(texts)
        assert cell["output_rate"] == pytest.approx(rate)
    assert leakage["severity"] in ("info", "low", "medium", "high")
