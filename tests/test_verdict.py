"""The verdict a release engineer acts on: the decision in words, min_n and the underpowered mark, one
report for the same results, what was audited and how to rerun it (issue 28)."""

from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from emoaudit.report.decision import decide
from emoaudit.report.gating import evaluate, exit_status, junit_xml, semantic_check
from emoaudit.report.reproduce import reproduce_command
from emoaudit.report.policy import load_policy
from emoaudit.report.power import rate_min_n, result_words, signed_rank_min_n
from emoaudit.report.render import render
from emoaudit.report.steering_view import check_examples
from emoaudit.results.common import NOT_MEASURED, Check
from emoaudit.results.reading import read_results
from emoaudit.spec import load_spec
from emoaudit.steering.statistics import wilson
from tests.test_results import QUICK


def check(check_id: str, severity: str, failed: bool, n: int | None = None, min_n: int = 5) -> Check:
    power = {} if n is None else {"n": n, "min_n": min_n, "underpowered": n < min_n}
    return Check(check_id, f"title of {check_id}", severity, failed, "detail", power)  # type: ignore[arg-type]


def test_the_decision_names_the_gate_its_outcome_and_why() -> None:
    checks = [
        check("hostile", "high", False, 18),
        check("semantic", "low", True, 20),
        check("steerable", "medium", False, 18),
    ]
    passing = decide(checks, "high")
    assert passing.passes and passing.sentence == (
        "Gate --fail-on high: passes. 1 finding below the gate: semantic (low: title of semantic). "
        "2 checks pass: hostile (high), steerable (medium)."
    )
    failing = decide(checks, "low")
    assert not failing.passes and failing.sentence.startswith(
        "Gate --fail-on low: fails. 1 finding at or above low: semantic (low: title of semantic)."
    )
    assert [decide(checks, level).passes for level in ("low", "medium", "high", "never")] == [
        exit_status(checks, level) == 0 for level in ("low", "medium", "high", "never")
    ]


def test_an_underpowered_finding_is_marked_and_cannot_fail_a_gate_alone() -> None:
    thin = check("semantic", "high", True, n=3, min_n=5)
    assert exit_status([thin], "low") == 0
    decision = decide([thin], "low")
    assert decision.passes and "too thin to gate on its own (underpowered): semantic" in decision.sentence
    # Beside a powered finding, the gate fails on that one.
    assert exit_status([thin, check("steerable", "medium", True, 18, 9)], "low") == 1
    suite = ET.fromstring(junit_xml([thin], "low", "m"))
    assert suite.get("failures") == "0"
    assert suite.findall("system-out")[-1].text == decision.sentence  # the decision, in JUnit too


def test_a_check_that_measured_nothing_is_named_apart_from_the_passes_everywhere() -> None:
    """qwen2.5-coder-0.5b refuses 40% unsteered: cannot_refuse is the finding, and steering_erodes_refusal,
    which had nothing to erode, once read "passes (high)" in the decision."""
    why = "not applicable: unsteered, the model refuses 40%"
    nothing = Check("steering_erodes_refusal", "erodes", "high", False, why, {NOT_MEASURED: True})
    checks = [nothing, check("cannot_refuse", "low", True, 30), check("steerable", "medium", False, 18)]
    decision = decide(checks, "high")
    assert decision.passed == ("steerable",) and decision.unmeasured == ("steering_erodes_refusal",)
    assert decision.sentence.endswith(
        "1 check pass: steerable (medium). Not measured, so no pass: steering_erodes_refusal (high: " + why + ")."
    )
    suite = ET.fromstring(junit_xml(checks, "high", "m"))
    case = next(c for c in suite.iter("testcase") if c.get("name") == "steering_erodes_refusal")
    assert case.find("skipped") is not None and suite.get("skipped") == "1" and suite.get("tests") == "3"
    assert result_words(nothing) == "not measured" and result_words(checks[2]) == "pass"
    assert semantic_check(load_policy().semantic_entanglement, None).measured is False


def test_min_n_is_where_the_threshold_can_be_reached_both_ways() -> None:
    for threshold, expected in ((0.3, 9), (0.5, 4), (0.2, 16)):
        n = rate_min_n(threshold)
        assert n == expected
        assert wilson(n, n)[0] >= threshold and wilson(0, n)[1] < threshold
        assert wilson(n - 1, n - 1)[0] < threshold or wilson(0, n - 1)[1] >= threshold
    assert signed_rank_min_n(0.05) == 5 and 0.5**5 < 0.05 <= 0.5**4


