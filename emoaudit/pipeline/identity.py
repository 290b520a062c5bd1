"""One audit's identity, the one way "the same audit" is decided: resuming an output directory (run.json),
a study's reuse of a finished audit, and the manifest all compare `AuditIdentity`, never a path."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from rich.console import Console

from emoaudit.errors import EmoauditError
from emoaudit.pipeline.options import AuditOptions
from emoaudit.results.convert import to_dict
from emoaudit.results.identity import AuditIdentity, ModelContent, RunRecord
from emoaudit.spec import AuditSpec
from emoaudit.storage import write_json

RUN_FILE = "run.json"


def audit_identity(content: ModelContent, spec: AuditSpec, options: AuditOptions) -> AuditIdentity:
    """The identity of auditing a model of this content as `options` ask (their profile, seed, positions)."""
    return AuditIdentity(content, spec.sha256, options.profile, options.seed, options.steer_positions)


def judge_name(options: AuditOptions, spec: AuditSpec) -> str:
    """The judge the steering stage is keyed by: a Judge object's name, the name given, or the specification's."""
    judge = options.judge or spec.steering.judge
    return judge if isinstance(judge, str) else judge.name


def recorded_identity(out: Path) -> dict[str, Any] | None:
    """The identity OUT/run.json records (as JSON), or None where there is none or it is unreadable."""
    import json

    try:
        identity = json.loads((out / RUN_FILE).read_text(encoding="utf-8"))["identity"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return identity if isinstance(identity, dict) else None


def differences(recorded: dict[str, Any], identity: AuditIdentity) -> list[str]:
    """The fields (model fields by their own name) in which `recorded` differs from `identity`."""
    wanted = asdict(identity)
    flat = {**{k: v for k, v in wanted.items() if k != "model"}, **wanted["model"]}
    seen = {**{k: v for k, v in recorded.items() if k != "model"}, **(recorded.get("model") or {})}
    return [name for name, value in flat.items() if seen.get(name) != value]


def claim_output(out: Path, record: RunRecord, console: Console) -> None:
    """Refuse to mix two different audits in one output directory; otherwise resume it, and record this one.

    Raises EmoauditError naming what differs (the weights' sha256, dtype, profile, ...).
    """
    path = out / RUN_FILE
    if path.is_file():
        recorded = recorded_identity(out)
        if recorded is None:
            raise EmoauditError(f"{out} holds an audit without a readable identity (older emoaudit); pass a new --out")
        changed = differences(recorded, record.identity)
        if changed:
            raise EmoauditError(f"{out} holds another audit (different {', '.join(changed)}); pass a new --out")
        console.print(f"resuming the audit in {out}")
    write_json(path, to_dict(record))
