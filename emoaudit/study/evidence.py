"""What a study takes from each model's results.json.

The one module of the study that reads the results document.
"""

from __future__ import annotations

import json
from pathlib import Path

from emoaudit.pipeline.options import STAGES


def is_finished(path: Path, reference: str, profile: str, seed: int, spec_sha256: str) -> bool:
    """Whether `path` (a results.json) is a complete audit of this model, every stage, with this profile, seed
    and specification.

    Anything else (missing, partial, another audit, unreadable) is left to the audit itself, which
    resumes it or refuses it with its own error.
    """
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        audit = document["audit"]
        return bool(
            document["complete"]
            and set(document["stages"]) >= set(STAGES)  # an `extract` run is complete without steering
            and document["model"]["reference"] == reference
            and audit["profile"] == profile
            and audit["seed"] == seed
            and audit["sha256"] == spec_sha256
        )
    except (OSError, ValueError, KeyError, TypeError):
        return False
