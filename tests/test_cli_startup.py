"""`emoaudit --help` and `emoaudit models list` answer without importing torch or transformers (seconds of
CPU on every call otherwise): checked by the modules loaded, in a fresh process, not by a timing."""

import subprocess
import sys

import pytest

PROBE = """
import sys
sys.argv = ["emoaudit", *sys.argv[1:]]
from emoaudit.__main__ import main
try:
    main()
except SystemExit as exc:
    code = exc.code
print("loaded:", sorted(m for m in ("torch", "transformers") if m in sys.modules), file=sys.stderr)
"""


@pytest.mark.parametrize("args", [["--help"], ["models", "list"], ["scan", "--help"], ["--version"]])
def test_help_and_models_list_import_neither_torch_nor_transformers(args: list[str]) -> None:
    proc = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=120)
    assert proc.stderr.strip().splitlines()[-1] == "loaded: []", proc.stderr
    assert proc.stdout.strip()  # it answered: help text, the alias tables, or the version
