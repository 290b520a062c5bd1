"""One table of model options (emoaudit/options.py): every command that loads a model, and emoaudit.audit(),
takes the same model options from it, checked the same way (issue 26, "one options builder")."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer

from emoaudit.api import audit
from emoaudit.cli import app
from emoaudit.errors import EmoauditError
from emoaudit.options import AUDIT_OPTIONS, MODEL_OPTIONS, NORMS, TABLE
from emoaudit.pipeline.options import audit_options

COMMANDS = ("scan", "extract", "steer", "study")


def flags(command: str) -> dict[str, Any]:
    """The command's parameters by every flag that names them, as Typer built them."""
    found = typer.main.get_command(app).commands[command]  # type: ignore[attr-defined]
    return {opt: p for p in found.params for opt in (*p.opts, *getattr(p, "secondary_opts", ()))}


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_that_loads_a_model_takes_the_model_options_of_the_table(command: str) -> None:
    taken = flags(command)
    for option in MODEL_OPTIONS:
        assert option.cli_flag in taken, f"{command} lacks {option.cli_flag}"
        param = taken[option.cli_flag]
        assert getattr(param, "help", None) == option.help
    assert "--no-disk-offload" in taken  # the bool's off switch


def test_scan_and_study_take_the_same_options_from_the_table() -> None:
    scan, study = flags("scan"), flags("study")
    for option in (*MODEL_OPTIONS, *AUDIT_OPTIONS):
        assert option.cli_flag in scan and option.cli_flag in study
        assert getattr(scan[option.cli_flag], "help", None) == getattr(study[option.cli_flag], "help", None)


def test_norms_are_an_audit_option_that_extract_takes_too_and_steer_does_not() -> None:
    """--norms reads the extraction's vectors: scan, study, audit() (AUDIT_OPTIONS) and extract take it from
    the table; steer runs no audit."""
    assert NORMS in AUDIT_OPTIONS
    extract = flags("extract")
    assert getattr(extract["--norms"], "help", None) == NORMS.help
    assert "--norms" not in flags("steer")


def test_the_api_takes_every_option_of_the_table_and_checks_it_as_the_cli_does(tmp_path: Path) -> None:
    keywords = set(inspect.signature(audit).parameters)
    for option in (*MODEL_OPTIONS, *AUDIT_OPTIONS):
        # profile and judge are named parameters of audit(); the rest arrive as **options, checked by the table
        assert option.name in keywords or option.name in TABLE
        made = audit_options("m", tmp_path, {option.name: option.default})
        assert getattr(made, option.name, None) == option.default or option.name in (
            "device_map",
            "max_memory",
            "disk_offload",
            "quantize",
        )
    with pytest.raises(TypeError, match="unknown option: devise"):
        audit("m", out=tmp_path / "out", devise="cpu")
    with pytest.raises(EmoauditError, match=r"--seed must be in 0\.\.4294967295 \(numpy's seed range\), not -1"):
        audit("m", out=tmp_path / "out", seed=-1)
    with pytest.raises(EmoauditError, match="--device-map must be one of auto, balanced, balanced_low_0, sequential"):
        audit("m", out=tmp_path / "out", device_map="everywhere")
    with pytest.raises(EmoauditError, match="--quantize must be 4bit or 8bit, not '2bit'"):
        audit("m", out=tmp_path / "out", quantize="2bit")
    assert not (tmp_path / "out").exists()


def test_placement_is_a_typed_field(tmp_path: Path) -> None:
    made = audit_options("m", tmp_path, {"max_memory": "cpu=2GiB", "disk_offload": False, "device_map": "auto"})
    assert made.placement.max_memory == {"cpu": 2 * 2**30}
    assert made.placement.device_map == "auto" and made.placement.disk_offload is False and made.placement.mapped


def test_options_are_built_in_one_place() -> None:
    root = Path(__file__).resolve().parent.parent / "emoaudit"
    sites = [
        f"{path.relative_to(root)}:{n}"
        for path in sorted(root.rglob("*.py"))
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if "AuditOptions(" in line
    ]
    assert sites == ["pipeline/options.py:" + sites[0].split(":")[1]] and len(sites) == 1, sites


def test_the_choices_are_offered_as_choices() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "emoaudit", "study", "--help"], capture_output=True, text=True, env={"COLUMNS": "300"}
    )
    for option in MODEL_OPTIONS:
        assert option.cli_flag in proc.stdout
        if option.choices:
            assert "|".join(option.choices) in proc.stdout, option.name


def test_the_options_table_imports_no_torch() -> None:
    code = "import sys, emoaudit.options; print('torch' in sys.modules or 'transformers' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"
