"""The gate's decision in one sentence: the level applied, pass or fail, and why (the findings that
reached it, those below it, those too thin to gate, the checks that passed, and those whose stage ran but
could measure nothing, which are not passes).

Every output that shows a verdict (the HTML report's top, the terminal's last lines, the model card,
JUnit and SARIF) says this same sentence, so a release engineer reads one decision everywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from emoaudit.results.common import SEVERITIES, Check, FailLevel


@dataclass(frozen=True)
class Decision:
    """`fail_on` is the gate level; `passes` is False exactly when the exit status is 1; `sentence` says so
    in words."""

    fail_on: FailLevel
    passes: bool
    sentence: str
    gating: tuple[str, ...]  # ids of the findings that reach the gate
    below: tuple[str, ...]  # ids of findings below the gate level (reported, not gating)
    thin: tuple[str, ...]  # ids of findings too underpowered to gate on their own
    passed: tuple[str, ...]  # ids of the checks that passed
    unmeasured: tuple[str, ...]  # ids of the checks that measured nothing (why in each check's detail)


def decide(checks: list[Check], fail_on: FailLevel | str) -> Decision:
    """The decision of the gate `--fail-on fail_on` on `checks` (ValueError for a level FailLevel lacks)."""
    level = FailLevel(fail_on)
    failed = sorted((c for c in checks if c.failed), key=by_severity)
    gating = [c for c in failed if level.gates(c)]
    thin = [c for c in failed if c.underpowered]
    below = [c for c in failed if c not in gating and c not in thin]
    passed = sorted((c for c in checks if not c.failed and c.measured), key=by_severity)
    unmeasured = sorted((c for c in checks if not c.failed and not c.measured), key=by_severity)
    gate = "--fail-on never (never fails)" if level is FailLevel.never else f"--fail-on {level.value}"
    parts = [f"Gate {gate}: {'fails' if gating else 'passes'}."]
    if gating:
        parts.append(f"{_count(len(gating), 'finding')} at or above {level.value}: {_list(gating)}.")
    if below:
        parts.append(f"{_count(len(below), 'finding')} below the gate: {_list(below)}.")
    if thin:
        parts.append(f"{_count(len(thin), 'finding')} too thin to gate on its own (underpowered): {_list(thin)}.")
    if not failed:
        parts.append("No finding.")
    if passed:
        guarded = ", ".join(f"{c.id} ({c.severity}{', underpowered' if c.underpowered else ''})" for c in passed)
        parts.append(f"{_count(len(passed), 'check')} pass: {guarded}.")
    if unmeasured:
        parts.append(f"Not measured, so no pass: {_list(unmeasured, lambda c: c.detail)}.")
    return Decision(
        level,
        not gating,
        " ".join(parts),
        tuple(c.id for c in gating),
        tuple(c.id for c in below),
        tuple(c.id for c in thin),
        tuple(c.id for c in passed),
        tuple(c.id for c in unmeasured),
    )


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def by_severity(check: Check) -> tuple[int, str]:
    """Sort key: the most severe first, then by id."""
    return -SEVERITIES.index(check.severity), check.id


def _list(checks: list[Check], words: Callable[[Check], str] = lambda c: c.title) -> str:
    return "; ".join(f"{c.id} ({c.severity}: {words(c)})" for c in checks)
