"""The README and docs/ pages: the README fits on a screen, links resolve, every `emoaudit` command they show
names a real command and real options (and the offline ones run), and the Python API example runs, on a
tiny model in place of SmolLM2 (the same five lines, the audit's arguments swapped)."""

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from emoaudit.cli import app
from tests.test_api import TINY, TINY_SPEC_PATH, eos_free_tiny

ROOT = Path(__file__).parent.parent
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
AUDIT_CALL = 'emoaudit.audit("smollm2-135m", profile="quick", out="runs/smollm2")'


def blocks(page: Path, *languages: str) -> list[str]:
    return [body for lang, body in FENCE.findall(page.read_text(encoding="utf-8")) if lang in languages]


def commands(page: Path) -> list[list[str]]:
    """Every `emoaudit ...` line of the page's console and sh blocks, as words (continuations joined)."""
    found = []
    for body in blocks(page, "console", "sh"):
        for line in body.replace("\\\n", " ").splitlines():
            line = line.removeprefix("$ ").split("  #")[0].strip()
            if line.startswith("emoaudit ") and "..." not in line and "[" not in line:
                found.append(shlex.split(line)[1:])
    return found


def test_the_readme_fits_on_a_screen_and_its_links_resolve() -> None:
    assert README.stat().st_size <= 10 * 1024
    for page in PAGES:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", page.read_text(encoding="utf-8")):
            assert (page.parent / target).exists(), f"{page.name} links to missing {target}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_command_shown_exists_with_the_options_it_uses(page: Path) -> None:
    runner = CliRunner()
    for words in commands(page):
        path = [w for w in words[:2] if not w.startswith("-")][: 2 if words[0] == "models" else 1]
        help_text = runner.invoke(app, [*path, "--help"], terminal_width=200).output
        assert "Usage:" in help_text, f"{page.name}: emoaudit {' '.join(path)} is not a command"
        for option in (w.split("=")[0] for w in words if w.startswith("--")):
            assert option in help_text, f"{page.name}: emoaudit {' '.join(path)} has no {option}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_no_report_shown_writes_inside_the_audit_it_reads(page: Path) -> None:
    """`emoaudit report OUT --out OUT/report.html` is refused (OUT's manifest vouches for its files): the README
    once showed exactly that line to a new user."""
    for words in commands(page):
        if words[0] == "report" and "--out" in words:
            audit, written = Path(words[1]), Path(words[words.index("--out") + 1])
            folder = audit.parent if audit.suffix == ".json" else audit  # OUT or OUT/results.json
            assert folder not in written.parents, f"{page.name}: {shlex.join(words)}"


def test_the_offline_commands_shown_run() -> None:
    shown = {tuple(words) for words in commands(README)}
    assert ("models", "list") in shown
    result = CliRunner().invoke(app, ["models", "list"], terminal_width=200)
    assert result.exit_code == 0 and "smollm2-135m" in result.output and "mpnet-base-v2" in result.output


def test_the_readme_llama_cpp_line_takes_file_colon_scale() -> None:
    text = README.read_text(encoding="utf-8")
    assert re.search(r"--control-vector-scaled \S+\.gguf:[\d.]+", text)
    help_text = CliRunner().invoke(app, ["export-vectors", "--help"], terminal_width=200).output
    assert "FILE:SCALE" in help_text


@pytest.fixture(scope="module")
def example_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the examples run: the second resumes the first's audit (same model, specification and seed)."""
    folder = tmp_path_factory.mktemp("docs")
    eos_free_tiny(folder / "model")
    return folder


@pytest.mark.parametrize("page", [README, ROOT / "docs" / "python-api.md"], ids=lambda p: p.name)
def test_the_python_api_example_runs_offline(page: Path, example_folder: Path) -> None:
    (code,) = blocks(page, "python")
    assert AUDIT_CALL in code
    tmp_path, model = example_folder, example_folder / "model"
    keywords = {e.name: e.forbidden for e in TINY.emotions} | {TINY.reference: ()}
    tiny_call = (
        f"emoaudit.audit({str(model)!r}, profile='tiny', out='runs/smollm2', spec_path={str(TINY_SPEC_PATH)!r}, "
        f"judge=emoaudit.FixedJudge({keywords!r}), device='cpu', dtype='float32', seed=3)"
    )
    # The tiny specification's emotions are named as the default's; "calm" must be one of them.
    assert "calm" in TINY.emotion_names
    script = code.replace(AUDIT_CALL, tiny_call)
    proc = subprocess.run(
        [sys.executable, "-W", "error::UserWarning", "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "runs" / "smollm2" / "results.json").is_file()
    assert proc.stdout.strip()  # the steered continuation (and whatever else the example prints)
