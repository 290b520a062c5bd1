"""The audit specification as the audit reads it: `AuditSpec`, its emotions, texts, profiles and tables."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path

from emoaudit.errors import EmoauditError
from emoaudit.spec.behaviour import BehaviourData, LabelledReplies, RefusalReader
from emoaudit.spec.tables import (
    Analysis,
    BehaviourConfig,
    Emotion,
    Extraction,
    LeakageConfig,
    Profile,
    Sampling,
    Scenario,
    Steering,
)

BUILTIN_DIR = Path(str(files("emoaudit") / "audits"))
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
    refusal_reader: RefusalReader | None = None

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
