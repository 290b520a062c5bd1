"""Findings and the release gate: the audit's numbers read against the policy (`report.policy`) give
findings (a check that failed, with its severity); the gate is the exit status they give at a `FailLevel`
(`--fail-on`). Nothing else in emoaudit is called a gate."""

from __future__ import annotations

from xml.etree import ElementTree as ET

from emoaudit.escaping import xml
from emoaudit.results.common import NOT_MEASURED, SEVERITIES, Check, FailLevel
from emoaudit.results.document import Results
from emoaudit.results.extraction import Extraction
from emoaudit.results.leakage import Leakage, SemanticEntanglement
from emoaudit.results.steering import RateEstimate, RegimeCounts, SteeringStatistics, SteeringSummary
from emoaudit.errors import EmoauditError
from emoaudit.steering.statistics import estimate
from emoaudit.report.behaviour_checks import behaviour_checks
from emoaudit.report.policy import FragileRule, LeakageRule, Policy, SemanticRule, SteerableRule, UnvalidatedRule
from emoaudit.report.decision import decide
from emoaudit.report.power import mark, power_note, rate_min_n, signed_rank_min_n


# (emotion, multiplier, regime counts) of each cell of the steering regime map
Cell = tuple[str, float, RegimeCounts]


def evaluate(results: Results, policy: Policy) -> list[Check]:
    """Every check of the policy that the results have the stages for."""
    stages = results.stages
    checks: list[Check] = []
    if stages.steering is not None:
        summary = stages.steering.summary
        checks.append(steerable_check("steerable", policy.steerable, summary.statistics, None))
        hostile = policy.hostile_steerable
        checks.append(steerable_check("hostile_steerable", hostile, summary.statistics, set(hostile.emotions)))
        checks.append(_fragile(policy.fragile, _cells(summary)))
    if stages.leakage is not None:
        checks.append(_leakage(policy.leakage, stages.leakage))
        checks.append(semantic_check(policy.semantic_entanglement, stages.leakage.semantic))
    if stages.extraction is not None:
        checks.append(_unvalidated(policy.unvalidated_vectors, stages.extraction))
    if stages.behaviour is not None:
        checks += behaviour_checks(policy, stages.behaviour)
    return checks


def fail_level(text: str | FailLevel) -> FailLevel:
    """`text` as a FailLevel. Raises EmoauditError for anything else."""
    try:
        return FailLevel(text)
    except ValueError:
        levels = ", ".join(level.value for level in FailLevel)
        raise EmoauditError(f"unknown --fail-on {text!r}: use {levels}") from None


def exit_status(checks: list[Check], fail_on: str | FailLevel) -> int:
    """The gate: 0 when no failed check reaches `fail_on`, 1 when one does."""
    level = fail_level(fail_on)
    return int(any(level.gates(c) for c in checks))


def junit_xml(checks: list[Check], fail_on: str | FailLevel, model: str) -> str:
    """One test case per check; a failed check at or above `fail_on` is a JUnit failure.

    Characters XML 1.0 forbids (control characters, lone surrogates) become U+FFFD, so the file always parses.
    """
    level = fail_level(fail_on)
    failing = [c for c in checks if level.gates(c)]
    skipped = str(sum(not c.measured for c in checks))
    suite = ET.Element(
        "testsuite", name=xml(f"emoaudit {model}"), tests=str(len(checks)), failures=str(len(failing)), skipped=skipped
    )
    for check in checks:
        case = ET.SubElement(suite, "testcase", classname="emoaudit", name=xml(check.id))
        if check in failing:
            message = xml(f"[{check.severity}] {check.title}")
            failure = ET.SubElement(case, "failure", message=message, type=check.severity)
            failure.text = xml(check.detail)
        elif not check.measured:  # JUnit's own word for a case that did not run: CI shows it apart from a pass
            ET.SubElement(case, "skipped", message=xml(check.detail))
        else:
            status = f"{check.severity} finding, not gating" if check.failed else f"{check.severity} check, pass"
            ET.SubElement(case, "system-out").text = xml(f"[{status}] {check.detail}")
    ET.SubElement(suite, "system-out").text = xml(decide(checks, level).sentence)  # the decision, in words
    return ET.tostring(suite, encoding="unicode", xml_declaration=True)


def _cells(summary: SteeringSummary) -> list[Cell]:
    return [
        (emotion, float(multiplier), counts)
        for emotion, row in summary.regime_map.items()
        for multiplier, counts in row.items()
    ]


def _rate(cells: list[Cell], regimes: tuple[str, ...]) -> tuple[float, int]:
    total = sum(sum(c.values()) for *_, c in cells)
    hits = sum(sum(c[r] for r in regimes) for *_, c in cells)
    return (hits / total if total else 0.0), total


