"""The typed results document against its JSON Schema, on the results of a real quick scan (tests/data)."""

import dataclasses
import json
import os
import re
import typing
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pytest
from pydantic_core import PydanticSerializationError

from emoaudit.results.common import Resources
from emoaudit.results.convert import from_dict, to_dict
from emoaudit.results.document import Results, Stages
from emoaudit.results.extraction import (
    Extraction,
)
from emoaudit.results.leakage import (
    Leakage,
    SemanticPair,
)
from emoaudit.results.reading import read_results
from emoaudit.results.schema import results_schema as schema
from emoaudit.results.steering import (
    RateEstimate,
    Steering,
)
from emoaudit.errors import EmoauditError
from emoaudit.results.identity import ModelIdentity
from emoaudit.steering.summary import summarise
from emoaudit.steering.trials import Trial
from emoaudit.storage import write_json
from tests.conftest import THRESHOLDS

# results.json of `emoaudit scan smollm2-135m --profile quick --dtype float32` (seed 0): the typed reader
# and writer must give back these very bytes.
QUICK = Path(__file__).parent / "data" / "quick-results.json"


def results_objects() -> set[type]:
    """Every dataclass nested in Results, Results included."""
    seen: set[type] = set()

    def walk(hint: Any) -> None:
        for arg in typing.get_args(hint) or [hint]:
            if typing.get_args(arg):
                walk(arg)
            elif dataclasses.is_dataclass(arg) and isinstance(arg, type) and arg not in seen:
                seen.add(arg)
                for field_hint in typing.get_type_hints(arg, include_extras=True).values():
                    walk(field_hint)

    walk(Results)
    return seen


def test_the_schema_describes_every_results_object_with_its_fields_required_as_the_defaults_say() -> None:
    """Generated from the types: each dataclass is one definition whose properties are its fields, the fields
    without a default required (OMITTED_IF_NONE ones optional and never null)."""
    generated = schema()
    described = {cls: generated if cls is Results else generated["$defs"][cls.__name__] for cls in results_objects()}
    assert {Results, ModelIdentity, Extraction, Steering, Leakage, RateEstimate, SemanticPair} <= set(described)
    for cls, node in described.items():
        fields = dataclasses.fields(cls)
        missing = dataclasses.MISSING
        required = {f.name for f in fields if f.default is missing and f.default_factory is missing}
        assert set(node.get("required", [])) == required, cls.__name__
        assert list(node["properties"]) == [f.name for f in fields], cls.__name__
    for name, node in generated["$defs"]["ModelIdentity"]["properties"].items():
        if name in {"device_map", "placement", "quantization", "gguf_type"}:
            assert "null" not in json.dumps(node) and "default" not in node, name


def test_a_real_results_file_reads_and_writes_back_byte_for_byte(tmp_path: Path) -> None:
    results = read_results(QUICK)
    assert isinstance(results.stages.extraction, Extraction) and results.stages.extraction.layer == 21
    assert results.findings is not None and [c.id for c in results.findings][0] == "steerable"
    written = tmp_path / "results.json"
    write_json(written, to_dict(results))
    assert written.read_bytes() == QUICK.read_bytes()
    jsonschema.validate(json.loads(written.read_text()), schema())


def test_a_partial_document_leaves_out_the_stages_not_run_and_the_findings() -> None:
    results = read_results(QUICK)
    partial = dataclasses.replace(
        results, complete=False, stages=Stages(extraction=results.stages.extraction), findings=None
    )
    document = to_dict(partial)
    assert list(document["stages"]) == ["extraction"] and "findings" not in document
    assert document["model"]["revision"] is None  # None is written where the schema wants null
    jsonschema.validate(document, schema())
    assert from_dict(Results, document, "partial") == partial


def test_unknown_missing_and_ill_typed_keys_name_the_key() -> None:
    document = json.loads(QUICK.read_text())
    extraction = document["stages"]["extraction"]
    with pytest.raises(EmoauditError, match=r"here: stages\.extraction\.methods\.generation\.curves\.surprise"):
        broken = json.loads(json.dumps(document))
        broken["stages"]["extraction"]["methods"]["generation"]["curves"]["surprise"] = [0.0]
        from_dict(Results, broken, "here")
    with pytest.raises(EmoauditError, match=r"here: stages\.extraction\.tokens: Field required"):
        del extraction["tokens"]
        from_dict(Results, document, "here")


def test_writing_refuses_a_value_of_the_wrong_type() -> None:
    with pytest.raises(PydanticSerializationError):
        to_dict(Resources(peak_rss_bytes=np.int64(3), runtime_rss_bytes=None, peak_cuda_bytes=None))  # type: ignore[arg-type]


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_numbers_are_refused_when_reading(tmp_path: Path, token: str) -> None:
    path = tmp_path / "results.json"
    text, replaced = re.subn(r'"success_rate": [0-9.]+', f'"success_rate": {token}', QUICK.read_text(), count=1)
    assert replaced == 1
    path.write_text(text)
    with pytest.raises(EmoauditError, match="not JSON"):
        read_results(path)


