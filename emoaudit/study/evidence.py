"""Whether a study can reuse a model's earlier audit: the same identity (`pipeline.identity`), every stage,
the steering and behaviour stages judged by the same judge, and the same human norms (`--norms`) or none."""

from __future__ import annotations

import json
from pathlib import Path

from emoaudit.pipeline.identity import differences, recorded_identity
from emoaudit.pipeline.options import STAGES
from emoaudit.results.identity import AuditIdentity


def is_finished(
    folder: Path, identity: AuditIdentity, judge: str, norms_sha256: str | None = None, behaviour: bool = True
) -> bool:
    """Whether `folder` holds a complete audit, every stage, with this identity and this judge, and the
    norms file of this sha256 correlated (None: no norms). Norms need no model work, but only an audit run
    computes them: one finished with other norms, or none, runs again (every stage reused).

    Anything else (missing, partial, another audit, unreadable) is left to the audit itself, which
    resumes it or refuses it with its own error (or to `changed`, which tells the study to audit again).
    """
    recorded = recorded_identity(folder)
    if recorded is None or differences(recorded, identity):
        return False
    try:
        document = json.loads((folder / "results.json").read_text(encoding="utf-8"))
        return bool(
            document["complete"]
            # an `extract` run is complete without steering; behaviour only where the profile runs it
            and set(document["stages"]) >= {s for s in STAGES if behaviour or s != "behaviour"}
            and document["stages"]["steering"]["judge"]["name"] == judge
            and (not behaviour or document["stages"]["behaviour"]["judge"] == judge)
            and (document["norms"]["sha256"] if "norms" in document else None) == norms_sha256
        )
    except (OSError, ValueError, KeyError, TypeError):
        return False


def changed(folder: Path, identity: AuditIdentity) -> list[str]:
    """What differs between the audit `folder` holds and `identity` (its weights, dtype, ...): empty where
    the folder holds no audit, the same one, or where `identity`'s weights are not known before loading
    (a hub ID: the audit itself then resumes or refuses)."""
    recorded = recorded_identity(folder)
    if recorded is None or identity.model.sha256 is None:
        return []
    return differences(recorded, identity)
