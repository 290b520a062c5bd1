"""A verifiable record of an audit's files: the sha256 of every file under OUT, with the audit's identity
and the policy that gated it.

`emoaudit verify OUT` recomputes every hash months later and names the first file that was changed,
removed or added since the manifest was written.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from emoaudit import __version__
from emoaudit.errors import EmoauditError
from emoaudit.results.convert import to_dict
from emoaudit.results.identity import RunRecord
from emoaudit.storage import sha256_file, write_json

MANIFEST = "manifest.json"
FORMAT = "emoaudit-manifest/1"


@dataclass(frozen=True)
class Discrepancy:
    """A file that no longer matches the manifest: `changed`, `missing` or `added`."""

    kind: str
    path: str


def file_hashes(out: Path) -> dict[str, str]:
    """sha256 of every regular file below `out` but the manifest, keyed by its POSIX path relative to `out`.

    Temporary files of an interrupted atomic write (`.name.*.tmp`) count like any other: a manifest
    vouches for what is there.
    """
    return {
        path.relative_to(out).as_posix(): sha256_file(path)
        for path in sorted(out.rglob("*"))
        if path.is_file() and path.relative_to(out).as_posix() != MANIFEST
    }


def write_manifest(out: Path, run: RunRecord, policy_sha256: str) -> Path:
    """Write OUT/manifest.json over the files OUT holds now, vouching for this audit (its identity, the MODEL
    argument as typed) gated by this policy; returns its path."""
    document = {
        "format": FORMAT,
        "emoaudit": __version__,
        **to_dict(run),
        "policy_sha256": policy_sha256,
        "files": file_hashes(out),
    }
    path = out / MANIFEST
    write_json(path, document)
    return path


def verify(out: Path) -> list[Discrepancy]:
    """Every file that differs from OUT/manifest.json, changed files first, then missing, then added.

    Raises EmoauditError when OUT holds no readable manifest.
    """
    path = out / MANIFEST
    if not path.is_file():
        raise EmoauditError(f"no {MANIFEST} in {out}: not an emoaudit output directory, or written before manifests")
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        recorded: dict[str, str] = document["files"]
        if document.get("format") != FORMAT or not isinstance(recorded, dict):
            raise ValueError(f"format {document.get('format')!r}")
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise EmoauditError(f"{path} is not an emoaudit manifest ({exc})") from exc
    actual = file_hashes(out)
    changed = [Discrepancy("changed", p) for p in recorded if p in actual and actual[p] != recorded[p]]
    missing = [Discrepancy("missing", p) for p in recorded if p not in actual]
    added = [Discrepancy("added", p) for p in actual if p not in recorded]
    return changed + missing + added
