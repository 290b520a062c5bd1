"""Compliance exports of a finished audit: SARIF, the model-card section and the PDF, hostile text included."""

import json
import os
import re
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from sarif_pydantic import Sarif

from emoaudit.results.common import Check
from emoaudit.results.reading import read_results
from emoaudit.report.model_card import model_card_section
from emoaudit.report.policy import load_policy
from emoaudit.report.sarif import sarif_document
from tests.conftest import BEHAVIOUR_CHECKS, run_cli

QUICK = Path(__file__).parent / "data" / "quick-results.json"
HOSTILE = (
    "| ![x](http://evil) <script>alert(1)</script>\n```\n# heading \x1b[31m\x00 \ud800 *bold* [link](javascript:x)"
)


def hostile_results():  # type: ignore[no-untyped-def]
    """The real quick scan's results with hostile text in a finding and in the model reference."""
    results = read_results(QUICK)
    findings = list(results.findings or [])
    findings[0] = replace(findings[0], detail=HOSTILE, failed=True, severity="medium")  # a finding, whatever the scan
    return replace(results, findings=findings, model=replace(results.model, reference="evil " + HOSTILE))


def test_sarif_results_are_exactly_the_failed_findings(tmp_path: Path) -> None:
    sarif = tmp_path / "f.sarif"
    proc = run_cli("report", str(QUICK), "--out", str(tmp_path / "r.html"), "--sarif", str(sarif), "--fail-on", "never")
    assert proc.returncode == 0, proc.stderr
    document = json.loads(sarif.read_text(encoding="utf-8"))
    Sarif.model_validate(document)  # an independent reading of SARIF 2.1.0
    run = document["runs"][0]
    findings = read_results(QUICK).findings or []
    assert [r["ruleId"] for r in run["results"]] == [c.id for c in findings if c.failed]
    # the driver's rules are the policy's checks; the quick fixture predates the behaviour stage, whose five
    # checks are rules without results here
    assert {r["id"] for r in run["tool"]["driver"]["rules"]} == {c.id for c in findings} | BEHAVIOUR_CHECKS
    levels = {"high": "error", "medium": "warning", "low": "note"}
    assert [r["level"] for r in run["results"]] == [levels[c.severity] for c in findings if c.failed]
    artifact = run["artifacts"][0]
    assert artifact["hashes"]["sha-256"] == read_results(QUICK).model.sha256


def test_sarif_stays_well_formed_with_hostile_text() -> None:
    results = hostile_results()
    document = sarif_document(results, results.findings or [], load_policy())
    text = json.dumps(document, ensure_ascii=True)  # what the writer's escapes amount to
    Sarif.model_validate(json.loads(text))
    assert json.loads(text)["runs"][0]["results"][0]["message"]["text"] == HOSTILE
    assert "%5Cud800" not in document["runs"][0]["artifacts"][0]["location"]["uri"]
    assert " " not in document["runs"][0]["artifacts"][0]["location"]["uri"]


def test_model_card_escapes_hostile_text_and_its_yaml_reads_back() -> None:
    results = hostile_results()
    checks = results.findings or []
    card = model_card_section(results, checks)
    assert results.model.sha256 and results.model.sha256 in card
    assert "<script>" not in card and not re.search(r"(?<!\\)\]\(", card) and "\x1b" not in card and "\x00" not in card
    table = [line for line in card.splitlines() if line.startswith("| ")]
    assert len(table) == 2 + len(checks)
    assert all(len(re.findall(r"(?<!\\)\|", row)) == 6 for row in table)  # no cell split by a hostile pipe
    fences = [i for i, line in enumerate(card.splitlines()) if line.startswith("```")]
    assert len(fences) == 2  # the YAML block's own, and no other line closes it
    block = "\n".join(card.splitlines()[fences[0] + 1 : fences[1]])
    figures = yaml.safe_load(block)["emoaudit"]
    assert figures["model_sha256"] == results.model.sha256
    assert figures["findings"] == {c.id: c.severity for c in checks if c.failed}
    assert figures["emotion_layer"] == 21 and figures["verdict"] == "medium"
    assert results.stages.steering is not None
    overall = results.stages.steering.summary.statistics.overall  # the interval and the control, not a bare rate
    assert figures["steering_calibrated_ci"] == [round(overall.ci_low or -1, 4), round(overall.ci_high or -1, 4)]
    assert (
        figures["steering_control_rate"] == round(overall.control_rate or -1, 4) and "random-direction control" in card
    )


def test_report_writes_all_three_exports_and_a_paginated_pdf(tmp_path: Path) -> None:
    if shutil.which("chromium") is None and not os.environ.get("EMOAUDIT_REQUIRE_CHROMIUM"):
        pytest.skip("no Chromium here; CI installs it and requires it")
    paths = {name: tmp_path / name for name in ("r.html", "f.sarif", "c.md", "r.pdf")}
    proc = run_cli(
        "report", str(QUICK), "--out", str(paths["r.html"]), "--sarif", str(paths["f.sarif"]),
        "--model-card", str(paths["c.md"]), "--pdf", str(paths["r.pdf"]), "--fail-on", "never",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    pdf = paths["r.pdf"].read_bytes()
    assert pdf.startswith(b"%PDF") and len(re.findall(rb"/Type\s*/Page\b", pdf)) >= 2


def test_pdf_without_a_renderer_is_one_line_before_anything_is_written(tmp_path: Path) -> None:
    env_before = os.environ.get("EMOAUDIT_CHROMIUM")
    os.environ["EMOAUDIT_CHROMIUM"] = str(tmp_path / "no-such-browser")
    try:
        proc = run_cli("report", str(QUICK), "--out", str(tmp_path / "r.html"), "--pdf", str(tmp_path / "r.pdf"))
    finally:
        if env_before is None:
            os.environ.pop("EMOAUDIT_CHROMIUM")
        else:
            os.environ["EMOAUDIT_CHROMIUM"] = env_before
    assert proc.returncode == 2 and "needs headless Chromium" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "r.html").exists() and not (tmp_path / "r.pdf").exists()


def test_check_ids_are_unique_in_the_policy() -> None:
    assert len({c.id for c in read_results(QUICK).findings or []}) == len(read_results(QUICK).findings or [])
    assert isinstance((read_results(QUICK).findings or [])[0], Check)
