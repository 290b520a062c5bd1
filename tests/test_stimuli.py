"""The audit specification's data obey the rules the method depends on."""

import re

import pytest

from emoaudit.spec import load_spec

SPEC = load_spec()
OTHER_LABEL_WORDS = {
    "joy",
    "joyful",
    "furious",
    "terrified",
    "scared",
    "worried",
    "grief",
    "delighted",
    "thankful",
    "panic",
}


def sentences(text: str) -> int:
    return len(re.findall(r"[.!?]+(?:\s|$)", text.strip()))


def test_twenty_emotions_and_a_reference() -> None:
    assert len(SPEC.emotions) == 20 and SPEC.reference == "neutral"
    assert SPEC.labels[-1] == "neutral" and len(set(SPEC.labels)) == 21
    for emotion in SPEC.emotions:
        assert -1 <= emotion.valence <= 1 and -1 <= emotion.arousal <= 1
        assert emotion.name in emotion.forbidden


@pytest.mark.parametrize("table", ["passages", "heldout"])
def test_no_stimulus_names_any_emotion(table: str) -> None:
    for label, texts in getattr(SPEC, table).items():
        for text in texts:
            assert not SPEC.forbidden_words_in(text), (label, text)
            words = {w.lower() for w in re.findall(r"[A-Za-z]+", text)}
            assert not words & OTHER_LABEL_WORDS, (label, text)


def test_forbidden_word_check_catches_names_and_derivatives() -> None:
    assert SPEC.forbidden_words_in("She hoped, ANGRILY, for Love's sake.") == ["angrily", "hoped", "love"]
    assert SPEC.forbidden_words_in("The saddle was on the horse.") == []


def test_passages_are_enough_short_and_distinct_from_heldout() -> None:
    passages = {t for texts in SPEC.passages.values() for t in texts}
    heldout = {t for texts in SPEC.heldout.values() for t in texts}
    assert not passages & heldout
    for label in SPEC.labels:
        assert len(SPEC.passages[label]) >= 12 and len(SPEC.heldout[label]) >= 10
        assert all(2 <= sentences(t) <= 4 for t in SPEC.passages[label]), label


def test_generation_templates_have_their_slots() -> None:
    assert len(SPEC.emotion_templates) >= 5
    for template in SPEC.emotion_templates:
        assert "{emotion}" in template and "{topic}" in template
    for template in SPEC.reference_templates:
        assert "{emotion}" not in template and not SPEC.forbidden_words_in(template.format(topic="x"))
    assert SPEC.profile("quick").passages_per_label <= SPEC.profile("standard").passages_per_label


def test_spec_hash_changes_with_the_data(tmp_path) -> None:
    import shutil

    copy = tmp_path / "audits"
    shutil.copytree(SPEC.path.parent, copy)
    assert load_spec(copy / "default.toml").sha256 == SPEC.sha256
    data = copy / "default" / "passages.json"
    data.write_text(data.read_text().replace(".", "!", 1))
    assert load_spec(copy / "default.toml").sha256 != SPEC.sha256
