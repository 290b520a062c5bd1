"""The audit specification is typed and validated when it loads: each bad one is one line, before any model."""

from __future__ import annotations

import functools
import hashlib
import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rich.console import Console
from sklearn.model_selection import StratifiedKFold

from emoaudit.pipeline.options import audit_options
from emoaudit.pipeline.run import audit
from emoaudit.errors import EmoauditError
from emoaudit.spec import DEFAULT_SPEC, load_spec, samples_needed
from emoaudit.results.steering import Thresholds
from tests.conftest import run_cli
from tests.test_loading import assert_one_line_error

DEFAULT_TEXT = DEFAULT_SPEC.read_text(encoding="utf-8")
HEAD, *EMOTION_TABLES = DEFAULT_TEXT.split("\n[emotions.")


def spec_copy(tmp_path: Path, edit: Callable[[str], str]) -> Path:
    """The default specification and its data files copied under tmp_path, the TOML edited."""
    shutil.copytree(DEFAULT_SPEC.parent / "default", tmp_path / "default")
    path = tmp_path / "audit.toml"
    edited = edit(DEFAULT_TEXT)
    assert edited != DEFAULT_TEXT
    path.write_text(edited, encoding="utf-8")
    return path


def replace(old: str, new: str) -> Callable[[str], str]:
    """Replace one whole line."""

    def edit(text: str) -> str:
        pattern = re.compile(rf"^{re.escape(old)}$", re.MULTILINE)
        assert len(pattern.findall(text)) == 1, old
        return pattern.sub(new, text)

    return edit


def only_emotions(*names: str) -> Callable[[str], str]:
    """Keep just these `[emotions.NAME]` tables, and just these of the emotions `[behaviour]` steers."""
    tables = [t for t in EMOTION_TABLES if t.split("]", 1)[0] in names]
    assert len(tables) == len(names)
    steered = re.search(r"^emotions = \[(.*)\]$", HEAD, flags=re.MULTILINE)
    assert steered is not None  # [behaviour]'s, the one `emotions` key above the emotion tables
    kept = [e for e in re.findall(r'"(\w+)"', steered.group(1)) if e in names]
    head = HEAD.replace(steered.group(0), f"emotions = {json.dumps(kept)}")
    return lambda text: "\n[emotions.".join([head, *tables])


# (edit, what the one line must say): the cases the CLI test runs end to end.
CLI_CASES = {
    "unknown key": (replace("lens_top_k = 20", "lens_topk = 20"), "[leakage] unknown key 'lens_topk'"),
    "misspelt key": (
        replace("multipliers = [0.25, 0.5, 1.0, 2.0, 4.0]", "multiplers = [0.25, 0.5, 1.0, 2.0, 4.0]"),
        "[steering] unknown key 'multiplers'",
    ),
    "missing key": (replace("margin = 0.1", ""), "[leakage] missing key 'margin'"),
    "string for a number": (
        replace("calibration_kl = 0.5", 'calibration_kl = "0.5"'),
        "[steering] key 'calibration_kl': input should be a valid number, not '0.5'",
    ),
    "one emotion": (only_emotions("happy"), "[emotions] defines 1 emotion(s); the analysis needs at least 4"),
    "two opposite emotions": (only_emotions("happy", "sad"), "[emotions] defines 2 emotion(s)"),
    "one valence": (
        only_emotions("happy", "calm", "proud", "hopeful"),
        "[emotions] key 'valence': needs pleasant (> 0) and unpleasant (< 0) emotions",
    ),
    "two stories for three folds": (
        replace("stories_per_label = 4", "stories_per_label = 2"),
        "[profiles.quick] key 'stories_per_label': 2; 3-fold cross-validation needs at least 3 per label",
    ),
}


@pytest.mark.parametrize("case", list(CLI_CASES))
def test_bad_specification_is_one_line_before_the_model_loads(
    case: str, tmp_path: Path, tiny_dir: Callable[[str], Path]
) -> None:
    edit, message = CLI_CASES[case]
    path = spec_copy(tmp_path, edit)
    out = tmp_path / "out"
    proc = run_cli("extract", str(tiny_dir("llama")), "--spec", str(path), "--out", str(out), "--profile", "quick")
    assert_one_line_error(proc, f"audit specification {path}: {message}")
    assert not out.exists()


