"""What emoaudit writes: readable by whoever the umask lets read it, and whatever bytes a path holds."""

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from safetensors import safe_open

from emoaudit.spec import BUILTIN_DIR
from emoaudit.storage import write_json, write_text
from tests.conftest import REPO, run_cli
from tests.test_loading import assert_one_line_error

LATIN1 = os.fsdecode(b"mod\xe8le")  # an archive name in Latin-1: "modèle", not UTF-8


def test_a_path_with_a_non_utf8_byte_is_written_unambiguously(tmp_path: Path) -> None:
    path = str(tmp_path / LATIN1)
    target = tmp_path / "identity.json"
    write_json(target, {"path": path, "text": "开心 and é"})
    raw = target.read_bytes()
    raw.decode("utf-8")  # valid UTF-8
    assert b"\\udce8" in raw and "开心 and é".encode() in raw  # the stray byte escaped, other text as itself
    back = json.loads(raw)
    assert os.fsencode(back["path"]) == os.fsencode(tmp_path) + b"/mod\xe8le"
    # A different byte is a different record.
    write_json(target, {"path": str(tmp_path / os.fsdecode(b"mod\xe9le"))})
    assert json.loads(target.read_bytes())["path"] != back["path"]
    write_text(tmp_path / "report.html", f"<p>{path}</p>")
    assert "mod\\udce8le" in (tmp_path / "report.html").read_text(encoding="utf-8")


UMASK_SCRIPT = """
import os, sys
from pathlib import Path
os.umask(int(sys.argv[1], 8))
import torch
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM
from emoaudit.model.gguf import _write_converted
from emoaudit.storage import write_json, write_with
root = Path(sys.argv[2])
write_json(root / "out" / "results.json", {"ok": True})
write_with(root / "out" / "vectors.safetensors", lambda tmp: save_file({"v": torch.zeros(2)}, str(tmp)))
model = AutoModelForCausalLM.from_pretrained(sys.argv[3])
_write_converted(root / "cache" / "converted" / "0123", model, lambda tmp: None, Path("x.gguf"), "0123")
"""


@pytest.mark.parametrize(("umask", "directory", "file"), [("002", 0o775, 0o664), ("077", 0o700, 0o600)])
def test_written_files_and_cache_entries_follow_the_umask(
    tmp_path: Path, tiny_dir: Callable[[str], Path], umask: str, directory: int, file: int
) -> None:
    """A shared, group-writable cache (umask 002) gets group-writable entries; a private one stays private."""
    args = [sys.executable, "-c", UMASK_SCRIPT, umask, str(tmp_path), str(tiny_dir("llama"))]
    subprocess.run(args, check=True, cwd=REPO, capture_output=True)
    converted = tmp_path / "cache" / "converted" / "0123"
    assert (converted.stat().st_mode & 0o777) == directory
    for item in [*(tmp_path / "out").iterdir(), *converted.iterdir()]:
        assert (item.stat().st_mode & 0o777) == file, item


@pytest.fixture(scope="module")
def small_spec(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default audit with a smaller quick profile: a whole extraction of a tiny model in seconds."""
    root = tmp_path_factory.mktemp("spec")
    shutil.copytree(BUILTIN_DIR / "default", root / "default")
    text = (BUILTIN_DIR / "default.toml").read_text(encoding="utf-8")
    quick = "[profiles.quick]\npassages_per_label = 3\nstories_per_label = 3\nmax_new_tokens = 10\npermutations = 5\n"
    text = re.sub(r"\[profiles\.quick\]\n(?:.*\n)*?permutations = \d+\n", quick, text)
    (root / "default.toml").write_text(text, encoding="utf-8")
    return root / "default.toml"


def test_an_audit_of_a_checkpoint_under_a_non_utf8_name(
    tmp_path: Path, tiny_dir: Callable[[str], Path], small_spec: Path
) -> None:
    model = tmp_path / LATIN1
    shutil.copytree(tiny_dir("llama"), model)
    out = tmp_path / "out"
    args = ["extract", str(model), "--profile", "quick", "--spec", str(small_spec), "--device", "cpu"]
    first = run_cli(*args, "--out", str(out))
    assert first.returncode == 0, first.stderr
    assert "mod\\udce8le" in first.stdout  # the summary names the model, its stray byte escaped
    results = json.loads((out / "results.json").read_bytes())
    assert os.fsencode(results["model"]["path"]) == os.fsencode(model)
    assert results["stages"]["extraction"]["truncated_texts"]["comprehension"] == 0
    with safe_open(str(out / "vectors" / "comprehension.safetensors"), framework="pt") as f:
        assert os.fsencode(json.loads(f.metadata()["model"])["path"]) == os.fsencode(model)
    again = run_cli(*args, "--out", str(out))  # run.json, read back, names the same model: the audit resumes
    assert again.returncode == 0 and "resuming" in again.stderr, again.stderr
    # safetensors could write vectors under a non-UTF-8 --out, but never open them again: refused up front.
    refused = run_cli(*args, "--out", str(tmp_path / LATIN1 / "out"))
    assert_one_line_error(refused, "is not a UTF-8 path")
