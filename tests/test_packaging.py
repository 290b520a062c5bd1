"""A plain (non-editable) install carries the audit specifications and templates."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_wheel_ships_audits_and_templates(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(tmp_path), str(REPO)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    wheel = next(tmp_path.glob("emoaudit-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in (
        "emoaudit/audits/default.toml",
        "emoaudit/audits/models.toml",
        "emoaudit/audits/default/passages.json",
        "emoaudit/audits/default/heldout.json",
        "emoaudit/audits/default/generation.json",
        "emoaudit/templates/report.html.j2",
        "emoaudit/templates/page.css",
        "emoaudit/templates/study.html.j2",
        "emoaudit/audits/claims.toml",
        "emoaudit/study/executors.py",
        "emoaudit/audits/default/behaviour.json",
        "emoaudit/audits/default/behaviour_heldout.json",
        "emoaudit/templates/behaviour.html.j2",
        "emoaudit/behaviour/stage.py",
    ):
        assert required in names, required
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    probe = (
        "import emoaudit.spec as s, emoaudit.model.registry as r; spec = s.load_spec(); "
        "print(s.__file__); print(len(spec.emotions), sorted(r.load_registry()))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(target)},
        check=True,
    )
    module_path, counts = proc.stdout.splitlines()
    assert module_path.startswith(str(target))
    assert counts == "20 ['gemma3-270m', 'qwen2.5-coder-0.5b', 'qwen2.5-coder-1.5b', 'smollm2-135m']"
