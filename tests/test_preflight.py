"""The preflight fetches what the stages will need before any work: a judge that cannot be pulled stops the
scan before the model loads, in one line, with nothing written to OUT."""

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from tests.test_loading import assert_one_line_error


def test_a_judge_that_cannot_be_pulled_stops_the_scan_before_the_model_loads(
    tmp_path: Path, tiny_dir: Callable[[str], Path]
) -> None:
    out = tmp_path / "out"
    # An empty cache and a pip that can reach no index: the default judge (mpnet-base-v2) cannot be pulled.
    env = {**os.environ, "EMOAUDIT_CACHE": str(tmp_path / "cache"), "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": ""}
    env["PIP_CONFIG_FILE"] = os.devnull
    args = ["scan", str(tiny_dir("llama")), "--out", str(out), "--profile", "quick", "--device", "cpu"]
    proc = subprocess.run(
        [sys.executable, "-m", "emoaudit", *args], capture_output=True, text=True, env=env, timeout=600
    )
    assert_one_line_error(proc, "pip could not download")
    assert not (out / "run.json").exists() and not (out / "activations").exists()
    assert not (tmp_path / "cache" / "converted").exists()  # no model was loaded or converted either
