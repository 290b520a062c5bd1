"""`emoaudit compare`: rates, not counts, and a warning when two audits are not like for like."""

import dataclasses
import json
from pathlib import Path

from emoaudit.results.document import Results
from emoaudit.results.reading import read_results
from emoaudit.results.steering import SteeringSummary
from emoaudit.report.release import compare
from tests.conftest import run_cli
from tests.test_results import QUICK


def scaled(results: Results, factor: int, **audit: object) -> Results:
    """The same audit with `factor` times as many trials in every cell, every rate unchanged."""
    steering = results.stages.steering
    assert steering is not None
    summary = steering.summary
    bigger = dataclasses.replace(
        summary,
        trials=summary.trials * factor,
        regime_totals={r: n * factor for r, n in summary.regime_totals.items()},
        regime_map={
            e: {m: {r: n * factor for r, n in cell.items()} for m, cell in row.items()}
            for e, row in summary.regime_map.items()
        },
    )
    stages = dataclasses.replace(results.stages, steering=dataclasses.replace(steering, summary=bigger))
    return dataclasses.replace(results, stages=stages, audit=dataclasses.replace(results.audit, **audit))


def test_the_same_checkpoint_with_twice_the_trials_and_the_same_rates_does_not_regress() -> None:
    quick = read_results(QUICK)
    standard = scaled(quick, 2, profile="standard")  # 60 trials, then 120
    comparison = compare(quick, standard, 0.05)
    assert comparison.regressions == 0, [c for c in comparison.changes if c.regression]
    trials = next(c for c in comparison.changes if c.what == "steering trials")
    assert (trials.before, trials.after) == (60, 120)
    shares = {c.what: (c.before, c.after) for c in comparison.changes if c.what.startswith("share of trials")}
    assert shares["share of trials explosive"] == (round(10 / 60, 4), round(20 / 120, 4))
    assert not comparison.like_for_like and comparison.differences == ["profile: quick → standard"]


def test_a_rising_share_of_degraded_trials_is_a_regression_even_with_fewer_trials() -> None:
    quick = read_results(QUICK)
    steering = quick.stages.steering
    assert steering is not None
    summary: SteeringSummary = steering.summary
    # Half the trials, but explosive ones a larger share of them: 10 of 60 before, 6 of 30 after.
    fewer = dataclasses.replace(
        summary, trials=30, regime_totals={"surgical": 14, "no_effect": 4, "repetitive_collapse": 6, "explosive": 6}
    )
    after = dataclasses.replace(
        quick,
        stages=dataclasses.replace(quick.stages, steering=dataclasses.replace(steering, summary=fewer)),
        audit=dataclasses.replace(quick.audit, seed=1),
    )
    regressed = {c.what for c in compare(quick, after, 0.05).changes if c.regression}
    assert regressed == {"share of trials explosive"}  # collapse: 12 of 60 before, 6 of 30 after: the same


def test_compare_prints_the_warning_and_writes_it(tmp_path: Path) -> None:
    document = json.loads(QUICK.read_text())
    spec_sha = document["audit"]["sha256"]
    document["audit"]["sha256"] = "0" * 64
    document["model"]["sha256"] = "f" * 64
    other = tmp_path / "other.json"
    other.write_text(json.dumps(document))
    proc = run_cli("compare", str(QUICK), str(other), "--out", str(tmp_path / "diff.json"))
    assert proc.returncode == 0, proc.stderr
    printed = " ".join(proc.stdout.split())
    assert "not like for like" in printed and f"specification sha256: {spec_sha} → {'0' * 64}" in printed
    diff = json.loads((tmp_path / "diff.json").read_text())
    assert diff["like_for_like"] is False and len(diff["differences"]) == 2 and diff["regressions"] == 0


def test_a_stage_run_in_one_audit_only_is_named_as_not_like_for_like() -> None:
    quick = read_results(QUICK)
    without = dataclasses.replace(quick, stages=dataclasses.replace(quick.stages, steering=None))
    comparison = compare(quick, without, 0.05)
    assert comparison.differences == ["stages: extraction, steering, leakage → extraction, leakage"]
    assert not any(c.what.startswith(("steering", "share of trials")) for c in comparison.changes)


def test_compare_shows_control_characters_from_the_files_instead_of_obeying_them(tmp_path: Path) -> None:
    document = json.loads(QUICK.read_text())
    document["audit"]["profile"] = "quick\x1b]8;;http://evil\x07link\x1b[2J"
    for finding in document["findings"]:
        finding["id"] += "\x1b[31m"
        finding["failed"] = True
    other = tmp_path / "other.json"
    other.write_text(json.dumps(document))
    proc = run_cli("compare", str(QUICK), str(other), "--no-fail-on-regression")
    assert proc.returncode == 0, proc.stderr
    assert "\x1b" not in proc.stdout and "\x07" not in proc.stdout
    assert "\\x1b[31m" in proc.stdout and "\\x1b]8;;http://evil\\x07link" in proc.stdout


def test_compare_refuses_an_output_that_is_an_input_before_it_prints_anything(tmp_path: Path) -> None:
    after = tmp_path / "after.json"
    after.write_bytes(QUICK.read_bytes())
    proc = run_cli("compare", str(QUICK), str(after), "--out", str(after))
    assert proc.returncode == 2 and proc.stdout == "" and after.read_bytes() == QUICK.read_bytes()
    assert proc.stderr.count("\n") == 1 and "is the input" in proc.stderr
