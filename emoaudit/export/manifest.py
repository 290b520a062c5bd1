"""A verifiable record of an audit's files: the sha256 of every file under OUT, with the audit's identity.

`emoaudit verify OUT` recomputes every hash months later and names the first file that was changed,
removed or added since the manifest was written.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from emoaudit import __version__
from emoaudit.errors import EmoauditError
from emoaudit.storage import tree_digests, write_json

MANIFEST = "manifest.json"
FORMAT = "emoaudit-manifest/1"


@dataclass(frozen=True)
class AuditIdentity:
    """Who and what the manifest vouches for."""

    model_reference: str
    model_sha256: str | None
    specification_sha256: str
    policy_sha256: str


@dataclass(frozen=True)
class Discrepancy:
    """A file that no longer matches the manifest: `changed`, `missing` or `added`."""

    kind: str
    path: str


def file_hashes(out: Path) -> dict[str, str]:
    """sha256 of every file below `out` but the manifest, keyed by its POSIX path relative to `out`; a link,
    FIFO or other special file by a tag no sha256 equals, and never followed (`storage.tree_digests`).

    Temporary files of an interrupted atomic write (`.name.*.tmp`) count like any other: a manifest
    vouches for what is there.
    """
    return tree_digests(out, skip=frozenset({MANIFEST}))


def write_manifest(out: Path, identity: AuditIdentity) -> Path:
    """Write OUT/manifest.json over the files OUT holds now; returns its path."""
    document = {
        "format": FORMAT,
        "emoaudit": __version__,
        **asdict(identity),
        "files": file_hashes(out),
    }
    path = out / MANIFEST
    write_json(path, document)
    return path


def refresh_manifest(out: Path) -> None:
    """Rewrite OUT/manifest.json over the files OUT holds now, with the identity it recorded: for files the
    command line adds to OUT after the audit (a JUnit or SARIF file asked to land there)."""
    path = out / MANIFEST
    if path.is_file():
        recorded = json.loads(path.read_text(encoding="utf-8"))
        write_manifest(out, AuditIdentity(**{f: recorded[f] for f in AuditIdentity.__dataclass_fields__}))


def verify(out: Path) -> list[Discrepancy]:
    """Every file that differs from OUT/manifest.json, changed files first, then missing, then added.

    Raises EmoauditError when OUT holds no readable manifest.
    """
    path = out / MANIFEST
    if path.is_symlink():  # verify reads nothing from outside OUT
        raise EmoauditError(f"{path} is a link, not the manifest the audit wrote")
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
