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

from emoaudit.results.claims import ClaimOutcome, Measured, PaperClaims
from emoaudit.results.common import Check, Resources
from emoaudit.results.convert import from_dict, to_dict
from emoaudit.results.document import AuditInfo, Environment, Results, Stages
from emoaudit.results.extraction import (
    AtLayer,
    Curves,
    EmbeddingBaseline,
    EmotionLayer,
    Extraction,
    GenerationVariants,
    HeldoutCurves,
    MethodResults,
    StoryKeywords,
    TruncatedTexts,
    VariantScores,
)
from emoaudit.results.leakage import (
    Leakage,
    LeakageCell,
    SemanticEntanglement,
    SemanticLanguage,
    SemanticPair,
)
from emoaudit.results.norms import MethodNorms, NormCorrelation, Norms
from emoaudit.results.reading import read_results, schema
from emoaudit.results.steering import (
    Controls,
    JudgeInfo,
    RateEstimate,
    Steering,
    SteeringStatistics,
    SteeringSummary,
)
from emoaudit.errors import EmoauditError
from emoaudit.results.identity import ModelIdentity
from emoaudit.results.steering import JudgeValidation, NoiseFloor
from emoaudit.results.extraction import MethodComparison
from emoaudit.steering.summary import summarise
from emoaudit.steering.trials import Trial
from emoaudit.storage import write_json
from tests.conftest import THRESHOLDS

# results.json of `emoaudit scan smollm2-135m --profile quick --dtype float32` (seed 0): the typed reader
# and writer must give back these very bytes.
QUICK = Path(__file__).parent / "data" / "quick-results.json"

# Where each typed object sits in the JSON Schema.
SCHEMA_OF: list[tuple[tuple[str, ...], type]] = [
    ((), Results),
    (("properties", "model"), ModelIdentity),
    (("properties", "audit"), AuditInfo),
    (("properties", "stages"), Stages),
    (("properties", "resources"), Resources),
    (("properties", "environment"), Environment),
    (("$defs", "check"), Check),
    (("$defs", "paper_claims"), PaperClaims),
    (("$defs", "claim_outcome"), ClaimOutcome),
    (("$defs", "claim_measured"), Measured),
    (("$defs", "extraction"), Extraction),
    (("$defs", "extraction", "properties", "emotion_layer"), EmotionLayer),
    (("$defs", "extraction", "properties", "comparison"), MethodComparison),
    (("$defs", "extraction", "properties", "truncated_texts"), TruncatedTexts),
    (("$defs", "method"), MethodResults),
    (("$defs", "method", "properties", "curves"), Curves),
    (("$defs", "method", "properties", "heldout"), HeldoutCurves),
    (("$defs", "method", "properties", "embedding"), EmbeddingBaseline),
    (("$defs", "extraction", "properties", "generation_variants"), GenerationVariants),
    (("$defs", "generation_variant"), VariantScores),
    (("$defs", "extraction", "properties", "story_keywords"), StoryKeywords),
    (("$defs", "method", "properties", "at_emotion_layer"), AtLayer),
    (("$defs", "steering"), Steering),
    (("$defs", "steering", "properties", "judge"), JudgeInfo),
    (("$defs", "judge_validation"), JudgeValidation),
    (("$defs", "steering", "properties", "judge", "properties", "noise_floor"), NoiseFloor),
    (("$defs", "steering", "properties", "summary"), SteeringSummary),
    (("$defs", "steering_controls"), Controls),
    (("$defs", "steering_statistics"), SteeringStatistics),
    (("$defs", "rate_estimate"), RateEstimate),
    (("$defs", "leakage"), Leakage),
    (("$defs", "leakage_cell"), LeakageCell),
    (("$defs", "semantic_entanglement"), SemanticEntanglement),
    (("$defs", "semantic_language"), SemanticLanguage),
    (("$defs", "semantic_pair"), SemanticPair),
    (("$defs", "norms"), Norms),
    (("$defs", "norms_method"), MethodNorms),
    (("$defs", "norm_correlation"), NormCorrelation),
]


def node(path: tuple[str, ...]) -> dict[str, Any]:
    found: Any = schema()
    for key in path:
        found = found[key]
    return found


@pytest.mark.parametrize(("path", "cls"), SCHEMA_OF, ids=[c.__name__ for _, c in SCHEMA_OF])
def test_schema_requires_exactly_the_fields_without_defaults(path: tuple[str, ...], cls: type) -> None:
    fields = dataclasses.fields(cls)
    required = {f.name for f in fields if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
    described = node(path)
    assert set(described.get("required", [])) == required
    assert set(described.get("properties", {})) <= {f.name for f in fields}


def test_every_results_object_is_placed_in_the_schema() -> None:
    """A dataclass nested in Results that no schema entry describes would escape the test above."""
    seen: set[type] = set()

    def walk(hint: Any) -> None:
        for arg in typing.get_args(hint) or [hint]:
            if typing.get_args(arg):
                walk(arg)
            elif dataclasses.is_dataclass(arg) and arg not in seen:
                seen.add(arg)
                for field_hint in typing.get_type_hints(arg).values():
                    walk(field_hint)

    walk(Results)
    # Small value objects the schema leaves open need no entry of their own.
    open_objects = {"AffectAxis", "Example", "SteeringScenario", "SteeringTokens", "ExtractionTokens", "VectorLens"}
    open_objects |= {"Calibration", "Thresholds", "LeakageThresholds", "LeakageBaseline"}
    assert {c.__name__ for c in seen - {cls for _, cls in SCHEMA_OF}} == open_objects


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
