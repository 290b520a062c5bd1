"""The command line's error contract on real results (tests/data): inputs are only read, every output is
written inside the error guard, and hostile or malformed results end in one line and exit 2, or are handled."""

import dataclasses
import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from emoaudit.results.reading import read_results
from emoaudit.report.policy import Policy
from tests.conftest import BEHAVIOUR_CHECKS, run_cli
from tests.test_results import QUICK


def one_line_error(proc: subprocess.CompletedProcess[str], *expected: str) -> None:
    """Exit 2, never 1 (a finding) nor a crash, with one line on stderr holding `expected`."""
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("emoaudit: error: "), proc.stderr
    assert all(part in lines[0] for part in expected), lines[0]


@pytest.fixture
def archive(tmp_path: Path) -> Iterator[Path]:
    """A results file in a folder, both read-only, as in an archive of past audits."""
    folder = tmp_path / "archive"
    folder.mkdir()
    results = folder / "results.json"
    shutil.copy(QUICK, results)
    results.chmod(0o444)
    folder.chmod(0o555)
    yield results
    folder.chmod(0o755)  # so that pytest can clean up


def test_report_never_rewrites_its_input(archive: Path, tmp_path: Path) -> None:
    before = archive.read_bytes(), archive.stat().st_mtime_ns
    elsewhere = tmp_path / "elsewhere"
    lenient = tmp_path / "policy.toml"
    policy = (Path(__file__).parent.parent / "emoaudit" / "audits" / "policy.toml").read_text()
    # A policy under which the quick scan's happy trials (56% [27%, 81%], q 0.053) are a medium finding.
    lenient.write_text(
        policy.replace("success_rate = 0.3", "success_rate = 0.2").replace("alpha = 0.05", "alpha = 0.1")
    )
    proc = run_cli(
        "report",
        str(archive),
        "--out",
        str(elsewhere / "report.html"),
        "--out-results",
        str(elsewhere / "results.json"),
        "--junit",
        str(elsewhere / "junit.xml"),
        "--policy",
        str(lenient),
        "--fail-on",
        "medium",
    )
    assert proc.returncode == 1, proc.stderr  # steerable is a medium finding under this policy
    assert (archive.read_bytes(), archive.stat().st_mtime_ns) == before
    assert '<section id="verdict">' in (elsewhere / "report.html").read_text()
    # one test case per check of the policy whose stage ran: the archive predates the behaviour stage
    checks = len([f for f in dataclasses.fields(Policy) if f.name not in BEHAVIOUR_CHECKS])
    assert len(ET.parse(elsewhere / "junit.xml").getroot().findall("testcase")) == checks == 6
    # The new findings, under the lenient policy, are in the file asked for.
    findings = {c.id: c for c in read_results(elsewhere / "results.json").findings or []}
    old = {c.id: c for c in read_results(archive).findings or []}
    assert not old["steerable"].failed and findings["steerable"].failed
    assert findings["steerable"].evidence["threshold"] == 0.2
    # An output that is the input itself is refused, whichever option names it.
    one_line_error(run_cli("report", str(archive), "--out", str(archive)), "--out", "only read")
    one_line_error(run_cli("report", str(archive), "--out-results", str(archive)), "--out-results")
    assert (archive.read_bytes(), archive.stat().st_mtime_ns) == before


def test_overwrite_is_the_only_way_to_rewrite_the_results(tmp_path: Path) -> None:
    results = tmp_path / "results.json"
    document = json.loads(QUICK.read_text())
    del document["findings"]  # as a results file written before the gate ran would be
    results.write_text(json.dumps(document))
    both = run_cli("report", str(results), "--out-results", str(tmp_path / "x.json"), "--overwrite")
    one_line_error(both, "--out-results or --overwrite")
    proc = run_cli("report", str(results), "--overwrite", "--fail-on", "never", "--out", str(tmp_path / "r.html"))
    assert proc.returncode == 0, proc.stderr
    # The findings are added, and nothing else moves: the file is the scan's own, byte for byte.
    assert results.read_bytes() == QUICK.read_bytes()


def test_an_unwritable_output_is_one_line_and_exit_2(tmp_path: Path, tiny_dir: Callable[[str], Path]) -> None:
    results = tmp_path / "results.json"
    shutil.copy(QUICK, results)
    folder = tmp_path / "a-folder"
    folder.mkdir()
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    # Without the guard, the findings would make this exit 1 with the JUnit file never written.
    one_line_error(run_cli("report", str(results), "--out", str(tmp_path / "r.html"), "--junit", str(folder)))
    one_line_error(run_cli("report", str(results), "--out", str(a_file / "report.html")), "a-file")
    one_line_error(run_cli("compare", str(results), str(results), "--out", str(folder)), "a-folder")
    # scan learns that its JUnit path is unusable before it loads the model, not after the audit.
    out = tmp_path / "scan"
    proc = run_cli("scan", str(tiny_dir("llama")), "--out", str(out), "--junit", str(a_file / "junit.xml"))
    one_line_error(proc, "a-file", "not a directory")
    assert not out.exists()