@pytest.mark.parametrize(("command", "seed"), [("scan", "-1"), ("extract", str(2**32)), ("steer", "-1")])
def test_seed_outside_numpys_range_is_one_line(
    seed: str, command: str, tmp_path: Path, tiny_dir: Callable[[str], Path]
) -> None:
    out = tmp_path / "out"
    args = ["Hi", "--emotion", "happy", "--strength", "1"] if command == "steer" else ["--out", str(out)]
    proc = run_cli(command, str(tiny_dir("llama")), *args, "--seed", seed)
    assert_one_line_error(proc, f"--seed must be in 0..4294967295 (numpy's seed range), not {seed}")
    assert not out.exists()


@pytest.mark.parametrize("seed", [-1, 2**32])
def test_options_refuse_seeds_numpy_cannot_take(seed: int, tmp_path: Path) -> None:
    with pytest.raises(EmoauditError, match="numpy's seed range"):
        audit_options("m", tmp_path, {"seed": seed})
    assert audit_options("m", tmp_path, {"seed": 2**32 - 1}).seed == 2**32 - 1


def test_default_specification_loads_typed() -> None:
    spec = load_spec()
    assert spec.analysis.layer_method == "comprehension" and spec.analysis.probe_components == 64
    assert spec.generation.temperature == 0.8 and spec.generation.top_p == 0.95
    assert str(spec.extraction.pooling) == "mean:1"
    assert spec.steering.multipliers == (0.25, 0.5, 1.0, 2.0, 4.0)
    assert spec.steering.thresholds == Thresholds(
        0.5, 0.4, 8.0, 0.02, 8, 3, 95.0, 1.0, echo_share_max=0.25, word_repeats_max=1
    )
    assert spec.leakage.lens_top_k == 20 and spec.leakage.expected_script == "Latin"
    assert [p.name for p in spec.profiles.values()] == ["quick", "standard", "full", "paper"]
    # paper: all 20 emotions, stories enough for the method comparison's power >= 0.8 at d = 0.8 (issue 31)
    paper = spec.profile("paper")
    assert paper.steering_emotions == 20 and paper.stories_per_label == 27
    assert len(spec.emotions) == 20 and spec.emotions[0].name == "happy"


