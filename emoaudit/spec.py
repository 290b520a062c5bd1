"""Audit specifications: the emotions, stimuli and profiles an audit runs, read from `audits/`.

The tables are typed and validated in `emoaudit.spec_tables`; what the audit's statistics need of
them as a whole (enough emotions, both valences, enough samples per fold) is checked here, so that a
specification the audit cannot run is refused before any model loads.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import tomllib
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

from emoaudit.errors import EmoauditError
from emoaudit.leakage.scripts import LANGUAGES
from emoaudit.spec_behaviour import DATA_TYPES_WITH_BEHAVIOUR, BehaviourData, LabelledReplies, check_behaviour
from emoaudit.spec_tables import (
    Analysis,
    BehaviourConfig,
    Emotion,
    Extraction,
    LeakageConfig,
    Profile,
    Sampling,
    Scenario,
    SpecDocument,
    Steering,
    read_data,
    read_document,
)

BUILTIN_DIR = Path(str(files("emoaudit.audits")))
DEFAULT_SPEC = BUILTIN_DIR / "default.toml"
# Letters of any script and apostrophes: "désespéré" is one word, not three.
_WORD = re.compile(r"(?:[^\W\d_]|')+")
# Affect alignment reads three principal components of the centred vectors, and n centred vectors
# span n - 1 dimensions: with fewer than four emotions a component is numerical noise. (Three are
# the least for the Spearman correlation of two similarity matrices over their emotion pairs.)
MIN_EMOTIONS = 4


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
    analysis: Analysis
    generation: Sampling
    extraction: Extraction
    scenarios: tuple[Scenario, ...]
    judge_prototypes: dict[str, list[str]]
    steering: Steering
    leakage: LeakageConfig
    # Held-out texts by set (registers such as "messages", languages such as "es"): {set: {label: [text]}}.
    heldout_sets: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    lexicon: dict[str, list[str]] = field(default_factory=dict)  # {emotion: words that name it}
    # {language: {emotion: words that name it in that language}}, for the leakage stage's logit lens
    translations: dict[str, dict[str, tuple[str, ...]]] = field(default_factory=dict)
    # The behaviour stage's probes and judge rules, [behaviour], and its judge's labelled held-out replies.
    behaviour: BehaviourData | None = None
    behaviour_config: BehaviourConfig | None = None
    behaviour_heldout: LabelledReplies | None = None

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

    def emotion_words(self, emotion: str) -> set[str]:
        """The words that name an emotion: its forbidden words and its lexicon's, lower-case."""
        table = next(e for e in self.emotions if e.name == emotion)
        return {w.lower() for w in (*table.forbidden, *self.lexicon.get(emotion, []))}

    def emotions_named_in(self, text: str) -> list[str]:
        """The emotions whose words (`emotion_words`) a text contains, whole words in any case."""
        found = {t.lower().strip("'") for t in _WORD.findall(text)}
        found |= {w.removesuffix("'s") for w in found}
        return [e for e in self.emotion_names if found & self.emotion_words(e)]