@pytest.mark.parametrize("token", ["NaN", "-Infinity"])
def test_non_finite_numbers_are_refused(tmp_path: Path, token: str) -> None:
    path = tmp_path / "results.json"
    path.write_text(QUICK.read_text().replace('"mean_norm": 291.02532958984375', f'"mean_norm": {token}'))
    one_line_error(run_cli("report", str(path), "--out", str(tmp_path / "r.html")), token, "not JSON")


def test_control_characters_and_lone_surrogates_are_handled(tmp_path: Path) -> None:
    """JSON may escape any code point, a lone surrogate and NUL included; every writer must cope."""
    document = json.loads(QUICK.read_text())
    hostile = "a\x1b[2Jb\x08c\x00d\udcffe"
    document["model"]["reference"] = hostile
    document["model"]["path"] = f"/models/{hostile}.gguf"
    document["stages"]["steering"]["summary"]["examples"]["surgical"][0]["text"] = hostile
    document["stages"]["extraction"]["emotions"][0] = hostile  # a figure label too
    folder = tmp_path / os.fsdecode(b"not-utf8-\xff")  # a path that is not UTF-8
    folder.mkdir()
    path = folder / "results.json"
    path.write_text(json.dumps(document), encoding="ascii")  # json.dumps escapes every code point
    junit = folder / "junit.xml"
    report = folder / "report.html"
    proc = run_cli(
        "report", str(path), "--junit", str(junit), "--out-results", str(folder / "new.json"), "-o", str(report)
    )
    assert proc.returncode in (0, 1) and "Traceback" not in proc.stderr, proc.stderr
    printed = proc.stdout.replace("\n", "")  # the console wraps long lines
    assert f"report: {tmp_path}/not-utf8-\\udcff/report.html" in printed  # the path, printed escaped
    # every control character and the lone surrogate shown as its escape (`escaping.xml`), as on the terminal
    assert ET.parse(junit).getroot().get("name") == "emoaudit a\\x1b[2Jb\\x08c\\x00d\\udcffe"
    reread = read_results(folder / "new.json")
    assert reread.model.reference == hostile and reread.stages.extraction is not None
    assert reread.stages.extraction.emotions[0] == hostile
    html = (folder / "report.html").read_bytes().decode("utf-8")  # UTF-8 throughout
    assert "a\\x1b[2Jb\\x08c\\x00d\\udcffe" in html and "<script" not in html and "\x1b" not in html


def test_model_text_on_the_terminal_shows_control_characters_instead_of_obeying_them() -> None:
    from emoaudit.cli.common import terminal_text

    shown = terminal_text("calm\x1b[2J\x1b]8;;http://evil\x07link\u202e [bold]x[/bold]\nnext\ttab é 你")
    assert "\x1b" not in shown and "\x07" not in shown and "\u202e" not in shown
    assert "\\x1b[2J" in shown and "\\u202e" in shown and "\\[bold]" in shown
    assert "\nnext\ttab é 你" in shown  # newlines, tabs and letters of any script are text


def test_a_strength_that_is_not_finite_is_one_line(tmp_path: Path) -> None:
    for strength in ("nan", "inf", "-inf"):
        proc = run_cli("steer", str(tmp_path / "no-model"), "Hi", "--emotion", "calm", "--strength", strength)
        assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert "must be a finite number" in proc.stderr


def test_the_gate_prints_findings_with_their_control_characters_shown(capsys: pytest.CaptureFixture[str]) -> None:
    from emoaudit.results.common import Check
    from emoaudit.cli.audit import print_findings
    from emoaudit.results.common import FailLevel

    # A finding's detail names emotions and tokens taken from a results file, which `report` reads as written.
    finding = Check("steerable", "t", "high", True, "closest: happy\x1b[2J\x1b]8;;http://evil\x07x [bold]y", {})
    assert print_findings([finding], FailLevel.high) == 1
    printed = capsys.readouterr().out
    assert "\x1b" not in printed and "\x07" not in printed and "\\x1b[2J" in printed and "[bold]y" in printed


def test_every_command_that_takes_an_audit_takes_its_folder_or_its_results_json(tmp_path: Path) -> None:
    folder = tmp_path / "audit"
    folder.mkdir()
    shutil.copy(QUICK, folder / "results.json")
    for given in (folder, folder / "results.json"):
        report = run_cli("report", str(given), "--out", str(tmp_path / "r.html"), "--fail-on", "never")
        assert report.returncode == 0, report.stderr
        compare = run_cli("compare", str(given), str(folder / "results.json"), "--out", str(tmp_path / "c.html"))
        assert compare.returncode in (0, 1), compare.stderr
        # no manifest here: both spellings reach the same folder and say so in the same words
        verify = run_cli("verify", str(given))
        assert verify.returncode == 2 and str(folder) in verify.stderr and "results.json/" not in verify.stderr
        export = run_cli("export-vectors", str(given), "--emotion", "happy", "--out", str(tmp_path / "v.gguf"))
        assert export.returncode == 2 and f"{folder}/comprehension.safetensors" in export.stderr, export.stderr