def test_digest_is_the_specification_and_data_as_before(tmp_path: Path) -> None:
    """The digest recorded in results and vectors: sha256 of the TOML bytes, then of the data files'
    JSON (sorted keys, not ASCII-escaped), computed here independently of the loader."""
    path = spec_copy(tmp_path, lambda text: text + "\n")
    names = ("passages", "generation", "heldout", "scenarios", "judge", "heldout_sets", "lexicon", "translations")
    # the behaviour stage's probes, labelled replies and refusal reader are hashed too
    names += ("behaviour", "behaviour_heldout", "refusal_reader")
    files = {k: json.loads((tmp_path / "default" / f"{k}.json").read_text()) for k in names}
    h = hashlib.sha256(path.read_bytes())
    h.update(json.dumps(files, sort_keys=True, ensure_ascii=False).encode("utf-8"))
    assert load_spec(path).sha256 == h.hexdigest()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            replace("cv_folds = 3", "cv_folds = 1"),
            "[profiles.quick] key 'cv_folds': input should be greater than or equal to 2, not 1",
        ),
        (
            replace("permutations = 50", "permutations = -5"),
            "[profiles.quick] key 'permutations': input should be greater than 0, not -5",
        ),
        (
            replace("steering_tokens = 32", "steering_tokens = 32.0"),
            "[profiles.quick] key 'steering_tokens': input should be a valid integer, not 32.0",
        ),
        (
            replace('method = "comprehension"', 'method = "contrastive"'),
            "[steering] key 'method': input should be 'comprehension' or 'generation', not 'contrastive'",
        ),
        (
            replace('layer_method = "comprehension"', 'layer_method = "both"'),
            "[analysis] key 'layer_method': input should be 'comprehension' or 'generation'",
        ),
        (
            replace("text_share = 0.05", "text_share = 1.5"),
            "[leakage] key 'text_share': input should be less than or equal to 1, not 1.5",
        ),
        (replace("top_p = 0.95", "top_p = nan"), "[generation] key 'top_p': input should be a finite number"),
        (
            replace("multipliers = [0.25, 0.5, 1.0, 2.0, 4.0]", "multipliers = []"),
            "[steering] key 'multipliers': tuple should have at least 1 item",
        ),
        (
            replace("multipliers = [0.25, 0.5, 1.0, 2.0, 4.0]", "multipliers = [1.0, -1.0]"),
            "[steering] key 'multipliers' item 2: input should be greater than 0, not -1.0",
        ),
        (  # overflows to NaN in the model's normalisation, found only after the whole sweep
            replace("multipliers = [0.25, 0.5, 1.0, 2.0, 4.0]", "multipliers = [1.0, 1e30]"),
            "[steering] key 'multipliers' item 2: input should be less than or equal to 1000, not 1e+30",
        ),
        (
            replace(
                "probe_strengths = [0.03, 0.06, 0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0]", "probe_strengths = [1e300]"
            ),
            "[steering] key 'probe_strengths' item 1: input should be less than or equal to 1000, not 1e+300",
        ),
        (
            replace(
                "probe_strengths = [0.03, 0.06, 0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0]", "probe_strengths = [1.0, 0.5]"
            ),
            "[steering] key 'probe_strengths': the values must increase",
        ),
        (replace('pooling = "mean:1"', 'pooling = "median"'), "[extraction] key 'pooling': unknown pooling 'median'"),
        (
            replace('expected_script = "Latin"', 'expected_script = "Latn"'),
            "[leakage] key 'expected_script': unknown script; known: Latin, Greek",
        ),
        (
            replace("valence = -0.7\narousal = -0.4", "valence = -7\narousal = -0.4"),
            "[emotions.sad] key 'valence': input should be greater than or equal to -1, not -7",
        ),
        (replace("[profiles.quick]", '[profiles.quick]\nname = "fast"'), "[profiles.quick] unknown key 'name'"),
        (replace("schema = 1", "schema = 2"), "(top level) key 'schema': input should be 1, not 2"),
        (
            replace('reference = "neutral"', 'reference = "happy"'),
            "(top level) key 'reference': 'happy' is also an emotion",
        ),
        (replace("passages_per_label = 6", "passages_per_label = 2"), "[profiles.quick] key 'passages_per_label': 2"),
        (replace("[profiles.quick]", "[profiles.quick]\ncv = 3"), "[profiles.quick] unknown key 'cv'"),
        (replace("[extraction]", "[extraction]\nlayer = 3"), "[extraction] unknown key 'layer'"),
        (replace('name = "default"', ""), "(top level) missing key 'name'"),
        (
            lambda text: re.sub(r"^arousal = .*$", "arousal = 0.5", text, flags=re.MULTILINE),
            "[emotions] key 'arousal': all equal",
        ),
    ],
)
def test_each_bad_table_value_names_file_table_and_key(
    edit: Callable[[str], str], message: str, tmp_path: Path
) -> None:
    path = spec_copy(tmp_path, edit)
    with pytest.raises(EmoauditError) as raised:
        load_spec(path)
    assert str(raised.value).startswith(f"audit specification {path}: {message}")
    assert "\n" not in str(raised.value)


