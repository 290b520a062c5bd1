"""The models a study audits: from the command line and a models file, each with its own output folder."""

from __future__ import annotations

import hashlib
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from emoaudit.errors import EmoauditError
from emoaudit.results.study import SLUG_PATTERN

_UNSAFE = re.compile(r"[^a-z0-9._-]+")
_SLUG = re.compile(SLUG_PATTERN)


@dataclass(frozen=True)
class Target:
    """One model of a study: its reference (any MODEL form `scan` takes) and its folder under the study's OUT."""

    reference: str
    slug: str


def slug_for(reference: str) -> str:
    """A folder name for a model reference, the same on every run and on every file system.

    Lower case, letters, digits, '.', '_' and '-' only. A reference that is already such a name (an
    offline alias) is its own slug; any other (a path, a Hub ID, upper case) keeps a readable part
    and gains 8 hex digits of the sha256 of the reference (paths made absolute), so that two
    references never share a folder, on case-insensitive file systems too.
    """
    path = Path(reference).expanduser()
    readable = path.name if path.exists() else reference
    base = _UNSAFE.sub("-", readable.lower()).strip(".-")[:60] or "model"
    if base == reference:
        return base
    key = str(path.resolve()) if path.exists() else reference
    return f"{base}-{hashlib.sha256(key.encode('utf-8')).hexdigest()[:8]}"


def read_models_file(path: Path) -> list[Target]:
    """A models file: `models = ["alias", {reference = "./ckpt", slug = "step-1000"}, ...]`.

    Raises EmoauditError when the file is missing, is not TOML, or lists something else.
    """
    if not path.is_file():
        raise EmoauditError(f"models file not found: {path}")
    try:
        entries = tomllib.loads(path.read_text(encoding="utf-8"))["models"]
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, KeyError) as exc:
        raise EmoauditError(f"malformed models file {path}: {type(exc).__name__}: {exc}") from exc
    if not isinstance(entries, list):
        raise EmoauditError(f"malformed models file {path}: `models` must be a list")
    targets = []
    for entry in entries:
        if isinstance(entry, str):
            targets.append(Target(entry, slug_for(entry)))
        elif (
            isinstance(entry, dict) and isinstance(entry.get("reference"), str) and set(entry) <= {"reference", "slug"}
        ):
            slug = entry.get("slug", slug_for(entry["reference"]))
            if not isinstance(slug, str) or not _SLUG.match(slug):
                raise EmoauditError(f"models file {path}: slug {slug!r} is not a folder name (letters, digits, ._-)")
            targets.append(Target(entry["reference"], slug))
        else:
            raise EmoauditError(
                f"malformed models file {path}: each model is a reference or {{reference = ..., slug = ...}}, "
                f"not {entry!r}"
            )
    return targets


def study_targets(references: list[str], models_file: Path | None) -> list[Target]:
    """The command line's models, then the file's; a reference listed twice is audited once.

    Raises EmoauditError when there is no model, or two models would share a folder.
    """
    listed = [Target(r, slug_for(r)) for r in references]
    listed += read_models_file(models_file) if models_file is not None else []
    first: dict[str, Target] = {}
    for target in listed:
        first.setdefault(target.reference, target)
    targets = list(first.values())
    if not targets:
        raise EmoauditError("no model to study: name models on the command line or in --models FILE.toml")
    folders: dict[str, str] = {}
    for target in targets:
        other = folders.setdefault(target.slug.lower(), target.reference)
        if other != target.reference:
            raise EmoauditError(f"{other!r} and {target.reference!r} would share the folder {target.slug!r}")
    return targets


# The files a study writes into its OUT beside the models' folders (its atomic writes' temporary files start
# with a dot, which no slug does).
STUDY_FILES = ("study.json", "study.html")


def check_slugs(targets: list[Target], out: Path, written: tuple[Path | None, ...] = ()) -> None:
    """Raise EmoauditError, before any work, when a model's folder OUT/<slug> would be a file the study writes
    itself (study.json, study.html, or a file of `written` that lands in OUT, such as --junit), compared
    without case (case-insensitive file systems), or is a file already there."""
    reserved = {name.lower(): name for name in STUDY_FILES}
    for path in written:
        if path is not None and path.absolute().parent.resolve() == out.absolute().resolve():
            reserved[path.name.lower()] = path.name
    for target in targets:
        name = reserved.get(target.slug.lower())
        if name is not None:
            raise EmoauditError(
                f"{target.reference!r} would be audited into {out / target.slug}, the study's own {name}: give it "
                "another slug in --models ({reference = ..., slug = ...})"
            )
        folder = out / target.slug
        if folder.exists() and not folder.is_dir():
            raise EmoauditError(f"{target.reference!r} would be audited into {folder}, which is a file")
