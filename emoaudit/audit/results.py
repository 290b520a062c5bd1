"""The results document: its JSON Schema (the published contract), reading and validating it, and what
results.json holds besides the stages."""

from __future__ import annotations

import json
import platform
from datetime import UTC, datetime
from importlib.resources import files
from pathlib import Path
from typing import Any

import jsonschema
import torch
import transformers

from emoaudit import __version__
from emoaudit.audit.context import Run
from emoaudit.errors import EmoauditError
from emoaudit.memory import rss_high_water

RESULTS_SCHEMA_VERSION = "1.0"
SCHEMA_FILE = Path(str(files("emoaudit") / "results.schema.json"))


def schema() -> dict[str, Any]:
    return json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))


def read_results(path: Path) -> dict[str, Any]:
    """A results file, validated; a bad one is a one-line error."""
    if not path.is_file():
        raise EmoauditError(f"no results file at {path}")
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise EmoauditError(f"{path} is not JSON: {exc}") from exc
    try:
        jsonschema.validate(document, schema())
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "top level"
        raise EmoauditError(f"{path} is not an emoaudit results file ({where}: {exc.message[:160]})") from exc
    return document


def results_document(run: Run, stages: dict[str, Any], started: datetime, complete: bool) -> dict[str, Any]:
    return {
        "schema_version": RESULTS_SCHEMA_VERSION,
        "complete": complete,
        "model": run.lm.identity.to_dict(),
        "audit": {
            "name": run.spec.name,
            "path": str(run.spec.path),
            "sha256": run.spec.sha256,
            "profile": run.profile.name,
            "seed": run.options.seed,
        },
        "stages": stages,
        "timings": {k: round(v, 3) for k, v in run.timings.items()},
        # A resumed audit's peak is that of whichever run, this one or one that made a reused stage, went highest.
        "resources": max([memory(run), *run.reused_memory], key=lambda m: m["peak_rss_bytes"] or 0),
        "environment": {
            "emoaudit": __version__,
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "python": platform.python_version(),
            "machine": platform.machine(),
            "threads": torch.get_num_threads(),
        },
        "started": started.isoformat(timespec="seconds"),
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def memory(run: Run) -> dict[str, int | None]:
    """High-water marks: this process's resident memory, and before the model (interpreter and libraries),
    and the CUDA allocator's where it ran."""
    cuda = int(torch.cuda.max_memory_allocated(run.lm.device)) if run.lm.device.type == "cuda" else None
    return {"peak_rss_bytes": rss_high_water(), "runtime_rss_bytes": run.runtime_rss_bytes, "peak_cuda_bytes": cuda}