def test_bad_data_files_name_the_file_and_the_place(tmp_path: Path) -> None:
    path = spec_copy(tmp_path, lambda text: text + "\n")
    scenarios = tmp_path / "default" / "scenarios.json"
    document = json.loads(scenarios.read_text())
    del document["scenarios"][1]["kind"]
    scenarios.write_text(json.dumps(document))
    with pytest.raises(
        EmoauditError, match=re.escape(f"audit data file {scenarios}: scenarios[1]: missing key 'kind'")
    ):
        load_spec(path)
    shutil.copy(DEFAULT_SPEC.parent / "default" / "scenarios.json", scenarios)
    passages = tmp_path / "default" / "passages.json"
    table = json.loads(passages.read_text())
    table["sad"] = table["sad"][:2]
    passages.write_text(json.dumps(table))
    with pytest.raises(EmoauditError, match=r"passages has fewer than 3 texts for sad; \[profiles.quick\]"):
        load_spec(path)
    table["sad"] = ["one", 2]
    passages.write_text(json.dumps(table))
    with pytest.raises(EmoauditError, match=re.escape("passages.json: sad[1]: input should be a valid string, not 2")):
        load_spec(path)
    shutil.copy(DEFAULT_SPEC.parent / "default" / "passages.json", passages)
    generation = tmp_path / "default" / "generation.json"
    prompts = json.loads(generation.read_text())
    prompts["emotion_templates"][0] += " Set it in {place}."
    generation.write_text(json.dumps(prompts))
    with pytest.raises(EmoauditError, match=r"generation template .* cannot be filled: KeyError\('place'\)"):
        load_spec(path)
    shutil.copy(DEFAULT_SPEC.parent / "default" / "generation.json", generation)
    document["scenarios"][1] = dict(document["scenarios"][0])
    scenarios.write_text(json.dumps(document))
    with pytest.raises(EmoauditError, match=f"scenarios: ids repeat \\({document['scenarios'][0]['id']}\\)"):
        load_spec(path)


@pytest.mark.parametrize("folds", [2, 3, 5, 10])
def test_samples_needed_is_the_fewest_that_stratified_folds_train_on_in_pairs(folds: int) -> None:
    """With n = samples_needed(k) per label every test fold holds each label and every training split two
    of each; with one fewer, one of those fails."""

    def per_label_counts(n: int) -> tuple[int, int]:
        y = np.repeat(np.arange(3), n)
        splits = list(StratifiedKFold(n_splits=folds, shuffle=True, random_state=0).split(np.zeros(len(y)), y))
        test = min(int(np.bincount(y[te], minlength=3).min()) for _, te in splits)
        train = min(int(np.bincount(y[tr], minlength=3).min()) for tr, _ in splits)
        return test, train

    needed = samples_needed(folds)
    test, train = per_label_counts(needed)
    assert test >= 1 and train >= 2
    if needed - 1 >= folds:
        assert per_label_counts(needed - 1)[1] < 2
    else:
        with pytest.raises(ValueError, match="cannot be greater than the number of members"):
            per_label_counts(needed - 1)


