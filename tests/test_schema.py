"""The JSON Schemas of results.json and study.json are generated from the types; each must reject everything
the hand-written schema it replaced rejected (tests/data/results.schema.handwritten.json and
tests/data/study.schema.handwritten.json, kept as the reference).

The rejection corpus is made by walking that hand-written schema alongside a real document: a standard
scan's results (tests/data/standard-results-trimmed.json: /work/runs/arch-std's results.json with every list
cut to two items and every emotion but the first two left out, so that each validation is quick), and a
study of two tiny random models and one that fails to load (tests/data/tiny-study.json, written by
`emoaudit study` with tests/data/study/tiny.toml): each required key removed; each enum, const and pattern
broken; each minimum, maximum and minItems crossed; each closed object given an unknown key; each
constrained value, present or optional and absent, given values of other types. A mutation the hand-written
schema accepts is no part of the corpus."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from collections.abc import Iterator
from functools import reduce
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from emoaudit.errors import EmoauditError
from emoaudit.results.convert import from_dict, to_dict
from emoaudit.results.reading import read_results
from emoaudit.results.schema import results_schema, study_schema
from emoaudit.results.study import Study

DATA = Path(__file__).parent / "data"
HANDWRITTEN = json.loads((DATA / "results.schema.handwritten.json").read_text())
STANDARD = json.loads((DATA / "standard-results-trimmed.json").read_text())
QUICK = json.loads((DATA / "quick-results.json").read_text())
STUDY_HANDWRITTEN = json.loads((DATA / "study.schema.handwritten.json").read_text())
STUDY = json.loads((DATA / "tiny-study.json").read_text())

DELETE = object()  # a mutation that removes the key
# Values of every JSON type (and a string no pattern here matches), tried where the schema constrains a value.
OTHER_TYPES: tuple[Any, ...] = ("NOT-A-MATCH!", 1.5, -1, True, None, [], {}, [["x"]], {"x": "y"})

Where = tuple[str | int, ...]
Mutation = tuple[str, Where, Any]  # what it breaks, where, the new value (or DELETE)


def _resolve(node: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = reduce(lambda n, k: n[k], node["$ref"].removeprefix("#/").split("/"), root)
    return node


def _below(minimum: float, types: object) -> float:
    return minimum - 1 if types == "integer" else minimum - 0.5


def _walk(root: dict[str, Any], node: dict[str, Any], value: Any, where: Where, items: int) -> Iterator[Mutation]:
    """The mutations of `value` (at `where`) that `node` of the hand-written schema `root` speaks to, in the
    first `items` items of each list."""
    node = _resolve(node, root)
    for branch in node.get("oneOf", []) + node.get("anyOf", []):
        if value is not None and _resolve(branch, root).get("type") != "null":
            yield from _walk(root, branch, value, where, items)
    constrained = {"type", "enum", "const", "pattern", "oneOf", "anyOf", "minimum", "maximum"} & node.keys()
    if "enum" in node:
        yield "enum", where, "not-one-of-them"
    if "const" in node:
        yield "const", where, "0.0"
    if "pattern" in node:
        yield "pattern", where, "NOT-A-MATCH!"
    if "minimum" in node:
        yield "minimum", where, _below(node["minimum"], node.get("type"))
    if "exclusiveMinimum" in node:
        yield "exclusiveMinimum", where, node["exclusiveMinimum"]
    if "maximum" in node:
        yield "maximum", where, node["maximum"] + 1
    if "minItems" in node and isinstance(value, list):
        yield "minItems", where, value[: node["minItems"] - 1]
    if where and (constrained or "required" in node or "properties" in node):
        yield from (("type", where, other) for other in OTHER_TYPES)
    if "items" in node and isinstance(value, list) and value:
        for index, item in enumerate(value[:items]):
            yield from _walk(root, node["items"], item, (*where, index), items)
    if not isinstance(value, dict):
        return
    for key in node.get("required", []):
        if key in value:
            yield "required", (*where, key), DELETE
    properties = node.get("properties", {})
    for key, sub in properties.items():
        if key in value:
            yield from _walk(root, sub, value[key], (*where, key), items)
        else:  # an optional key this document leaves out: present, it must still be right
            yield from (("optional", (*where, key), other) for other in OTHER_TYPES)
    extra = node.get("additionalProperties")
    if extra is False:
        yield "additionalProperties", (*where, "unexpected"), 1
    elif isinstance(extra, dict):
        yield from (("additionalProperties", (*where, "unexpected"), other) for other in OTHER_TYPES)
        for key in [k for k in value if k not in properties][:2]:
            yield from _walk(root, extra, value[key], (*where, key), items)


def _mutated(document: dict[str, Any], mutation: Mutation) -> dict[str, Any]:
    _, where, new = mutation
    changed = copy.deepcopy(document)
    parent = reduce(lambda n, k: n[k], where[:-1], changed)
    if new is DELETE:
        del parent[where[-1]]
    else:
        parent[where[-1]] = new
    return changed


def rejection_corpus(schema: dict[str, Any], document: dict[str, Any], items: int = 1) -> list[Mutation]:
    """Every distinct mutation of `document` that the hand-written `schema` rejects, in the first `items` items
    of each list."""
    handwritten = jsonschema.Draft202012Validator(schema)
    seen: set[str] = set()
    corpus = []
    for mutation in _walk(schema, schema, document, (), items):
        key = repr((mutation[1], "DELETE" if mutation[2] is DELETE else mutation[2]))
        if key not in seen:
            seen.add(key)
            if not handwritten.is_valid(_mutated(document, mutation)):
                corpus.append(mutation)
    return corpus


def accepted_by(schema: dict[str, Any], document: dict[str, Any], corpus: list[Mutation]) -> list[str]:
    """The mutations of `corpus` that `schema` accepts, each as what it broke, where and how."""
    validator = jsonschema.Draft202012Validator(schema)
    return [f"{kind} {'/'.join(map(str, where))} {new!r}" for kind, where, new in corpus
            if validator.is_valid(_mutated(document, (kind, where, new)))]  # fmt: skip


def test_the_generated_schema_accepts_real_results() -> None:
    generated = jsonschema.Draft202012Validator(results_schema())
    jsonschema.Draft202012Validator.check_schema(results_schema())
    for document in (QUICK, STANDARD):
        assert jsonschema.Draft202012Validator(HANDWRITTEN).is_valid(document)
        assert list(generated.iter_errors(document)) == []


def test_the_generated_schema_rejects_everything_the_handwritten_one_rejected() -> None:
    corpus = rejection_corpus(HANDWRITTEN, STANDARD)
    kinds = {kind for kind, _, _ in corpus}
    # The walk reaches every kind of constraint the hand-written schema has.
    assert kinds == {"type", "enum", "const", "pattern", "minimum", "exclusiveMinimum", "maximum", "minItems"} | {
        "required",
        "additionalProperties",
        "optional",
    }
    assert len(corpus) > 1000
    assert accepted_by(results_schema(), STANDARD, corpus) == []


@pytest.mark.parametrize(
    ("where", "new"),
    [
        (("model", "device_map"), None),  # an OMITTED_IF_NONE field is left out, never null
        (("model", "gguf_type"), "q4_1"),
        (("stages", "steering", "summary", "regime_totals", "surgical"), DELETE),
        (("stages", "extraction", "methods", "comprehension"), DELETE),
        (("stages", "extraction", "generation_variants", "exported"), "both"),
    ],
)
def test_a_mutation_of_the_corpus_is_refused_by_the_reader_with_its_place(
    tmp_path: Path, where: Where, new: Any
) -> None:
    path = tmp_path / "results.json"
    path.write_text(json.dumps(_mutated(QUICK, ("", where, new))))
    with pytest.raises(EmoauditError, match="not an emoaudit results file \\(" + "/".join(where[:-1])):
        read_results(path)


def test_the_generated_study_schema_accepts_a_real_study_read_and_written_unchanged() -> None:
    jsonschema.Draft202012Validator.check_schema(study_schema())
    assert jsonschema.Draft202012Validator(STUDY_HANDWRITTEN).is_valid(STUDY)
    assert list(jsonschema.Draft202012Validator(study_schema()).iter_errors(STUDY)) == []
    assert [m["status"] for m in STUDY["models"]] == ["audited", "audited", "failed"]
    # Through the one converter and back: the same keys, in the same order, with the same values.
    assert json.dumps(to_dict(from_dict(Study, STUDY, "study.json"))) == json.dumps(STUDY)


def test_the_generated_study_schema_rejects_everything_the_handwritten_one_rejected() -> None:
    corpus = rejection_corpus(STUDY_HANDWRITTEN, STUDY, items=3)  # both kinds of model: audited and failed
    kinds = {kind for kind, _, _ in corpus}
    # every kind of constraint the hand-written schema has (its one optional key, behaviour, is present)
    assert kinds == {"type", "enum", "const", "pattern", "minimum", "exclusiveMinimum", "maximum", "minItems"} | {
        "required",
        "additionalProperties",
    }
    assert len(corpus) > 500
    assert accepted_by(study_schema(), STUDY, corpus) == []
    # The converter refuses them too, naming the study, but for a boolean where a number belongs (pydantic's
    # lax mode reads it as 0 or 1): a reader checks the schema first, as read_results does.
    for kind, where, new in [m for m in corpus if m[2] is not True][::25]:
        with pytest.raises(EmoauditError, match="^study.json: "):
            from_dict(Study, _mutated(STUDY, (kind, where, new)), "study.json")


def test_the_module_prints_either_schema_and_refuses_another_name() -> None:
    for name, schema in (("results", results_schema()), ("study", study_schema())):
        proc = subprocess.run([sys.executable, "-m", "emoaudit.results.schema", name], capture_output=True, text=True)
        assert proc.returncode == 0 and json.loads(proc.stdout) == schema, proc.stderr
    proc = subprocess.run([sys.executable, "-m", "emoaudit.results.schema", "studies"], capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stdout == "" and "[results|study]" in proc.stderr