def load_spec(path: Path | str | None = None) -> AuditSpec:
    """Read and validate an audit specification; its data files are resolved relative to it.

    Raises EmoauditError, in one line naming the file, the table and the key, for a missing or
    unreadable file, an unknown or missing key, an ill-typed or out-of-range value, and a specification
    the audit's statistics cannot run (see `_check_runnable`).
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
        heldout_sets=_flat_sets(typed.get("heldout_sets", {}), source),
        lexicon=typed.get("lexicon", {}),
        translations=typed.get("translations", {}),
        behaviour=typed.get("behaviour"),
        behaviour_config=doc.behaviour,
        behaviour_heldout=typed.get("behaviour_heldout"),
    )
    _check_names(doc, source)
    _check_runnable(spec, source)
    return spec


def samples_needed(cv_folds: int) -> int:
    """The fewest samples per label that `cv_folds`-fold stratified cross-validation needs.

    Every test fold holds each label at least once (n >= cv_folds, scikit-learn's StratifiedKFold
    precondition), and every training split keeps at least two of each label (n - ceil(n / cv_folds)
    >= 2), so that each class has a within-class spread for the probe and the centroids to learn from:
    4 for two folds, cv_folds from three folds on.
    """
    n = cv_folds
    while n - math.ceil(n / cv_folds) < 2:
        n += 1
    return n


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
    return parsed, read_data(kind, text, f"audit data file {path}", DATA_TYPES_WITH_BEHAVIOUR)


def _digest(spec_bytes: bytes, data: dict[str, Any]) -> str:
    """Hash of the specification and every data file it names, so results record what was run."""
    h = hashlib.sha256(spec_bytes)
    h.update(json.dumps(data, sort_keys=True, ensure_ascii=False).encode("utf-8"))
    return h.hexdigest()


def _check_names(doc: SpecDocument, source: str) -> None:
    """A profile or emotion is named by its table's key; a `name` key inside the table is not one of its keys."""
    for table, entries in (("profiles", doc.profiles), ("emotions", doc.emotions)):
        for key, entry in entries.items():
            if entry.name != key:
                raise EmoauditError(f"{source}: [{table}.{key}] unknown key 'name'")


def _check_runnable(spec: AuditSpec, source: str) -> None:
    """What the audit's statistics and prompts need of the specification as a whole."""
    emotions = spec.emotions
    if len(emotions) < MIN_EMOTIONS:
        raise EmoauditError(
            f"{source}: [emotions] defines {len(emotions)} emotion(s); the analysis needs at least {MIN_EMOTIONS}"
        )
    if not (any(e.valence > 0 for e in emotions) and any(e.valence < 0 for e in emotions)):
        raise EmoauditError(
            f"{source}: [emotions] key 'valence': needs pleasant (> 0) and unpleasant (< 0) emotions, "
            "or the valence AUC is undefined"
        )
    if len({e.arousal for e in emotions}) < 2:
        raise EmoauditError(f"{source}: [emotions] key 'arousal': all equal, so nothing can correlate with it")
    if spec.reference in spec.emotion_names:
        raise EmoauditError(f"{source}: (top level) key 'reference': {spec.reference!r} is also an emotion")
    if spec.steering.specificity_top_k >= len(emotions):  # the rank condition would hold for every trial
        raise EmoauditError(
            f"{source}: [steering] key 'specificity_top_k': {spec.steering.specificity_top_k} must be below the "
            f"number of emotions ({len(emotions)}), or the target's rank tests nothing"
        )
    if min(spec.steering.multipliers) > spec.steering.calibrated_range:  # the policy would read no trial
        raise EmoauditError(
            f"{source}: [steering] key 'calibrated_range': {spec.steering.calibrated_range:g} is below every "
            "multiplier, so no trial is in the calibrated range"
        )
    for name, table in (("passages", spec.passages), ("heldout", spec.heldout)):
        missing = [label for label in spec.labels if not table.get(label)]
        if missing:
            raise EmoauditError(f"{source}: {name} has no texts for {', '.join(missing)}")
    for profile in spec.profiles.values():
        _check_folds(spec, profile, source)
    _check_templates(spec, source)
    ids = [sc.id for sc in spec.scenarios]
    if len(set(ids)) < len(ids):
        raise EmoauditError(
            f"{source}: scenarios: ids repeat ({', '.join(sorted({i for i in ids if ids.count(i) > 1}))})"
        )
    _check_translations(spec, source)
    _check_labelled(spec, source)
    check_behaviour(spec.behaviour, spec.behaviour_config, spec.behaviour_heldout, spec.emotion_names, source)