def test_the_smallest_specification_allowed_runs_without_an_undefined_statistic(
    tmp_path: Path, tiny_dir: Callable[[str], Path]
) -> None:
    """Four emotions, two of each valence, the quick profile: every statistic of the extraction is defined."""
    # the translations, held-out sets and lexicon name all twenty emotions, sixteen unknown to this specification
    keep = only_emotions("happy", "sad", "calm", "afraid")
    dropped = [f'{key} = "default/{key}.json"' for key in ("translations", "heldout_sets", "lexicon")]
    path = spec_copy(tmp_path, lambda text: functools.reduce(lambda t, line: replace(line, "")(t), dropped, keep(text)))
    options = audit_options(
        str(tiny_dir("llama")),
        tmp_path / "out",
        {"profile": "quick", "device": "cpu", "dtype": "float32", "spec_path": path},
        stages=("extraction",),
    )
    audit(options, Console(stderr=True, quiet=True))
    text = (tmp_path / "out" / "results.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    extraction = json.loads(text)["stages"]["extraction"]
    assert extraction["emotions"] == ["happy", "sad", "calm", "afraid"]
    for analysis in extraction["methods"].values():
        assert all(0 <= auc <= 1 for auc in analysis["heldout"]["valence_auc"])
        assert all(abs(a["r"]) <= 1 for a in analysis["at_emotion_layer"]["affect"].values())
    assert -1 <= extraction["comparison"]["similarity_spearman"] <= 1


def test_a_data_file_that_is_not_utf8_is_one_line(tmp_path: Path) -> None:
    path = spec_copy(tmp_path, replace("specificity_top_k = 3", "specificity_top_k = 3  # unchanged"))
    sets = tmp_path / "default" / "heldout_sets.json"
    sets.write_bytes(b"\xff\xfe" + sets.read_bytes())
    with pytest.raises(EmoauditError, match=r"heldout_sets.json is not UTF-8 text: byte 0"):
        load_spec(path)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: {**t, "xx": t["zh"]}, "translations[xx]: unknown language; known (langdetect): af, ar"),
        (lambda t: {**t, "ja": {**t["ja"], "hungry": ["空腹"]}}, "translations[ja]: unknown emotion(s) hungry"),
        (lambda t: {**t, "ru": {e: w for e, w in t["ru"].items() if e != "sad"}}, "translations[ru]: no words for sad"),
        (
            lambda t: {**t, "fr": {**t["fr"], "gloomy": ["morose", "triste"]}},
            "translations[fr]: words under more than one emotion: triste",
        ),
    ],
)
def test_translations_are_refused_for_an_unknown_language_or_emotion_a_missing_emotion_or_a_word_twice(
    edit: Callable[[dict[str, dict[str, list[str]]]], dict[str, dict[str, list[str]]]], message: str, tmp_path: Path
) -> None:
    path = spec_copy(tmp_path, lambda text: text + "\n")
    table = tmp_path / "default" / "translations.json"
    table.write_text(json.dumps(edit(json.loads(table.read_text(encoding="utf-8"))), ensure_ascii=False))
    with pytest.raises(EmoauditError) as raised:
        load_spec(path)
    assert str(raised.value).startswith(f"audit specification {path}: {message}")


@pytest.mark.parametrize(
    ("file", "edit", "message"),
    [
        (
            "heldout_sets.json",
            lambda t: {**t, "languages": {**t["languages"], "messages": t["languages"]["es"]}},
            "heldout_sets: set name(s) messages in more than one group",
        ),
        (
            "heldout_sets.json",
            lambda t: {**t, "registers": {**t["registers"], "dialogue": {**t["registers"]["dialogue"], "hapy": ["x"]}}},
            "heldout_sets[dialogue]: unknown label(s) hapy; labels: happy, sad",
        ),
        ("lexicon.json", lambda t: {**t, "angery": ["mad"]}, "lexicon: unknown label(s) angery"),
        (
            "heldout_sets.json",
            lambda t: {**t, "registers": {**t["registers"], "dialogue": {**t["registers"]["dialogue"], "happy": []}}},
            "heldout_sets[dialogue]: no texts for happy",
        ),
        (
            "heldout_sets.json",
            lambda t: {**t, "languages": {**t["languages"], "Spanish": t["languages"]["es"]}},
            "heldout_sets: unknown language(s) Spanish; known (langdetect): af, ar",
        ),
    ],
)
def test_held_out_sets_and_the_lexicon_name_only_the_audits_labels_and_sets_once(
    file: str, edit: Callable[[dict[str, Any]], dict[str, Any]], message: str, tmp_path: Path
) -> None:
    path = spec_copy(tmp_path, lambda text: text + "\n")
    table = tmp_path / "default" / file
    table.write_text(json.dumps(edit(json.loads(table.read_text(encoding="utf-8"))), ensure_ascii=False))
    with pytest.raises(EmoauditError) as raised:
        load_spec(path)
    assert str(raised.value).startswith(f"audit specification {path}: {message}")


def test_emotion_words_are_whole_words_in_any_script() -> None:
    spec = load_spec()
    # French "calmé" is not the English "calm" (letters outside ASCII used to split words: "calm" + "é").
    assert spec.emotions_named_in("Il s'est calmé, puis il était angry.") == ["angry"]
    assert spec.forbidden_words_in("An ANGRY man's day, très calmé") == ["angry"]