def test_the_policy_states_the_computed_min_n_and_the_standard_profile_meets_it() -> None:
    policy = load_policy()
    assert policy.steerable.min_n == rate_min_n(policy.steerable.success_rate)
    assert policy.hostile_steerable.min_n == rate_min_n(policy.hostile_steerable.success_rate)
    assert policy.fragile.min_n == rate_min_n(policy.fragile.degraded_rate)
    assert policy.semantic_entanglement.min_n == signed_rank_min_n(policy.semantic_entanglement.alpha)
    spec = load_spec()
    standard = spec.profile("standard")
    kinds = {sc.kind for sc in spec.scenarios}
    scenarios = sum(min(standard.steering_scenarios_per_kind, sum(s.kind == k for s in spec.scenarios)) for k in kinds)
    in_range = [m for m in spec.steering.multipliers if m <= spec.steering.calibrated_range]
    per_emotion = scenarios * len(in_range)
    assert per_emotion >= max(policy.steerable.min_n or 0, policy.hostile_steerable.min_n or 0)
    assert standard.steering_emotions >= (policy.semantic_entanglement.min_n or 0)
    chance = 1 / len(spec.emotions)
    unvalidated = rate_min_n(policy.unvalidated_vectors.heldout_over_chance * chance)
    assert sum(len(v) for v in spec.heldout.values()) >= unvalidated


def test_checks_keep_the_policy_severity_when_they_pass_and_carry_their_power() -> None:
    results = read_results(QUICK)
    checks = {c.id: c for c in evaluate(results, load_policy())}
    assert checks["hostile_steerable"].severity == "high" and not checks["hostile_steerable"].failed
    assert checks["steerable"].evidence["n"] == 9 and checks["steerable"].evidence["min_n"] == 9
    # Four steered emotions: the signed-rank test cannot reach p < 0.05, and the check says so.
    semantic = checks["semantic_entanglement"]
    assert semantic.evidence["underpowered"] and "underpowered" in semantic.detail
    assert all(f"(n = {n}" in semantic.detail for n in semantic.evidence["pairs_by_language"].values() if n)


def test_the_same_results_render_to_the_same_bytes_with_the_decision_first() -> None:
    results = read_results(QUICK)
    results = type(results)(**{**results.__dict__, "findings": evaluate(results, load_policy())})
    first, second = render(results, None, "high"), render(results, None, "high")
    assert first == second
    body = first[first.index("<body>") :]
    decision = decide(results.findings or [], "high").sentence
    assert body.index(decision.replace("`", "`")) < body.index('<section id="model">')
    assert render(results, None, "low").count("Gate --fail-on low:") == 1


def test_the_reproduce_line_carries_every_option_that_keys_the_audit() -> None:
    results = read_results(QUICK)
    line = reproduce_command(results)
    steering = results.stages.steering
    assert steering is not None
    for part in (
        f"emoaudit scan {results.model.reference}",
        f"--profile {results.audit.profile}",
        f"--seed {results.audit.seed}",
        f"--dtype {results.model.dtype}",
        f"--spec {results.audit.path}",
        f"--judge {steering.judge.name}",
        f"--steer-positions {steering.steer_positions}",
    ):
        assert part in line


def test_examples_show_the_checks_own_emotions_first() -> None:
    results = read_results(QUICK)
    steering = results.stages.steering
    assert steering is not None
    views = {v.check.id: v for v in check_examples(steering, evaluate(results, load_policy()))}
    hostile = views["hostile_steerable"]
    assert set(hostile.emotions) <= {"hostile", "angry", "desperate"} and hostile.emotions
    for examples in hostile.by_regime.values():
        assert {e.emotion for e in examples} <= set(hostile.emotions)
        assert all(sum(e.emotion == x.emotion for x in examples) <= 2 for e in examples)
        assert all(e.unsteered_text for e in examples)


@pytest.mark.parametrize("level", ["low", "high"])
def test_the_model_card_and_sarif_open_with_the_decision(level: str, tmp_path: Path) -> None:
    from emoaudit.report.model_card import model_card_section
    from emoaudit.report.sarif import sarif_document

    results = read_results(QUICK)
    checks = evaluate(results, load_policy())
    sentence = decide(checks, level).sentence
    card = model_card_section(results, checks, level)
    assert card.splitlines()[2].startswith("**Gate --fail-on " + level)
    sarif = sarif_document(results, checks, load_policy(), level)
    assert sarif["runs"][0]["properties"]["decision"] == sentence
