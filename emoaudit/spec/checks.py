"""What the audit's statistics need of a specification as a whole (enough emotions, both valences, enough
samples per fold, known languages, labelled sets naming known emotions), checked before any model loads."""

from __future__ import annotations

import math

from emoaudit.errors import EmoauditError
from emoaudit.spec.audit_spec import MIN_EMOTIONS, AuditSpec
from emoaudit.spec.scripts import LANGUAGES
from emoaudit.spec.tables import Profile, SpecDocument


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


def check_names(doc: SpecDocument, source: str) -> None:
    """A profile or emotion is named by its table's key; a `name` key inside the table is not one of its keys."""
    for table, entries in (("profiles", doc.profiles), ("emotions", doc.emotions)):
        for key, entry in entries.items():
            if entry.name != key:
                raise EmoauditError(f"{source}: [{table}.{key}] unknown key 'name'")


def check_runnable(spec: AuditSpec, source: str) -> None:
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


def flat_sets(groups: dict[str, dict[str, dict[str, list[str]]]], source: str) -> dict[str, dict[str, list[str]]]:
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