def test_a_specificity_rank_that_tests_nothing_is_refused(tmp_path: Path) -> None:
    with pytest.raises(EmoauditError, match=r"'specificity_top_k': 20 must be below the number of emotions \(20\)"):
        load_spec(spec_copy(tmp_path, replace("specificity_top_k = 3", "specificity_top_k = 20")))


def test_a_profile_of_the_specifications_own_runs_from_the_cli(tmp_path: Path, tiny_dir: Callable[[str], Path]) -> None:
    """--profile names any profile the specification defines, not only the built-in three."""
    smoke = "[profiles.smoke]\npassages_per_label = 3\nstories_per_label = 3\nmax_new_tokens = 10\npermutations = 5\n"
    path = spec_copy(tmp_path, lambda text: re.sub(r"\[profiles\.quick\]\n(?:.*\n)*?permutations = \d+\n", smoke, text))
    args = ["extract", str(tiny_dir("llama")), "--spec", str(path), "--device", "cpu"]
    out = tmp_path / "out"
    proc = run_cli(*args, "--out", str(out), "--profile", "smoke")
    assert proc.returncode == 0, proc.stderr
    assert json.loads((out / "results.json").read_text(encoding="utf-8"))["audit"]["profile"] == "smoke"
    refused = run_cli(*args, "--out", str(tmp_path / "other"), "--profile", "quick")
    assert_one_line_error(refused, "unknown profile 'quick'; this audit defines: smoke, standard, full")
    assert not (tmp_path / "other").exists()


def test_behaviour_data_is_validated_strictly_when_the_specification_loads(tmp_path: Path) -> None:
    path = spec_copy(tmp_path, lambda text: text + "\n")
    data = tmp_path / "default" / "behaviour.json"
    table = json.loads(data.read_text())
    table["sycophancy"][0]["asserted"] = ["56"]  # also a correct form of 7 x 8
    data.write_text(json.dumps(table))
    with pytest.raises(EmoauditError, match=r"behaviour sycophancy mul_7_8: 56 is both answers"):
        load_spec(path)
    table["sycophancy"][0]["asserted"] = 54  # a number where forms are strings
    data.write_text(json.dumps(table))
    with pytest.raises(EmoauditError, match=r"behaviour.json: sycophancy\[0\].asserted: input should be a valid"):
        load_spec(path)
    unknown = spec_copy(tmp_path / "b", lambda text: text.replace('"calm", "desperate"', '"calm", "desparate"'))
    with pytest.raises(EmoauditError, match=r"\[behaviour\] key 'emotions': unknown emotion\(s\) desparate"):
        load_spec(unknown)


def _reader(tmp_path: Path, edit: Callable[[dict[str, Any]], object]) -> Path:
    """The default specification with its refusal_reader.json edited by `edit`."""
    path = spec_copy(tmp_path, lambda text: text + "\n")
    reader_file = tmp_path / "default" / "refusal_reader.json"
    reader = json.loads(reader_file.read_text(encoding="utf-8"))
    edit(reader)
    reader_file.write_text(json.dumps(reader), encoding="utf-8")
    return path


@pytest.mark.real  # the reader's GGUF header: the packaged qwen2.5-coder-1.5b, pulled
@pytest.mark.parametrize(
    ("edit", "fragment"),
    [
        (lambda r: r.update(weights=[0.1, 0.2, 0.3]), "has 3 weights, but the reader's residual stream has 1536"),
        (lambda r: r.update(layer=28), "reads block 28, but the reader has 28 decoder blocks"),
        (lambda r: r.update(weights=[1e308] * 1536), "can give a non-finite logit: its weights' norm overflows"),
    ],
)
def test_a_reader_probe_that_does_not_fit_its_reader_is_refused_before_the_model_loads(
    tmp_path: Path, edit: Callable[[dict[str, Any]], object], fragment: str
) -> None:
    """Found after generation, the fix would change the specification, and the finished stages could not resume."""
    path = _reader(tmp_path, edit)
    out = tmp_path / "out"
    proc = run_cli("scan", "not-a-model-that-would-load", "--spec", str(path), "--out", str(out))
    assert_one_line_error(proc, f"the specification's refusal_reader file (reader qwen2.5-coder-1.5b) {fragment}")
    assert not (out / "run.json").exists()


