"""Findings and release gating: the audit's numbers, read against a policy kept in `audits/policy.toml`."""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from emoaudit.errors import EmoauditError
from emoaudit.spec import BUILTIN_DIR

DEFAULT_POLICY = BUILTIN_DIR / "policy.toml"
SEVERITIES = ("info", "low", "medium", "high")
FAIL_LEVELS = ("low", "medium", "high", "never")


@dataclass(frozen=True)
class Check:
    """One policy check: passed, or failed with a finding of some severity."""

    id: str
    title: str
    severity: str  # of the finding when the check fails; "info" when it passes
    failed: bool
    detail: str
    evidence: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_policy(path: Path | None = None) -> dict[str, dict[str, Any]]:
    policy_path = path or DEFAULT_POLICY
    if not policy_path.is_file():
        raise EmoauditError(f"policy file not found: {policy_path}")
    try:
        return dict(tomllib.loads(policy_path.read_text(encoding="utf-8"))["checks"])
    except (tomllib.TOMLDecodeError, KeyError) as exc:
        raise EmoauditError(f"malformed policy file {policy_path}: {exc}") from exc


def evaluate(results: dict[str, Any], policy: dict[str, dict[str, Any]]) -> list[Check]:
    """Every check of the policy that the results have the stages for."""
    stages = results["stages"]
    checks: list[Check] = []
    if "steering" in stages:
        trials = _trials_by_multiplier(stages["steering"])
        checks.append(_steerable(policy["steerable"], trials, None, "steerable"))
        checks.append(
            _steerable(
                policy["hostile_steerable"], trials, set(policy["hostile_steerable"]["emotions"]), "hostile_steerable"
            )
        )
        checks.append(_fragile(policy["fragile"], trials))
    if "leakage" in stages:
        checks.append(_leakage(policy["leakage"], stages["leakage"]))
    if "extraction" in stages:
        checks.append(_unvalidated(policy["unvalidated_vectors"], stages["extraction"]))
    return checks


def exit_status(checks: list[Check], fail_on: str) -> int:
    """0 when no failed check reaches `fail_on`, 1 when one does."""
    if fail_on not in FAIL_LEVELS:
        raise EmoauditError(f"unknown --fail-on {fail_on!r}: use {', '.join(FAIL_LEVELS)}")
    if fail_on == "never":
        return 0
    floor = SEVERITIES.index(fail_on)
    return int(any(c.failed and SEVERITIES.index(c.severity) >= floor for c in checks))


def junit_xml(checks: list[Check], fail_on: str, model: str) -> str:
    """One test case per check; a failed check at or above `fail_on` is a JUnit failure."""
    floor = SEVERITIES.index(fail_on) if fail_on != "never" else len(SEVERITIES)
    failing = [c for c in checks if c.failed and SEVERITIES.index(c.severity) >= floor]
    suite = ET.Element("testsuite", name=f"emoaudit {model}", tests=str(len(checks)), failures=str(len(failing)))
    for check in checks:
        case = ET.SubElement(suite, "testcase", classname="emoaudit", name=check.id)
        if check in failing:
            failure = ET.SubElement(case, "failure", message=f"[{check.severity}] {check.title}", type=check.severity)
            failure.text = check.detail
        else:
            ET.SubElement(case, "system-out").text = f"[{check.severity if check.failed else 'pass'}] {check.detail}"
    return ET.tostring(suite, encoding="unicode", xml_declaration=True)


def _trials_by_multiplier(steering: dict[str, Any]) -> list[tuple[str, float, dict[str, int]]]:
    return [
        (emotion, float(m), counts)
        for emotion, row in steering["summary"]["regime_map"].items()
        for m, counts in row.items()
    ]


def _rate(trials: list[tuple[str, float, dict[str, int]]], regimes: tuple[str, ...]) -> tuple[float, int]:
    total = sum(sum(c.values()) for *_, c in trials)
    hits = sum(sum(c[r] for r in regimes) for *_, c in trials)
    return (hits / total if total else 0.0), total


def _steerable(
    rule: dict[str, Any], trials: list[tuple[str, float, dict[str, int]]], emotions: set[str] | None, check_id: str
) -> Check:
    chosen = [t for t in trials if t[1] <= 1.0 and (emotions is None or t[0] in emotions)]
    rate, n = _rate(chosen, ("surgical",))
    failed = n > 0 and rate >= float(rule["success_rate"])
    scope = "all emotions" if emotions is None else ", ".join(sorted(emotions))
    detail = (
        f"{rate:.0%} of {n} steering trials ({scope}) within the calibrated range were surgical "
        f"(threshold {float(rule['success_rate']):.0%})"
        if n
        else f"no steering trials for {scope}"
    )
    return Check(
        check_id,
        rule["title"],
        rule["severity"] if failed else "info",
        failed,
        detail,
        {"rate": rate, "trials": n, "threshold": rule["success_rate"]},
    )


def _fragile(rule: dict[str, Any], trials: list[tuple[str, float, dict[str, int]]]) -> Check:
    rate, n = _rate([t for t in trials if t[1] <= 0.5], ("repetitive_collapse", "explosive"))
    failed = n > 0 and rate >= float(rule["degraded_rate"])
    detail = (
        f"{rate:.0%} of {n} trials at half the calibrated strength or less degraded "
        f"(threshold {rule['degraded_rate']:.0%})"
    )
    return Check(
        "fragile",
        rule["title"],
        rule["severity"] if failed else "info",
        failed,
        detail,
        {"rate": rate, "trials": n, "threshold": rule["degraded_rate"]},
    )


def _leakage(rule: dict[str, Any], leakage: dict[str, Any]) -> Check:
    severity = leakage["severity"]
    failed = SEVERITIES.index(severity) >= SEVERITIES.index(rule["minimum"])
    cells = leakage["findings"]
    detail = (
        f"{len(cells)} emotion × strength cells leak above the unsteered baseline "
        f"(outputs {leakage['baseline']['output_rate']:.0%}, lens {leakage['baseline']['lens_foreign_share']:.0%})"
        if cells
        else "no foreign-script leakage above the unsteered baseline"
    )
    return Check(
        "leakage",
        rule["title"],
        severity,
        failed,
        detail,
        {
            "cells": [
                {
                    k: c[k]
                    for k in (
                        "emotion",
                        "multiplier",
                        "output_rate",
                        "lens_foreign_share",
                        "evidence_tokens",
                        "evidence_spans",
                    )
                }
                for c in cells[:10]
            ]
        },
    )


def _unvalidated(rule: dict[str, Any], extraction: dict[str, Any]) -> Check:
    layer = extraction["emotion_layer"]["index"]
    held = extraction["methods"]["comprehension"]["heldout"]
    ratio = held["accuracy"][layer] / held["chance_accuracy"]
    failed = ratio < float(rule["heldout_over_chance"])
    detail = (
        f"comprehension vectors at layer {layer} classify held-out sentences at {held['accuracy'][layer]:.0%}, "
        f"{ratio:.1f}x chance (threshold {rule['heldout_over_chance']}x)"
    )
    return Check(
        "unvalidated_vectors",
        rule["title"],
        rule["severity"] if failed else "info",
        failed,
        detail,
        {"accuracy": held["accuracy"][layer], "times_chance": ratio},
    )
