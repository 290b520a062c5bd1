"""Degenerate inputs (issue 27, class 3): every statistic has a defined value or None with its reason, or
refuses in one line; no NaN or infinity reaches a writer. A model that writes one token forever finishes."""

from __future__ import annotations

import io
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from rich.console import Console
from transformers import AutoModelForCausalLM

import emoaudit
from emoaudit.analysis import baselines, geometry, heldout, methods, separation, sweep
from emoaudit.errors import EmoauditError
from emoaudit.results.reading import read_results
from emoaudit.spec import load_spec
from emoaudit.storage import non_finite_key, write_json
from tests.conftest import build_tiny, run_cli

TINY_SPEC_PATH = Path(__file__).parent / "data" / "tiny-audit.toml"
Y = np.repeat(np.arange(4), 6)
VALENCE = np.array([1.0, -1.0, 0.5, -0.5])
RNG = np.random.default_rng(0)
INPUTS = {
    "constant": np.ones((24, 8)),
    "zeros": np.zeros((24, 8)),
    "duplicate": np.repeat(RNG.standard_normal((4, 8)), 6, axis=0),  # each class's samples coincide
}


def finite_or_none(value: Any) -> bool:
    """No NaN or infinity anywhere in a result (dataclass, tuple, array or number)."""
    if value is None or isinstance(value, str | int | bool):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, np.ndarray):
        return bool(np.isfinite(value).all())
    if isinstance(value, dict):
        return all(finite_or_none(v) for v in value.values())
    if isinstance(value, list | tuple):
        return all(finite_or_none(v) for v in value)
    return finite_or_none(vars(value))


def analyses(x: np.ndarray, y: np.ndarray) -> dict[str, Callable[[], Any]]:
    """Every analysis function of the extraction stage, on samples x [n, d] with labels y."""
    gram = separation.standardised_gram(x)
    first = x[[list(y).index(c) for c in range(int(y.max()) + 1)]]  # one row per class, as vectors
    return {
        "fisher_ratio_null_and_score": lambda: sweep.layer_score(gram, y, 20, 0),
        "fisher_null": lambda: baselines.fisher_null(gram, y, 20, 0),
        "probe": lambda: separation.probe_accuracy(x, y, 3, 4, 0),
        "shuffled_probe": lambda: baselines.shuffled_probe_accuracy(separation.principal_components(x, 4), y, 3, 2, 0),
        "centroid": lambda: separation.centroid_scores(x, y, 3, 0),
        "random_directions": lambda: baselines.random_directions(x, y, 5, 3, 0),
        "mean_pairwise_cosine": lambda: geometry.mean_pairwise_cosine(first),
        "pc_scores": lambda: geometry.centred_pc_scores(first - first.mean(axis=0), 2),
        "heldout": lambda: heldout.heldout_score(x, y, first, VALENCE[: len(first)]),
        "compare_methods": lambda: methods.compare_methods(
            ("a", "b"), (np.ones(4), np.ones(4)), (first, first), 0, "s"
        ),
        "affect": lambda: methods.affect_alignment(first, {"valence": VALENCE[: len(first)]}),
        "cohens_d": lambda: methods.cohens_d(np.ones(4), np.full(4, 2.0)),
    }


@pytest.mark.parametrize("kind", sorted(INPUTS))
@pytest.mark.parametrize("name", sorted(analyses(INPUTS["constant"], Y)))
def test_each_analysis_is_defined_on_constant_and_duplicate_samples(kind: str, name: str) -> None:
    result = analyses(INPUTS[kind], Y)[name]()
    assert finite_or_none(result), result


def test_undefined_and_unbounded_ratios_are_none_with_their_reason() -> None:
    none = sweep.layer_score(separation.standardised_gram(INPUTS["constant"]), Y, 20, 0)
    assert (none.fisher, none.score, none.null.mean, none.null.p_value) == (None, None, None, 1.0)
    assert none.undefined == "no sample differs from another: the Fisher ratio is 0/0"
    perfect = sweep.layer_score(separation.standardised_gram(INPUTS["duplicate"]), Y, 20, 0)
    assert perfect.fisher is None and perfect.score is None and "unbounded" in (perfect.undefined or "")
    assert perfect.null.p_value == pytest.approx(1 / 21)  # above every shuffled labelling
    assert methods.cohens_d(np.ones(4), np.full(4, 2.0)) is None and methods.cohens_d(np.ones(4), np.ones(4)) == 0.0
    assert methods.affect_alignment(np.ones((4, 8)), {"valence": VALENCE})["valence"].r is None