def test_a_reader_that_is_no_offline_alias_is_refused_before_the_model_loads(tmp_path: Path) -> None:
    path = _reader(tmp_path, lambda r: r.update(model="Qwen/Qwen2.5-0.5B-Instruct"))
    out = tmp_path / "out"
    proc = run_cli("scan", "not-a-model-that-would-load", "--spec", str(path), "--out", str(out))
    assert_one_line_error(proc, "refusal reader 'Qwen/Qwen2.5-0.5B-Instruct' is not an offline alias")
    assert not (out / "run.json").exists()


@pytest.mark.parametrize(
    ("edit", "fragment"),
    [
        (lambda r: r.update(question="Did it comply? {reply}"), "the question must hold {request} exactly once"),
        (lambda r: r.update(layer=-1), "layer: input should be greater than or equal to 0"),
        (lambda r: r.pop("model"), "missing key 'model'"),
    ],
)
def test_a_malformed_reader_file_is_one_line(
    tmp_path: Path, edit: Callable[[dict[str, Any]], object], fragment: str
) -> None:
    with pytest.raises(EmoauditError, match=re.escape(fragment)):
        load_spec(_reader(tmp_path, edit))


def test_a_key_an_earlier_specification_had_says_what_replaced_it(tmp_path: Path) -> None:
    path = spec_copy(tmp_path, replace("hostility_margin = 0.05", "hostility_margin = 0.05\nrefusal_margin = 0.2"))
    with pytest.raises(EmoauditError, match=r"unknown key 'refusal_margin' \(.*removed: a reader's probe replaced"):
        load_spec(path)
    line = 'refusal_reader = "default/refusal_reader.json"'
    heads = spec_copy(tmp_path / "h", replace(line, line.replace("refusal_reader =", "refusal_heads =")))
    with pytest.raises(EmoauditError, match=r"unknown key 'refusal_heads' \(.*removed: a probe on a reader model"):
        load_spec(heads)


def test_a_data_file_nested_too_deeply_is_one_line(tmp_path: Path) -> None:
    path = spec_copy(tmp_path, lambda text: text + "\n")
    deep = '{"fitted": "x", "weights": ' + "[" * 200_000 + "]" * 200_000 + "}"
    (tmp_path / "default" / "refusal_reader.json").write_text(deep, encoding="utf-8")
    with pytest.raises(EmoauditError, match="refusal_reader.json: its arrays or objects nest too deeply"):
        load_spec(path)


@pytest.mark.parametrize("pooling", ["mean", "mean:1", "last"])
def test_a_reader_pooling_from_the_first_or_second_token_loads(tmp_path: Path, pooling: str) -> None:
    """mean:1 skips the attention sink, which every chat-formatted question has before its text."""
    spec = load_spec(_reader(tmp_path, lambda r: r.update(pooling=pooling)))
    assert spec.refusal_reader is not None and str(spec.refusal_reader.pooling) == pooling


@pytest.mark.parametrize(
    ("pooling", "fragment"),
    [
        ("mean:2", "the reader pools the whole question, or all of it but the first token: mean, mean:1 or last"),
        ("median", "unknown pooling 'median'"),
        (None, "missing key 'pooling'"),
    ],
)
def test_a_reader_pooling_from_past_the_second_token_is_refused(
    tmp_path: Path, pooling: str | None, fragment: str
) -> None:
    """The probe was fitted on one pooling, which the file names; an offset past the chat template's first token
    could leave a short question nothing to pool, found only after every behaviour reply had been generated."""
    path = _reader(tmp_path, lambda r: r.update(pooling=pooling) if pooling else r.pop("pooling"))
    with pytest.raises(EmoauditError, match=f"refusal_reader.json.*{re.escape(fragment)}"):
        load_spec(path)
