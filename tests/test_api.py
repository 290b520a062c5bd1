"""The Python API: `emoaudit.audit` (a whole audit of a tiny random model) and `EmotionVectors.steer`
on plain transformers models, tiny and (marked real) SmolLM2."""

import dataclasses
import io
import json
import subprocess
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from rich.console import Console
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

import emoaudit
from emoaudit.pipeline.options import STAGES
from emoaudit.results.convert import to_dict
from emoaudit.results.common import SEVERITIES, Check
from emoaudit.results.document import Results, Stages
from emoaudit.results.reading import read_results
from emoaudit.capture.stimuli import comprehension_activations
from emoaudit.errors import EmoauditError
from emoaudit.model import registry
from emoaudit.model.architectures import residual_stream
from emoaudit.model.load import load_model
from emoaudit.model.loaded import LoadedModel
from emoaudit.report.render import render
from emoaudit.spec import load_spec
from emoaudit.steering.judge import validate
from emoaudit.results.steering import REGIMES
from emoaudit.report.claims import load_claims, paper_claims
from emoaudit.report.evidence import evidence_of
from emoaudit.vectors import EmotionVectors
from tests.conftest import TINY_SIZES, build_tiny, run_cli

TINY_SPEC_PATH = Path(__file__).parent / "data" / "tiny-audit.toml"
TINY = load_spec(TINY_SPEC_PATH)
PROMPT = "The sea was grey and"


def eos_free_tiny(directory: Path) -> Path:
    """A tiny random GPT-NeoX that never ends a text, so that every story reaches the length generation-based
    extraction needs: feature 0 of its final normed state is a constant 1 (LayerNorm weight 0, bias 1), and
    the EOS row of its unembedding weighs that feature -30, so the EOS logit sits ~30 below the others."""
    build_tiny("gpt_neox", directory)
    model = AutoModelForCausalLM.from_pretrained(directory)
    with torch.no_grad():
        norm = model.gpt_neox.final_layer_norm
        norm.weight[0], norm.bias[0] = 0.0, 1.0
        model.get_output_embeddings().weight[model.config.eos_token_id, 0] = -30.0
    model.save_pretrained(directory)
    return directory