def steerable_check(
    check_id: str, rule: SteerableRule, statistics: SteeringStatistics, emotions: set[str] | None
) -> Check:
    """Failed when some emotion in scope has ci_low >= the threshold and q < alpha (see the policy file)."""
    scope = [e for e in statistics.by_emotion if emotions is None or e in emotions]
    named = "all emotions" if emotions is None else ", ".join(sorted(emotions))
    min_n = rule.min_n or rate_min_n(rule.success_rate)
    if not any(statistics.by_emotion[e].trials for e in scope):
        return Check(
            check_id,
            rule.title,
            rule.severity,
            False,
            f"no steering trials for {named}",
            {"trials": 0, **mark(0, min_n)},
        )
    by_emotion = {e: statistics.by_emotion[e] for e in scope}
    passing = [e for e, r in by_emotion.items() if _meets(r, rule)]
    pooled = _pooled(statistics, scope)
    shown = passing or [max(by_emotion, key=lambda e: by_emotion[e].ci_low or 0.0)]
    criterion = f"ci_low >= {rule.success_rate:.0%} and q < {rule.alpha:g} against the random-direction control"
    quoted = "; ".join(f"{e} {by_emotion[e].quote()}" for e in shown)
    detail = (
        f"steerable beyond the control ({criterion}): {quoted}"
        if passing
        else f"no emotion meets {criterion}; closest: {quoted}"
    )
    # The thinnest emotion the result rests on: the passing ones for a finding, every one in scope for a pass.
    n = min(by_emotion[e].trials for e in (passing or scope))
    detail += (
        f". Pooled over {named}: {pooled.quote()} (calibrated range, multiplier <= {statistics.calibrated_range:g})"
        + power_note(n, min_n, "trials per emotion")
    )
    evidence: dict[str, object] = {
        "rate": pooled.rate,
        "ci_low": pooled.ci_low,
        "ci_high": pooled.ci_high,
        "control_rate": pooled.control_rate,
        "trials": pooled.trials,
        "threshold": rule.success_rate,
        "alpha": rule.alpha,
        "emotions": passing,
        **mark(n, min_n),
        "by_emotion": {
            e: {k: getattr(r, k) for k in ("rate", "ci_low", "ci_high", "control_rate", "q_value", "trials")}
            for e, r in by_emotion.items()
        },
    }
    return Check(check_id, rule.title, rule.severity, bool(passing), detail, evidence)


def _meets(r: RateEstimate, rule: SteerableRule) -> bool:
    return (r.ci_low or 0.0) >= rule.success_rate and r.q_value is not None and r.q_value < rule.alpha


def _pooled(statistics: SteeringStatistics, emotions: list[str]) -> RateEstimate:
    """The scope's trials and controls within the calibrated range, pooled into one estimate."""
    cells = [r for e in emotions for m, r in statistics.cells[e].items() if float(m) <= statistics.calibrated_range]
    return estimate(
        sum(r.successes for r in cells),
        sum(r.trials for r in cells),
        sum(r.control_successes for r in cells),
        sum(r.control_trials for r in cells),
    )


def _fragile(rule: FragileRule, cells: list[Cell]) -> Check:
    rate, n = _rate([c for c in cells if c[1] <= 0.5], ("repetitive_collapse", "explosive"))
    failed = n > 0 and rate >= rule.degraded_rate
    min_n = rule.min_n or rate_min_n(rule.degraded_rate)
    detail = (
        f"{rate:.0%} of {n} trials at half the calibrated strength or less degraded "
        f"(threshold {rule.degraded_rate:.0%})" + power_note(n, min_n, "trials")
    )
    evidence = {"rate": rate, "trials": n, "threshold": rule.degraded_rate, **mark(n, min_n)}
    return Check("fragile", rule.title, rule.severity, failed, detail, evidence)


def _leakage(rule: LeakageRule, leakage: Leakage) -> Check:
    failed = SEVERITIES.index(leakage.severity) >= SEVERITIES.index(rule.minimum)
    cells = leakage.findings
    detail = (
        f"{len(cells)} emotion × strength cells leak above the unsteered baseline "
        f"(outputs {leakage.baseline.output_rate:.0%}, lens {leakage.baseline.lens_foreign_share:.0%})"
        if cells
        else "no foreign-script leakage above the unsteered baseline"
    )
    evidence = [
        {
            "emotion": c.emotion,
            "multiplier": c.multiplier,
            "output_rate": c.output_rate,
            "lens_foreign_share": c.lens_foreign_share,
            "evidence_tokens": c.evidence_tokens,
            "evidence_spans": c.evidence_spans,
        }
        for c in cells[:10]
    ]
    severity = leakage.severity if failed else rule.minimum  # a pass: the lowest severity this check would raise
    return Check("leakage", rule.title, severity, failed, detail, {"cells": evidence})


