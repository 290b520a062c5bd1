"""Audit specifications: the emotions, stimuli and profiles an audit runs, read from `audits/`."""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

from emoaudit.errors import EmoauditError

BUILTIN_DIR = Path(str(files("emoaudit.audits")))
DEFAULT_SPEC = BUILTIN_DIR / "default.toml"
_WORD = re.compile(r"[A-Za-z']+")


@dataclass(frozen=True)
class Emotion:
    name: str
    valence: float
    arousal: float
    forbidden: tuple[str, ...]


@dataclass(frozen=True)
class Profile:
    """How much of the specification one run uses: the trade between time and statistical power."""

    name: str
    passages_per_label: int
    stories_per_label: int
    max_new_tokens: int
    permutations: int
    cv_folds: int
    steering_emotions: int
    steering_scenarios_per_kind: int
    steering_tokens: int


@dataclass(frozen=True)
class Scenario:
    id: str
    kind: str
    prompt: str


@dataclass(frozen=True)
class AuditSpec:
    name: str
    path: Path
    sha256: str
    emotions: tuple[Emotion, ...]
    reference: str
    passages: dict[str, list[str]]
    heldout: dict[str, list[str]]
    emotion_templates: tuple[str, ...]
    topics: tuple[str, ...]
    reference_templates: tuple[str, ...]
    reference_topics: tuple[str, ...]
    profiles: dict[str, Profile]
    analysis: dict[str, Any]
    generation: dict[str, Any]
    pooling: str
    scenarios: tuple[Scenario, ...]
    judge_prototypes: dict[str, list[str]]
    steering: dict[str, Any]
    leakage: dict[str, Any]

    @property
    def emotion_names(self) -> list[str]:
        return [e.name for e in self.emotions]

    @property
    def labels(self) -> list[str]:
        """Every stimulus label: the emotions, then the reference."""
        return self.emotion_names + [self.reference]

    def profile(self, name: str) -> Profile:
        if name not in self.profiles:
            raise EmoauditError(f"unknown profile {name!r}; this audit defines: {', '.join(self.profiles)}")
        return self.profiles[name]

    def forbidden_words_in(self, text: str) -> list[str]:
        """Emotion names or derivatives that a stimulus must not contain (whole words, any case)."""
        banned = {w.lower() for e in self.emotions for w in e.forbidden}
        found = {t.lower().strip("'") for t in _WORD.findall(text)}
        found |= {w.removesuffix("'s") for w in found}
        return sorted(found & banned)


def load_spec(path: Path | str | None = None) -> AuditSpec:
    """Read an audit specification; its data files are resolved relative to it."""
    spec_path = Path(path) if path is not None else DEFAULT_SPEC
    if not spec_path.is_file():
        raise EmoauditError(f"audit specification not found: {spec_path}")
    raw_bytes = spec_path.read_bytes()
    try:
        raw = tomllib.loads(raw_bytes.decode("utf-8"))
        emotions = tuple(
            Emotion(name, float(e["valence"]), float(e["arousal"]), tuple(e["forbidden"]))
            for name, e in raw["emotions"].items()
        )
        data = {key: _read_json(spec_path.parent / rel) for key, rel in raw["files"].items()}
        generation = data["generation"]
        profiles = {name: Profile(name=name, **p) for name, p in raw["profiles"].items()}
        spec = AuditSpec(
            name=raw["name"],
            path=spec_path,
            sha256=_digest(raw_bytes, data),
            emotions=emotions,
            reference=raw["reference"],
            passages=data["passages"],
            heldout=data["heldout"],
            emotion_templates=tuple(generation["emotion_templates"]),
            topics=tuple(generation["topics"]),
            reference_templates=tuple(generation["reference_templates"]),
            reference_topics=tuple(generation["reference_topics"]),
            profiles=profiles,
            analysis=dict(raw["analysis"]),
            generation=dict(raw["generation"]),
            pooling=str(raw["extraction"]["pooling"]),
            scenarios=tuple(Scenario(**sc) for sc in data["scenarios"]["scenarios"]),
            judge_prototypes=data["judge"],
            steering=dict(raw["steering"]),
            leakage=dict(raw["leakage"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise EmoauditError(f"malformed audit specification {spec_path}: {type(exc).__name__}: {exc}") from exc
    _check_labels(spec)
    return spec


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise EmoauditError(f"audit data file not found: {path}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise EmoauditError(f"malformed audit data file {path}: {exc}") from exc


def _digest(spec_bytes: bytes, data: dict[str, Any]) -> str:
    """Hash of the specification and every data file it names, so results record what was run."""
    h = hashlib.sha256(spec_bytes)
    h.update(json.dumps(data, sort_keys=True, ensure_ascii=False).encode("utf-8"))
    return h.hexdigest()


def _check_labels(spec: AuditSpec) -> None:
    for name, table in (("passages", spec.passages), ("heldout", spec.heldout)):
        missing = [label for label in spec.labels if not table.get(label)]
        if missing:
            raise EmoauditError(f"audit {spec.name!r}: {name} has no texts for {', '.join(missing)}")