def test_import_loads_nothing_heavy_and_the_api_is_lazy() -> None:
    code = (
        "import sys, emoaudit; assert callable(emoaudit.audit); "
        "print(sorted(m for m in ('torch', 'transformers', 'numpy') if m in sys.modules))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "[]", proc.stderr
    assert emoaudit.EmotionVectors is EmotionVectors and {"audit", "EmotionVectors", "FixedJudge"} <= set(dir(emoaudit))
    with pytest.raises(AttributeError):
        _ = emoaudit.no_such_thing
    with pytest.raises(TypeError, match="colour"):
        emoaudit.audit("smollm2-135m", colour="red")


def test_a_whole_audit_of_a_tiny_model_through_the_python_api(tmp_path: Path) -> None:
    model = eos_free_tiny(tmp_path / "model")
    out = tmp_path / "out"
    judge = emoaudit.FixedJudge({e.name: e.forbidden for e in TINY.emotions} | {TINY.reference: ()})
    options = dict(judge=judge, spec_path=str(TINY_SPEC_PATH), device="cpu", dtype="float32", seed=3)
    log = io.StringIO()
    results = emoaudit.audit(str(model), "tiny", out, console=Console(file=log), **options)
    findings = results.findings or []

    read_results(out / "results.json")  # validates against the JSON Schema
    document = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert document == json.loads(json.dumps(to_dict(results)))
    assert document["complete"] is True and list(document["stages"]) == list(STAGES)
    assert all((out / "stages" / f"{stage}.json").is_file() for stage in STAGES)
    assert [f["id"] for f in document["findings"]] == [c.id for c in findings] and findings
    report = (out / "report.html").read_text(encoding="utf-8")
    assert report.count("fixed-keywords") >= 1 and "Judge accuracy: top-1" in report and "noise floor" in report

    profile = TINY.profile("tiny")
    stories = (out / "stories.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(stories) == len(TINY.labels) * profile.stories_per_label  # no story ended early
    steering = document["stages"]["steering"]
    assert steering["judge"]["name"] == "fixed-keywords" and steering["judge"]["validation"]["n"] == sum(
        map(len, TINY.heldout.values())
    )
    # The judge on the model's own stories, each labelled by the emotion its prompt asked for.
    on_stories = steering["judge"]["stories"]
    written = [json.loads(line) for line in stories]
    by_label = {e: [s["text"] for s in written if s["label"] == e] for e in TINY.emotion_names}
    assert on_stories["n"] == len(TINY.emotions) * profile.stories_per_label
    assert on_stories == json.loads(json.dumps(to_dict(validate(judge, by_label))))
    assert "On the model's own stories" in report
    scenarios = len({sc.kind for sc in TINY.scenarios}) * profile.steering_scenarios_per_kind
    steered = scenarios * profile.steering_emotions * len(TINY.steering.multipliers)
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text(encoding="utf-8").splitlines()]
    controls = TINY.steering.control_directions * scenarios * len(TINY.steering.multipliers)
    assert len(samples) == scenarios + steered + controls and steering["summary"]["trials"] == steered
    assert {s["emotion"] for s in samples} == {None, *steering["emotions"]}
    assert all(list(s["judge"]) == TINY.labels and "leakage" in s for s in samples)
    assert {s["regime"] for s in samples if s["emotion"]} <= set(REGIMES)
    extraction = document["stages"]["extraction"]
    layer = extraction["emotion_layer"]["index"]
    for method in extraction["methods"].values():
        assert set(method["heldout_sets"]) == {"messages", "zh"}
        assert method["embedding"]["score_above"] == pytest.approx(
            method["score"][layer] - method["embedding"]["score"]
        )
    variants = extraction["generation_variants"]
    exported = extraction["methods"]["generation"]["heldout"]["accuracy"][layer]
    assert variants["variants"][variants["exported"]]["at_emotion_layer"]["heldout"] == exported
    assert extraction["story_keywords"]["n_stories"] == len(TINY.emotions) * profile.stories_per_label
    generation = emoaudit.EmotionVectors.load(out / "vectors" / "generation.safetensors")
    assert str(generation.origin.stories_read).startswith(variants["exported"])
    assert generation.origin.layer == layer and generation.origin.method == "generation"
    # The random-direction controls: judged and measured like the steered rows, at every scenario and strength.
    random = [s for s in samples if s["control"] == "random"]
    assert len(random) == controls == steering["controls"]["trials"] and all(s["emotion"] is None for s in random)
    assert all(s["regime"] in REGIMES and s["perplexity_ratio"] is not None for s in random)
    assert {(s["scenario"], s["multiplier"]) for s in random} == {
        (sc["id"], m) for sc in steering["scenarios"] for m in steering["multipliers"]
    }
    baseline = [s for s in samples if s["emotion"] is None and s["control"] is None]
    assert len(baseline) == scenarios and all(s["strength"] == 0 and s["regime"] is None for s in baseline)
    # Semantic entanglement: every language of the tiny translations, and its own check among the findings.
    semantic = document["stages"]["leakage"]["semantic"]
    assert list(semantic["languages"]) == list(TINY.translations) and semantic["control_seed"] == 3
    assert semantic["multipliers"] == [m for m in steering["multipliers"] if m <= TINY.steering.calibrated_range]
    assert "semantic_entanglement" in [c.id for c in findings] and "own words in other languages" in report
    # only the tiny vocabulary's own words ("en") have usable first tokens: a pair per steered emotion
    assert semantic["pairs"] == len(steering["emotions"]) and list(semantic["by_emotion"]) == steering["emotions"]
    assert all(semantic["languages"][lang]["emotions"] == {} for lang in ("zh", "es", "ru"))
    assert "excess (nats)" in report
    cell = steering["summary"]["statistics"]["cells"][steering["emotions"][0]][str(steering["multipliers"][0])]
    assert {"ci_low", "ci_high", "control_rate"} <= set(cell) and steering["steer_positions"] == "all"
    noise = steering["judge"]["noise_floor"]
    variants = [json.loads(line) for line in (out / noise["samples"]).read_text(encoding="utf-8").splitlines()]
    draws, paraphrases = TINY.steering.noise_draws, sum(len(s.paraphrases) for s in TINY.scenarios)
    assert (
        noise["comparisons"]
        == {"sampled": scenarios * draws, "paraphrase": paraphrases}
        == {source: sum(v["source"] == source for v in variants) for source in ("sampled", "paraphrase")}
    )
    base = {s["scenario"]: s["judge"] for s in samples if s["emotion"] is None and s["control"] is None}
    changes = [abs(v["judge"][label] - base[v["scenario"]][label]) for v in variants for label in TINY.labels]
    assert noise["overall"] == pytest.approx(float(np.quantile(changes, 0.95)))
    assert set(noise["per_label"]) == set(TINY.labels) and 0 <= noise["margin_rate"] <= 1
    vectors = emoaudit.EmotionVectors.load(out)
    assert vectors.emotions == TINY.emotion_names
    assert vectors.emotion_layer == document["stages"]["extraction"]["emotion_layer"]["index"]
    check_behaviour(document, out, report, findings)

    log = io.StringIO()
    again = json.loads(
        json.dumps(to_dict(emoaudit.audit(str(model), "tiny", out, console=Console(file=log), **options)))
    )
    assert "resuming the audit" in log.getvalue()
    assert all(f"{stage}: done in an earlier run" in log.getvalue() for stage in STAGES)
    assert again["stages"] == document["stages"] and again["timings"] == document["timings"]
    assert again["claims"] == document["claims"]  # from the reused stages
    check_claims(results, out, tmp_path)


def check_behaviour(document: dict[str, Any], out: Path, report: str, findings: list[Check]) -> None:
    """The behaviour stage of a whole audit: every probe unsteered, toward the profile's emotions at the steering
    stage's calibrated strengths and along the random directions; its checks among the findings; its section."""
    behaviour, steering = document["stages"]["behaviour"], document["stages"]["steering"]
    profile, config = TINY.profile("tiny"), TINY.behaviour_config
    assert config is not None
    assert (
        behaviour["emotions"] == list(config.emotions[: profile.behaviour_emotions])
        and behaviour["layer"] == (steering["layer"])
    )
    unit = steering["calibration"]["unit_strength"]
    assert behaviour["strengths"] == pytest.approx([unit * m for m in config.multipliers])
    replies = [json.loads(line) for line in (out / behaviour["samples"]).read_text(encoding="utf-8").splitlines()]
    per_prompt = 1 + len(behaviour["emotions"]) * len(config.multipliers) + 3 * len(config.multipliers)
    assert len(replies) == 4 * profile.behaviour_items * per_prompt
    for name in ("refusal", "over_refusal", "sycophancy", "hostility"):
        probe = behaviour[name]
        assert probe["unsteered"]["trials"] + probe["unsteered"]["undecided"] == profile.behaviour_items
        assert set(probe["by_emotion"]) == set(behaviour["emotions"])
    assert behaviour["refusal_judge"]["refusals"]["n"] + behaviour["refusal_judge"]["compliances"]["n"] == 7
    ids = {c.id for c in findings}
    assert {"steering_erodes_refusal", "steering_induces_sycophancy", "steering_turns_hostile", "cannot_refuse"} <= ids
    assert "Behaviour under steering" in report and "Refusal judge (refusal and compliance phrases only" in report


def check_claims(results: Results, out: Path, tmp_path: Path) -> None:
    """The paper's claims of a whole audit: each claim of the claims file, its verdict what the stages'
    numbers give; not measured without its stage; in the report, escaped; again from results.json alone."""
    assert results.claims is not None and results.stages.extraction is not None and results.stages.steering
    claims = {c.id: c for c in results.claims.claims}
    assert list(claims) == [c.id for c in load_claims()]
    t = {c.id: c.thresholds for c in results.claims.claims}
    extraction, steering, leakage = results.stages.extraction, results.stages.steering, results.stages.leakage
    assert leakage is not None
    layer, comparison = extraction.layer, extraction.comparison
    d = comparison.cohens_d if comparison.method_a == "generation" else -comparison.cohens_d
    measured = {m.name: m.value for m in claims["generation_separates_better"].measured}
    assert measured == {"cohens_d": pytest.approx(d), "mann_whitney_p": comparison.mann_whitney_p}
    expected = {
        "generation_separates_better": d > t["generation_separates_better"]["min_cohens_d"]
        and comparison.mann_whitney_p < t["generation_separates_better"]["alpha"],
        "mid_depth": t["mid_depth"]["low"] <= layer / (extraction.n_layers - 1) <= t["mid_depth"]["high"],
        "three_regimes": all(steering.summary.regime_totals[r] >= 1 for r in t["three_regimes"]["regimes"]),
        "leakage": SEVERITIES.index(leakage.severity) > SEVERITIES.index(t["leakage"]["above"]),
    }
    above = t["above_baselines"]
    curves = extraction.methods[above["method"]].curves
    expected["above_baselines"] = (
        curves.probe_accuracy[layer] >= above["probe_over_shuffled"] * curves.probe_accuracy_shuffled[layer]
        and curves.fisher_p[layer] < above["alpha"]
    )
    u = extraction.methods[t["similarity_u_shape"]["method"]].curves.similarity_above_reference
    lowest = int(np.argmin(u))
    expected["similarity_u_shape"] = (
        t["similarity_u_shape"]["low"] <= lowest / (len(u) - 1) <= t["similarity_u_shape"]["high"]
        and min(u[0], u[-1]) - u[lowest] >= t["similarity_u_shape"]["min_rise"]
    )
    semantic = next(c for c in results.findings or [] if c.id == "semantic_entanglement")
    expected["semantic_entanglement"] = semantic.failed if semantic.evidence["pairs"] else None
    assert {c: claims[c].holds for c in expected} == expected
    # The behaviour claims: the tiny profile steers calm and angry, so the calm/desperate one is not measured.
    assert isinstance(claims["steering_moves_refusal_and_sycophancy"].holds, bool)
    assert claims["calm_lowers_desperate_raises"].holds is None
    assert claims["calm_lowers_desperate_raises"].detail.startswith("not measured: needs calm and desperate")
    assert "uncorrected" in claims["generation_separates_better"].detail and "uncorrected" in results.claims.correction

    # Without steering (an `extract` run) the claims that need it are not measured; without extraction, none is.
    unsteered = dataclasses.replace(results, stages=Stages(extraction=extraction))
    partial = paper_claims(load_claims(), evidence_of(unsteered, []))
    assert {c.id: c.holds for c in partial.claims} == {
        **{c: claims[c].holds for c in expected},
        "three_regimes": None,
        "leakage": None,
        "semantic_entanglement": None,
        "steering_moves_refusal_and_sycophancy": None,
        "calm_lowers_desperate_raises": None,
    }
    assert all(c.measured == [] for c in partial.claims if c.holds is None)
    assert evidence_of(dataclasses.replace(results, stages=Stages()), []) is None

    report = (out / "report.html").read_text(encoding="utf-8")
    assert "The paper's claims" in report and claims["similarity_u_shape"].detail in report
    hostile = dataclasses.replace(
        results.claims, claims=[dataclasses.replace(claims["mid_depth"], statement="<script>x</script>")]
    )
    page = render(dataclasses.replace(results, claims=hostile), None)
    assert "&lt;script&gt;x&lt;/script&gt;" in page and "<script>" not in page

    # `emoaudit report` gives them again from results.json, even when it was written without them.
    document = json.loads((out / "results.json").read_text(encoding="utf-8"))
    written = document.pop("claims")
    (tmp_path / "older.json").write_text(json.dumps(document), encoding="utf-8")
    again = tmp_path / "again.json"
    proc = run_cli(
        "report",
        str(tmp_path / "older.json"),
        "-o",
        str(tmp_path / "again.html"),
        "--out-results",
        str(again),
        "--fail-on",
        "never",
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(again.read_text(encoding="utf-8"))["claims"] == written
    assert "The paper's claims" in (tmp_path / "again.html").read_text(encoding="utf-8")


@pytest.fixture(scope="module", params=["llama", "gpt2"])
def steerable(
    request: pytest.FixtureRequest, tiny_dir: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory
) -> tuple[EmotionVectors, PreTrainedModel, PreTrainedTokenizerBase]:
    """Vectors an audit would save for a tiny model (layer 1 its emotion layer), loaded back from its OUT
    directory, and the model as plain transformers loads it."""
    directory = tiny_dir(request.param)
    lm = load_model(str(directory), device="cpu", dtype="float32")
    acts = comprehension_activations(lm, TINY, TINY.profile("tiny"))
    vectors = EmotionVectors.from_activations(acts, TINY.emotion_names, TINY.reference, 0.5)
    vectors = vectors.chosen(1, lm.identity.to_dict(), TINY.sha256)
    out = tmp_path_factory.mktemp("out")
    vectors.save(out / "vectors" / "comprehension.safetensors")
    loaded = emoaudit.EmotionVectors.load(out)
    from_file = emoaudit.EmotionVectors.load(out / "vectors" / "comprehension.safetensors")
    assert loaded.emotion_layer == from_file.emotion_layer == 1 and loaded.vectors.equal(from_file.vectors)
    return loaded, AutoModelForCausalLM.from_pretrained(directory), lm.tokenizer


def greedy(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, prompt: str = PROMPT) -> list[int]:
    ids = tokenizer(prompt, return_tensors="pt")
    out = model.generate(**ids, max_new_tokens=12, min_new_tokens=12, do_sample=False)
    return out[0, ids["input_ids"].shape[1] :].tolist()


def test_steering_a_plain_transformers_model_leaves_it_as_it_was(steerable) -> None:
    vectors, model, tokenizer = steerable
    before = greedy(model, tokenizer)
    hooks = [dict(block._forward_hooks) for block in residual_stream(model).blocks]
    with vectors.steer(model, "calm", 0.0):
        assert greedy(model, tokenizer) == before
    with vectors.steer(model, "calm", 8.0):
        steered = greedy(model, tokenizer)
    assert steered != before
    with vectors.steer(model, "calm", 8.0, layer=vectors.emotion_layer):
        assert greedy(model, tokenizer) == steered  # the layer defaults to the emotion layer in the file
    assert greedy(model, tokenizer) == before
    with pytest.raises(RuntimeError), vectors.steer(model, "sad", 8.0):
        raise RuntimeError("a failure inside the block still unsteers the model")
    assert greedy(model, tokenizer) == before
    assert [dict(block._forward_hooks) for block in residual_stream(model).blocks] == hooks


def test_steering_strength_is_in_units_of_the_layers_mean_norm(steerable) -> None:
    """What reaches the next block is the emotion layer's output plus strength × mean_norm × the unit vector."""
    vectors, model, tokenizer = steerable
    layer = vectors.emotion_layer
    seen: list[torch.Tensor] = []
    handle = (
        residual_stream(model)
        .blocks[layer + 1]
        .register_forward_pre_hook(
            lambda _m, args, kwargs: seen.append((args[0] if args else kwargs["hidden_states"]).clone()),
            with_kwargs=True,
        )
    )
    ids = tokenizer(PROMPT, return_tensors="pt")
    with torch.inference_mode():
        model(**ids)
        with vectors.steer(model, "angry", 0.5):
            model(**ids)
    handle.remove()
    added = seen[1] - seen[0]
    direction = vectors.direction("angry", layer)
    expected = 0.5 * float(vectors.mean_norm[layer]) * direction / direction.norm()
    torch.testing.assert_close(added, expected.expand_as(added), atol=1e-5, rtol=1e-4)


def test_steering_past_the_audits_calibrated_range_warns_once_in_one_line(steerable, tmp_path: Path) -> None:
    vectors, model, _ = steerable
    assert vectors.calibrated_unit is None and vectors.past_calibrated_range(100.0) is None  # no audit: no range
    results = {"stages": {"steering": {"calibration": {"unit_strength": 0.24}, "summary": {"statistics": {}}}}}
    results["stages"]["steering"]["summary"]["statistics"]["calibrated_range"] = 1.0
    out = tmp_path / "audit"
    vectors.save(out / "vectors" / "comprehension.safetensors")
    (out / "results.json").write_text(json.dumps(results), encoding="utf-8")
    calibrated = EmotionVectors.load(out)
    assert (calibrated.calibrated_unit, calibrated.calibrated_range) == (0.24, 1.0)
    assert repr(calibrated).count("\n") == 0 and "calibrated_unit=0.24" in repr(calibrated)
    assert len(repr(calibrated)) < 200
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with calibrated.steer(model, "calm", 0.24):  # the range's end is inside it
            pass
    with pytest.warns(UserWarning, match=r"strength 0.5 is past the audit's calibrated range \(up to 0.24") as seen:
        with calibrated.steer(model, "calm", 0.5):
            pass
    assert len(seen) == 1 and "\n" not in str(seen[0].message)


def test_vectors_of_another_model_shape_are_refused(steerable, tiny_llama: LoadedModel) -> None:
    vectors, _, _ = steerable
    for change, shape in (({"hidden_size": 64}, "3 layers × 64"), ({"num_hidden_layers": 4}, "4 layers × 32")):
        other = AutoModelForCausalLM.from_config(AutoConfig.for_model("llama", **{**TINY_SIZES, **change}))
        with pytest.raises(EmoauditError, match=f"for a model of 3 layers × 32, not {shape}"):
            with vectors.steer(other, "calm", 1.0):
                pass
    with pytest.raises(EmoauditError, match="unknown emotion"):
        with vectors.steer(tiny_llama.model, "smug", 1.0):
            pass


@pytest.mark.real
def test_a_notebook_user_steers_smollm2_with_an_audits_vectors(
    quick_run: tuple[Path, subprocess.CompletedProcess[str]], smollm2: LoadedModel
) -> None:
    out, proc = quick_run
    assert proc.returncode == 0, proc.stderr
    checkpoint = registry.cache_dir() / "converted" / smollm2.identity.sha256[:16]  # what the alias converts to
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    model = AutoModelForCausalLM.from_pretrained(checkpoint)
    vectors = emoaudit.EmotionVectors.load(out)
    messages = [{"role": "user", "content": "Describe the sea in two sentences."}]
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)

    def generate() -> list[int]:
        return model.generate(**ids, max_new_tokens=24, do_sample=False)[0].tolist()

    before = generate()
    with vectors.steer(model, "calm", 0.0):
        assert generate() == before
    with vectors.steer(model, "calm", 4.0):
        steered = generate()
    assert steered != before
    assert generate() == before