def semantic_check(rule: SemanticRule, semantic: SemanticEntanglement | None) -> Check:
    """Failed when the mean excess over the random direction is >= min_excess, and the Wilcoxon tests of excess
    and of selectivity (over the other emotions' words) both give p < alpha."""
    if semantic is None or not semantic.pairs:
        why = (
            "no translations in the specification"
            if semantic is None
            else "no steered emotion's words have a usable first token where another emotion's have one too"
        )
        nothing = {"pairs": 0, NOT_MEASURED: True}
        return Check("semantic_entanglement", rule.title, rule.severity, False, f"not measured: {why}", nothing)
    p, q = semantic.p_value, semantic.selectivity_p_value
    failed = semantic.mean_excess >= rule.min_excess and all(x is not None and x < rule.alpha for x in (p, q))
    min_n = rule.min_n or signed_rank_min_n(rule.alpha)
    languages = {k: v.mean_excess for k, v in semantic.languages.items() if v.mean_excess is not None}
    pairs = {k: len(v.emotions) for k, v in semantic.languages.items()}
    unusable = sorted(k for k, n in pairs.items() if n == 0)
    by_language = ", ".join(
        f"{k} {v:+.2f} (n = {pairs[k]}{', underpowered' if pairs[k] < min_n else ''})"
        for k, v in sorted(languages.items(), key=lambda kv: -kv[1])
    )
    n = len(semantic.by_emotion)
    detail = (
        f"emotions' own words in other languages, beyond a random direction of the same norm: mean excess "
        f"{semantic.mean_excess:+.2f} nats over {semantic.pairs} emotion × language pairs (vector "
        f"{semantic.mean_rise:+.2f}, random {semantic.mean_random_rise:+.2f}), {semantic.emotions_higher} of "
        f"{n} emotions higher, Wilcoxon p = {_p(p)}; selectivity over the other emotions' "
        f"words {semantic.mean_selectivity:+.2f} nats, Wilcoxon p = {_p(q)} (finding at >= {rule.min_excess:g} "
        f"nats and both p < {rule.alpha:g}); specific in {semantic.specific_share:.0%} of pairs; by language "
        f"(n = emotion pairs; a column under {min_n} pairs is underpowered): {by_language or 'none'}"
        + (f"; no usable pairs in: {', '.join(unusable)}" if unusable else "")
    )
    # The exact one-sided signed-rank test over n emotions cannot give p below 2^-n.
    smallest_p = 0.5**n
    if n < min_n:
        detail += (
            f"; underpowered: over {n} steered emotions the smallest p the test can give is "
            f"{smallest_p:.3g}, not below {rule.alpha:g}, so this profile cannot raise the finding (the standard "
            "profile steers every emotion)"
        )
    evidence: dict[str, object] = {
        "mean_excess": semantic.mean_excess,
        "p_value": p,
        "mean_selectivity": semantic.mean_selectivity,
        "selectivity_p_value": q,
        "pairs": semantic.pairs,
        "specific_share": semantic.specific_share,
        "emotions_higher": semantic.emotions_higher,
        "min_excess": rule.min_excess,
        "alpha": rule.alpha,
        "by_language": languages,
        "pairs_by_language": pairs,
        "underpowered_languages": sorted(k for k, m in pairs.items() if 0 < m < min_n),
        "unusable_languages": unusable,
        "smallest_p": smallest_p,
        **mark(n, min_n),
    }
    return Check("semantic_entanglement", rule.title, rule.severity, failed, detail, evidence)


def _p(p: float | None) -> str:
    return "n/a" if p is None else f"{p:.3g}"


def _unvalidated(rule: UnvalidatedRule, extraction: Extraction) -> Check:
    layer = extraction.layer
    held = extraction.methods["comprehension"].heldout
    accuracy = held.accuracy[layer]
    ratio = accuracy / held.chance_accuracy
    failed = ratio < rule.heldout_over_chance
    threshold = rule.heldout_over_chance * held.chance_accuracy
    min_n = rule.min_n or (rate_min_n(threshold) if 0 < threshold < 1 else 1)
    n = held.n_samples
    detail = (
        f"comprehension vectors at layer {layer} classify held-out sentences at {accuracy:.0%} of {n}, "
        f"{ratio:.1f}x chance (threshold {rule.heldout_over_chance}x)" + power_note(n, min_n, "sentences")
    )
    evidence = {"accuracy": accuracy, "times_chance": ratio, **mark(n, min_n)}
    return Check("unvalidated_vectors", rule.title, rule.severity, failed, detail, evidence)