def test_the_layer_rule_skips_undefined_layers_and_refuses_when_none_is_left() -> None:
    assert sweep.smooth([None, 1.0, 3.0, None], 3) == [1.0, 2.0, 2.0, 3.0]
    assert sweep.choose_layer([None, 1.0, 3.0, None, 0.0], 1) == 2
    assert sweep.best_layer([None, None, 5.0], 1) is None  # the final block is never chosen
    with pytest.raises(EmoauditError, match="^no layer has a defined separation score: .* same text"):
        sweep.choose_layer([None, None, 5.0], 1)


@pytest.mark.parametrize(
    "call",
    [
        lambda x, y: separation.probe_accuracy(x, y, 3, 4, 0),
        lambda x, y: separation.centroid_scores(x, y, 3, 0),
        lambda x, y: separation.fisher_ratio(x, y),
        lambda x, y: baselines.random_directions(x, y, 5, 3, 0),
    ],
)
def test_single_class_samples_are_refused_in_one_line(call: Callable[[np.ndarray, np.ndarray], Any]) -> None:
    x = RNG.standard_normal((12, 8))
    with pytest.raises(ValueError, match=r"^separation needs two classes or more with two samples each"):
        call(x, np.zeros(12, dtype=int))
    with pytest.raises(ValueError, match=r"not counts \[11, 1\]"):  # a class of one sample cannot be held out
        call(x, np.array([0] * 11 + [1]))


def test_fewer_than_two_rows_or_values_are_refused() -> None:
    with pytest.raises(ValueError, match="needs two rows or more, not 1"):
        geometry.mean_pairwise_cosine(np.ones((1, 4)))
    with pytest.raises(ValueError, match="two values or more on each side, not 1 and 4"):
        methods.cohens_d(np.ones(1), np.ones(4))


def test_the_json_writer_names_a_non_finite_value_and_writes_nothing(tmp_path: Path) -> None:
    target = tmp_path / "results.json"
    with pytest.raises(ValueError, match=r"^results.json: stages.x\[1\].score is not a finite number"):
        write_json(target, {"stages": {"x": [{"score": 1.0}, {"score": float("inf")}]}})
    assert not target.exists()
    assert non_finite_key({"a": [1.0, {"b": float("nan")}]}) == "a[1].b"


def one_token_model(directory: Path) -> Path:
    """A tiny random GPT-NeoX that writes token 7 whatever it is asked: feature 0 of its final normed state
    is a constant 1, and only token 7's unembedding row reads it (weight 60)."""
    build_tiny("gpt_neox", directory)
    model = AutoModelForCausalLM.from_pretrained(directory)
    with torch.no_grad():
        norm = model.gpt_neox.final_layer_norm
        norm.weight[0], norm.bias[0] = 0.0, 1.0
        model.get_output_embeddings().weight[:, 0] = 0.0
        model.get_output_embeddings().weight[7, 0] = 60.0
    model.save_pretrained(directory)
    return directory


def test_a_model_that_writes_one_token_forever_finishes_its_audit(tmp_path: Path) -> None:
    """Issue 27: this model ended `scan` in "Out of range float values are not JSON compliant: nan"."""
    spec = load_spec(TINY_SPEC_PATH)
    judge = emoaudit.FixedJudge({e.name: e.forbidden for e in spec.emotions} | {spec.reference: ()})
    out = tmp_path / "out"
    emoaudit.audit(
        str(one_token_model(tmp_path / "model")),
        "tiny",
        out,
        console=Console(file=io.StringIO()),
        judge=judge,
        spec_path=str(TINY_SPEC_PATH),
        device="cpu",
        dtype="float32",
        seed=3,
    )
    stories = [json.loads(line)["text"] for line in (out / "stories.jsonl").read_text().splitlines()]
    assert len(set(stories)) == 1  # the degenerate case under test: one text for every emotion
    results = read_results(out / "results.json")
    assert results.complete
    document = json.loads((out / "results.json").read_text())
    embedding = document["stages"]["extraction"]["methods"]["generation"]["embedding"]
    assert embedding["score"] is None and embedding["undefined"].startswith("no sample differs")
    report = (out / "report.html").read_text()
    assert "undefined" in report and "nan" not in report.lower().split("<svg")[0]
    rerendered = run_cli("report", str(out / "results.json"), "--out", str(tmp_path / "again.html"))
    assert rerendered.returncode in (0, 1) and "Traceback" not in rerendered.stderr, rerendered.stderr
