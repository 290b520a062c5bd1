"""Report, findings, gating, re-rendering and comparison, on the outputs of a real quick scan."""

import copy
import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree as ET

import jsonschema
import pytest

from emoaudit.results.common import Check
from emoaudit.results.convert import from_dict
from emoaudit.results.document import Results
from emoaudit.results.reading import read_results
from emoaudit.results.schema import results_schema as schema
from emoaudit.report.gating import evaluate, exit_status, junit_xml
from emoaudit.report.policy import Policy, load_policy
from emoaudit.report.render import render
from emoaudit.spec import load_spec
from tests.conftest import run_cli
from tests.test_results import QUICK

PAYLOAD = "--><script>alert(1)</script><img src=x onerror=alert(2)>"


def check(severity: str, failed: bool) -> Check:
    return Check(f"c-{severity}", "title", severity, failed, "detail", {})


def test_exit_status_follows_fail_on() -> None:
    checks = [check("medium", True), check("high", False), check("info", False)]
    assert [exit_status(checks, level) for level in ("low", "medium", "high", "never")] == [1, 1, 0, 0]
    assert exit_status([], "low") == 0


def test_junit_has_one_case_per_check() -> None:
    checks = [check("medium", True), check("high", False), check("low", True)]
    suite = ET.fromstring(junit_xml(checks, "medium", "m"))
    cases = suite.findall("testcase")
    assert len(cases) == 3 and suite.get("failures") == "1"
    assert [c.get("name") for c in cases if c.find("failure") is not None] == ["c-medium"]


def test_junit_stays_well_formed_whatever_the_text_holds() -> None:
    """XML 1.0 has no way to write NUL, ESC, BS or a lone surrogate; they are shown as visible escapes
    (escaping.xml, as on the terminal), never written raw."""
    hostile = "a\x1b[31mb\x08c\x00d\udcffe\tf"
    checks = [
        Check("c-high", f"title {hostile}", "high", True, f"detail {hostile}", {}),
        Check("c-low", "t", "low", True, f"detail {hostile}", {}),
    ]
    text = junit_xml(checks, "high", f"/models/{hostile}")
    suite = ET.fromstring(text)
    failure = suite.find("testcase/failure")
    shown = "a\\x1b[31mb\\x08c\\x00d\\udcffe\tf"
    assert failure is not None and failure.text == f"detail {shown}"
    assert suite.get("name") == f"emoaudit /models/{shown}"
    assert suite.find("testcase/system-out").text.startswith(f"[low finding, not gating] detail {shown}")  # type: ignore[union-attr]
    text.encode("utf-8")  # nothing left that UTF-8 cannot write