def test_a_path_that_is_not_utf8_is_written_and_read_back(tmp_path: Path) -> None:
    """A non-UTF-8 byte in a path comes into Python as a lone surrogate (surrogateescape)."""
    model_path = os.fsdecode(b"/models/caf\xe9.gguf")
    document = json.loads(QUICK.read_text())
    document["model"]["path"] = model_path
    document["audit"]["path"] = model_path
    written = tmp_path / "results.json"
    write_json(written, document)
    written.read_bytes().decode("utf-8")  # the file itself is UTF-8
    results = read_results(written)
    assert results.model.path == results.audit.path == model_path


def test_the_summary_counts_and_shares_trials() -> None:
    def trial(emotion: str | None, multiplier: float | None, regime: str | None) -> Trial:
        strength = 0.0 if multiplier is None else 0.3 * multiplier
        return Trial("s", "neutral", "p", emotion, strength, multiplier, "text", 8, 1.0, regime=regime)

    trials = [trial(None, None, None)]
    trials += [trial("calm", 1.0, r) for r in ("surgical", "surgical", "explosive", "no_effect")]
    summary = summarise(trials, ["calm"], [1.0], ["calm"], {}, THRESHOLDS)
    assert summary.trials == 4 and summary.success_rate == 0.5
    assert summary.regime_map == {"calm": {"1.0": summary.regime_totals}}
    assert summary.regime_share("explosive") == 0.25 and summary.regime_share("repetitive_collapse") == 0.0
    assert [e.emotion for e in summary.examples["surgical"]] == ["calm", "calm"]
    assert summary.statistics.by_emotion["calm"].rate == 0.5 and summary.statistics.by_emotion["calm"].ci_low
    to_dict(summary)  # every value is of its declared type


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda e: e["emotion_layer"].__setitem__("index", 999),
            "stages.extraction.emotion_layer.index: layer 999 of 30 layers",
        ),
        (
            lambda e: e["methods"]["generation"]["curves"].__setitem__("probe_accuracy", [0.5]),
            "stages.extraction.methods.generation.curves.probe_accuracy: 1 values for 30 layers",
        ),
        (
            lambda e: e["methods"]["comprehension"]["heldout_sets"]["es"].__setitem__("accuracy", [0.1, 0.2]),
            "stages.extraction.methods.comprehension.heldout_sets.es.accuracy: 2 values for 30 layers",
        ),
        (
            lambda e: e["generation_variants"]["variants"]["reread"].__setitem__("chosen_layer", 30),
            "stages.extraction.generation_variants.variants.reread.chosen_layer: layer 30 of 30 layers",
        ),
    ],
)
def test_per_layer_curves_that_do_not_fit_the_layers_are_refused_in_one_line(
    edit: Any, message: str, tmp_path: Path
) -> None:
    # `compare` and `report` read the curves at the emotion layer: a short one was an IndexError (exit 1).
    document = json.loads(QUICK.read_text(encoding="utf-8"))
    edit(document["stages"]["extraction"])
    path = tmp_path / "results.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(EmoauditError) as raised:
        read_results(path)
    assert str(raised.value) == f"{path} is not an emoaudit results file ({message})"


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda s: s["extraction"]["methods"]["generation"]["at_emotion_layer"]["similarity"][1].pop(),
            "stages.extraction.methods.generation.at_emotion_layer.similarity: not one row per emotion of 20",
        ),
        (
            lambda s: s["extraction"]["methods"]["comprehension"]["at_emotion_layer"]["pc_scores"].pop(),
            "stages.extraction.methods.comprehension.at_emotion_layer.pc_scores: not one row per emotion of 20",
        ),
        (lambda s: s["steering"]["strengths"].pop(), "stages.steering.strengths: 4 values for 5 multipliers"),
    ],
)
def test_geometry_and_strengths_that_do_not_fit_the_emotions_and_multipliers_are_refused(
    edit: Any, message: str, tmp_path: Path
) -> None:
    # The report plots them: a short one was a ValueError traceback from numpy or zip(strict=True).
    document = json.loads(QUICK.read_text(encoding="utf-8"))
    edit(document["stages"])
    path = tmp_path / "results.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(EmoauditError) as raised:
        read_results(path)
    assert str(raised.value) == f"{path} is not an emoaudit results file ({message})"


def test_a_held_out_chance_accuracy_of_zero_is_refused_by_the_schema(tmp_path: Path) -> None:
    # The unvalidated-vectors check divides by it: zero was a ZeroDivisionError traceback from `report`.
    document = json.loads(QUICK.read_text(encoding="utf-8"))
    document["stages"]["extraction"]["methods"]["comprehension"]["heldout"]["chance_accuracy"] = 0
    path = tmp_path / "results.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(EmoauditError, match="comprehension/heldout/chance_accuracy: 0 is less than or equal to"):
        read_results(path)


def test_a_rate_with_more_successes_than_trials_is_refused(tmp_path: Path) -> None:
    # The report's binomial intervals need k <= n: more was a scipy ValueError traceback.
    document = json.loads(QUICK.read_text(encoding="utf-8"))
    document["stages"]["steering"]["summary"]["statistics"]["cells"]["brooding"]["0.25"]["successes"] = 10**9
    path = tmp_path / "results.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(EmoauditError, match=r"statistics\.cells\.brooding\.0\.25: 1000000000 successes of \d+ trials"):
        read_results(path)