def _flat_sets(groups: dict[str, dict[str, dict[str, list[str]]]], source: str) -> dict[str, dict[str, list[str]]]:
    """The held-out sets of every group (registers, languages) by name; a name in two groups is refused,
    since results key the sets by name alone, and so is a language set not named by its langdetect code."""
    names = [name for group in groups.values() for name in group]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise EmoauditError(f"{source}: heldout_sets: set name(s) {', '.join(repeated)} in more than one group")
    unknown = [name for name in groups.get("languages", {}) if name not in LANGUAGES]
    if unknown:  # as in translations: a set of another language is named by its langdetect code
        raise EmoauditError(
            f"{source}: heldout_sets: unknown language(s) {', '.join(unknown)}; "
            f"known (langdetect): {', '.join(sorted(LANGUAGES))}"
        )
    return {name: table for group in groups.values() for name, table in group.items()}


def _check_labelled(spec: AuditSpec, source: str) -> None:
    """The held-out sets and the lexicon name only the audit's labels, and a set has texts for each label it
    names: a misspelt or empty one would drop texts silently."""
    tables = {f"heldout_sets[{name}]": table for name, table in spec.heldout_sets.items()} | {"lexicon": spec.lexicon}
    for where, table in tables.items():
        unknown = [label for label in table if label not in spec.labels]
        if unknown:
            raise EmoauditError(
                f"{source}: {where}: unknown label(s) {', '.join(unknown)}; labels: {', '.join(spec.labels)}"
            )
    for name, table in spec.heldout_sets.items():
        empty = [label for label, texts in table.items() if not texts]
        if empty:  # a label a set names is one it scores: with no texts, it would drop out unsaid
            raise EmoauditError(f"{source}: heldout_sets[{name}]: no texts for {', '.join(empty)}")


def _check_translations(spec: AuditSpec, source: str) -> None:
    """Every language is one langdetect knows, and names every emotion of the audit and no other, each word
    under one emotion only: the lens compares an emotion's words with the other emotions' in each language."""
    for language, table in spec.translations.items():
        where = f"{source}: translations[{language}]"
        if language not in LANGUAGES:
            raise EmoauditError(f"{where}: unknown language; known (langdetect): {', '.join(sorted(LANGUAGES))}")
        unknown = [e for e in table if e not in spec.emotion_names]
        if unknown:
            raise EmoauditError(f"{where}: unknown emotion(s) {', '.join(unknown)}")
        missing = [e for e in spec.emotion_names if e not in table]
        if missing:
            raise EmoauditError(f"{where}: no words for {', '.join(missing)}")
        words = [w for e in table for w in dict.fromkeys(table[e])]
        repeated = sorted({w for w in words if words.count(w) > 1})
        if repeated:
            raise EmoauditError(f"{where}: words under more than one emotion: {', '.join(repeated)}")


def _check_folds(spec: AuditSpec, profile: Profile, source: str) -> None:
    """Each emotion has as many passages and stories as the profile's cross-validation needs."""
    needed = samples_needed(profile.cv_folds)
    rule = f"{profile.cv_folds}-fold cross-validation needs at least {needed} per label"
    table = f"[profiles.{profile.name}]"
    if profile.stories_per_label < needed:
        raise EmoauditError(f"{source}: {table} key 'stories_per_label': {profile.stories_per_label}; {rule}")
    if profile.passages_per_label < needed:
        raise EmoauditError(f"{source}: {table} key 'passages_per_label': {profile.passages_per_label}; {rule}")
    short = [e for e in spec.emotion_names if len(spec.passages[e]) < needed]
    if short:
        raise EmoauditError(f"{source}: passages has fewer than {needed} texts for {', '.join(short)}; {table} {rule}")


def _check_templates(spec: AuditSpec, source: str) -> None:
    """Every generation template fills from {emotion} and {topic} alone."""
    for template in spec.emotion_templates + spec.reference_templates:
        try:
            template.format(emotion="", topic="")
        except (KeyError, IndexError, ValueError) as exc:
            raise EmoauditError(f"{source}: generation template {template!r} cannot be filled: {exc!r}") from exc
