"""What names an audit on the command line: its --out folder or its results.json, for every command."""

from __future__ import annotations

from pathlib import Path

AUDIT_HELP = "A scan's --out folder or its results.json."


def results_file(path: Path) -> Path:
    """The audit's results.json, given it (under any name) or its folder."""
    return path / "results.json" if path.is_dir() else path


def audit_folder(path: Path) -> Path:
    """The audit's folder, given it or its results.json."""
    return path.parent if path.is_file() else path