@pytest.mark.real
def test_results_validate_and_broken_ones_do_not(
    quick_run: tuple[Path, subprocess.CompletedProcess[str]], tmp_path: Path
) -> None:
    out, _ = quick_run
    document = json.loads((out / "results.json").read_text())
    jsonschema.validate(document, schema())
    broken = copy.deepcopy(document)
    broken["stages"]["extraction"]["emotion_layer"]["relative_depth"] = 3.0
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema())
    path = tmp_path / "results.json"
    path.write_text(json.dumps(broken))
    proc = run_cli("report", str(path), "--out", str(tmp_path / "report.html"))
    assert proc.returncode == 2 and "not an emoaudit results file" in proc.stderr and "Traceback" not in proc.stderr
    older = dict(document, schema_version="1.0")  # what the emoaudit before the random-direction controls wrote
    path.write_text(json.dumps(older))
    proc = run_cli("report", str(path), "--out", str(tmp_path / "report.html"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "has results schema 1.0; this emoaudit reads 2.0: rerun the audit" in " ".join(proc.stderr.split())


def test_model_text_never_becomes_markup() -> None:
    raw = QUICK.read_text()
    spec = load_spec()
    # Every emotion name (keys and values alike), and every free-text field, carries the payload.
    for emotion in spec.emotion_names:
        raw = raw.replace(f'"{emotion}"', json.dumps(emotion + PAYLOAD))

    def poison(node: object, key: str = "") -> object:
        if isinstance(node, dict):
            return {k: poison(v, k) for k, v in node.items()}
        if isinstance(node, list):
            return [poison(v, key) for v in node]
        if isinstance(node, str) and key in {
            "text",
            "prompt",
            "reference",
            "path",
            "architecture",
            "detail",
            "title",
            "evidence_spans",
            "evidence_tokens",
            "top_tokens",
            "name",
            "rule",
            "layer_convention",
            "started",
            "finished",
            "emoaudit",
            "machine",
        }:
            return node + PAYLOAD
        return node

    document = from_dict(Results, poison(json.loads(raw)), "poisoned")
    document = dataclasses.replace(document, findings=evaluate(document, load_policy()))
    html = render(document, None)
    assert (
        "<script>alert" not in html
        and "<img src=x" not in html
        and "onerror=alert" not in html.replace("onerror=alert(2)&gt;", "")
    )
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    # The payload's "-->" must not close anything either: no live comment breakout in the inline SVG.
    assert html.count("<script") == 0


@pytest.mark.real
def test_report_rerenders_gates_and_writes_junit(
    quick_run: tuple[Path, subprocess.CompletedProcess[str]], tmp_path: Path
) -> None:
    out, _ = quick_run
    copy_dir = tmp_path / "run"
    shutil.copytree(out, copy_dir)
    results = read_results(copy_dir / "results.json")
    assert results.findings is not None
    lowest_fail = 1 if any(f.failed for f in results.findings) else 0
    junit = tmp_path / "junit.xml"
    report = tmp_path / "report.html"
    proc = run_cli(
        "report", str(copy_dir / "results.json"), "--fail-on", "low", "--junit", str(junit), "-o", str(report)
    )
    assert proc.returncode == lowest_fail, proc.stderr
    # The terminal's last lines: the report's path, the gate's decision in words, the exit status.
    last = " ".join(proc.stdout.split()).split(f"report: {report}")[-1]
    assert f"Gate --fail-on low: {'fails' if lowest_fail else 'passes'}." in last
    assert last.endswith(f"exit status {lowest_fail}")
    html = report.read_text()
    for section in (
        "verdict",
        "model",
        "layers",
        "methods",
        "similarity",
        "affect",
        "steering",
        "leakage",
        "notes",
        "reproducibility",
    ):
        assert f'<section id="{section}">' in html
    assert html.count("<svg") >= 7
    # Self-contained: nothing is fetched (XML namespace URIs in the SVGs are names, not requests).
    assert not re.findall(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", html) and "<link" not in html
    assert "@import" not in html and "url(http" not in html
    suite = ET.parse(junit).getroot()
    # One test case per check of the policy, the behaviour stage's five included (the quick profile runs it).
    assert len(suite.findall("testcase")) == len(results.findings) == len(dataclasses.fields(Policy))
    # The default output is report.html in the current directory, never the audit's own folder, whose manifest
    # then still vouches for every file: the ordinary re-report leaves `verify` passing.
    proc = subprocess.run(
        [sys.executable, "-m", "emoaudit", "report", str(copy_dir / "results.json"), "--fail-on", "low"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode == lowest_fail, proc.stderr
    # Same results and gate (the decision sentence names the gate), same bytes.
    assert (tmp_path / "report.html").read_bytes() == report.read_bytes()
    assert run_cli("verify", str(copy_dir)).returncode == 0
    inside = subprocess.run(
        [sys.executable, "-m", "emoaudit", "report", "results.json", "--fail-on", "never"],
        capture_output=True,
        text=True,
        cwd=copy_dir,
    )
    assert inside.returncode == 2 and "whose manifest.json vouches for what the audit wrote" in inside.stderr
    assert run_cli("verify", str(copy_dir)).returncode == 0


@pytest.mark.real
def test_compare_reports_changes_and_gates_on_regressions(
    quick_run: tuple[Path, subprocess.CompletedProcess[str]], tmp_path: Path
) -> None:
    out, _ = quick_run
    same = run_cli(
        "compare", str(out / "results.json"), str(out / "results.json"), "--out", str(tmp_path / "same.json")
    )
    assert same.returncode == 0 and json.loads((tmp_path / "same.json").read_text())["regressions"] == 0
    worse = json.loads((out / "results.json").read_text())
    worse["stages"]["leakage"]["severity"] = "high"
    worse["stages"]["steering"]["summary"]["regime_totals"]["explosive"] += 5
    path = tmp_path / "worse.json"
    path.write_text(json.dumps(worse))
    proc = run_cli("compare", str(out / "results.json"), str(path), "--out", str(tmp_path / "diff.json"))
    diff = json.loads((tmp_path / "diff.json").read_text())
    assert proc.returncode == 1 and diff["regressions"] == 2
    assert {c["what"] for c in diff["changes"] if c["regression"]} == {"leakage severity", "share of trials explosive"}
    assert diff["like_for_like"] is True and diff["differences"] == []
    assert run_cli("compare", str(out / "results.json"), str(path), "--no-fail-on-regression").returncode == 0


@pytest.mark.real
def test_report_loads_in_headless_chromium(
    quick_run: tuple[Path, subprocess.CompletedProcess[str]], tmp_path: Path
) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        if os.environ.get("EMOAUDIT_REQUIRE_CHROMIUM"):
            pytest.fail("chromium is required here (EMOAUDIT_REQUIRE_CHROMIUM) but is not installed")
        pytest.skip("chromium is not installed")
    out, _ = quick_run
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--enable-logging=stderr",
        "--v=0",
    ]
    url = (out / "report.html").resolve().as_uri()
    proc = subprocess.run([browser, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = proc.stdout
    assert "emoaudit risk report" in dom and dom.count("<svg") >= 7
    for section in ("verdict", "layers", "steering", "leakage"):
        assert f'id="{section}"' in dom
    console_errors = [line for line in proc.stderr.splitlines() if "CONSOLE" in line and "ERROR" in line.upper()]
    assert not console_errors, console_errors
    shot = tmp_path / "report.png"
    subprocess.run(
        [browser, *flags, f"--screenshot={shot}", "--window-size=1280,2400", url], capture_output=True, timeout=180
    )
    assert shot.is_file() and shot.stat().st_size > 10_000


@pytest.mark.parametrize("recorded", ["/tmp/" + "a" * 5000, "/tmp/a\x00b", "/tmp"])
def test_a_recorded_specification_path_that_cannot_be_looked_up_only_leaves_it_out(
    recorded: str, tmp_path: Path
) -> None:
    from emoaudit.report.rerender import rerender

    document = json.loads(QUICK.read_text(encoding="utf-8"))
    document["audit"]["path"] = recorded  # the results file's text, whatever it holds
    results = tmp_path / "results.json"
    results.write_text(json.dumps(document), encoding="utf-8")
    rendered = rerender(results, tmp_path / "report.html", load_policy(None), None)
    assert rendered.audit.path == recorded and (tmp_path / "report.html").is_file()
