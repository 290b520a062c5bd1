"""Audit specifications: the emotions, stimuli and profiles an audit runs, read from `emoaudit/audits/`.

The tables are typed in `spec.tables` and read by `spec.reading`; what the audit's statistics need of
them as a whole (enough emotions, both valences, enough samples per fold) is checked in `spec.checks`,
so that a specification the audit cannot run is refused before any model loads. `load_spec` reads one
into an `AuditSpec` (`spec.audit_spec`).
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from pathlib import Path
from typing import Any

from emoaudit.errors import EmoauditError
from emoaudit.spec.audit_spec import BUILTIN_DIR, DEFAULT_SPEC, AuditSpec
from emoaudit.spec.behaviour import DATA_TYPES_WITH_BEHAVIOUR
from emoaudit.spec.checks import check_names, check_runnable, flat_sets, samples_needed
from emoaudit.spec.reading import read_data, read_document
from emoaudit.spec.tables import Profile

# The specification's public names: read one (`load_spec`), and what its readers type against.
__all__ = ["BUILTIN_DIR", "DEFAULT_SPEC", "AuditSpec", "Profile", "load_spec", "samples_needed"]


def load_spec(path: Path | str | None = None) -> AuditSpec:
    """Read and validate an audit specification; its data files are resolved relative to it.

    Raises EmoauditError, in one line naming the file, the table and the key, for a missing or
    unreadable file, an unknown or missing key, an ill-typed or out-of-range value, and a specification
    the audit's statistics cannot run (see `spec.checks.check_runnable`).
    """
    spec_path = Path(path) if path is not None else DEFAULT_SPEC
    if not spec_path.is_file():
        raise EmoauditError(f"audit specification not found: {spec_path}")
    source = f"audit specification {spec_path}"
    raw_bytes = spec_path.read_bytes()
    try:
        raw = tomllib.loads(raw_bytes.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise EmoauditError(f"{source}: not TOML: {exc}") from exc
    doc = read_document(raw, source)
    data: dict[str, Any] = {}
    typed: dict[str, Any] = {}
    for kind, rel in vars(doc.files).items():
        if rel is not None:
            data[kind], typed[kind] = _read_data(kind, spec_path.parent / rel)
    generation = typed["generation"]
    spec = AuditSpec(
        name=doc.name,
        path=spec_path,
        sha256=_digest(raw_bytes, data),
        emotions=tuple(doc.emotions.values()),
        reference=doc.reference,
        passages=typed["passages"],
        heldout=typed["heldout"],
        emotion_templates=generation.emotion_templates,
        topics=generation.topics,
        reference_templates=generation.reference_templates,
        reference_topics=generation.reference_topics,
        profiles=doc.profiles,
        analysis=doc.analysis,
        generation=doc.generation,
        extraction=doc.extraction,
        scenarios=typed["scenarios"].scenarios,
        judge_prototypes=typed["judge"],
        steering=doc.steering,
        leakage=doc.leakage,
        heldout_sets=flat_sets(typed.get("heldout_sets", {}), source),
        lexicon=typed.get("lexicon", {}),
        translations=typed.get("translations", {}),
        behaviour=typed.get("behaviour"),
        behaviour_config=doc.behaviour,
        behaviour_heldout=typed.get("behaviour_heldout"),
        refusal_reader=typed.get("refusal_reader"),
    )
    check_names(doc, source)
    check_runnable(spec, source)
    return spec


def _read_data(kind: str, path: Path) -> tuple[Any, Any]:
    """A data file as parsed JSON (what the digest hashes) and as its validated type."""
    if not path.is_file():
        raise EmoauditError(f"audit data file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise EmoauditError(f"audit data file {path} is not UTF-8 text: byte {exc.start} cannot be decoded") from None
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as exc:
        raise EmoauditError(f"malformed audit data file {path}: {exc}") from exc
    except RecursionError:
        raise EmoauditError(f"malformed audit data file {path}: its arrays or objects nest too deeply") from None
    return parsed, read_data(kind, text, f"audit data file {path}", DATA_TYPES_WITH_BEHAVIOUR)


def _digest(spec_bytes: bytes, data: dict[str, Any]) -> str:
    """Hash of the specification and every data file it names, so results record what was run."""
    h = hashlib.sha256(spec_bytes)
    h.update(json.dumps(data, sort_keys=True, ensure_ascii=False).encode("utf-8"))
    return h.hexdigest()
