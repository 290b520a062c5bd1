"""Semantic cross-lingual entanglement: the logit lens of an emotion's own words in other languages, against
the unsteered state, random directions of the same norm and the other emotions' words."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import torch

from emoaudit.leakage.semantic import Grid, WordTokens, entanglement, usable, word_tokens
from emoaudit.model.loaded import LoadedModel
from emoaudit.report.gating import semantic_check
from emoaudit.report.policy import load_policy
from emoaudit.steering.specificity import random_directions

EMOTIONS = ["happy", "sad", "calm", "afraid", "angry", "proud", "guilty", "loving"]
# Words of the tiny tokenizer's vocabulary (trained on tests/conftest.py's CORPUS): after a space, each is
# one token; alone, most begin with a single letter, which stands for no word.
WORDS = ["boat", "bowl", "butter", "flour", "harbour", "letter", "oven", "sea"]
WORDS_TOO = ["train", "wall", "open", "mix", "loud", "hard", "four", "then"]
TRANSLATIONS = {
    "xx": {e: (w,) for e, w in zip(EMOTIONS, WORDS, strict=True)},
    "yy": {e: (w,) for e, w in zip(EMOTIONS, WORDS_TOO, strict=True)},
}
GRID = Grid(
    multipliers=[0.5, 1.0, 2.0],
    strengths=[0.25, 0.5, 1.0],
    mean_norm=1.0,
    calibrated_range=1.0,
    control_directions=3,
    control_seed=0,
)


@contextmanager
def rigged_lens(lm: LoadedModel, tokens: WordTokens, axis: dict[str, int] | None = None) -> Iterator[None]:
    """A lens that reads emotion i's words' tokens along hidden axis i (or `axis[emotion]`), and nothing else,
    in every language."""
    with torch.no_grad():
        saved_w = lm.stream.unembed.weight.clone()
        saved_norm = lm.stream.final_norm.weight.clone()
        lm.stream.unembed.weight.zero_()
        lm.stream.final_norm.weight.fill_(1.0)
        for table in tokens.ids.values():
            for i, emotion in enumerate(e for e in EMOTIONS if e in table):
                lm.stream.unembed.weight[table[emotion], i if axis is None else axis[emotion]] = 5.0
    try:
        yield
    finally:
        with torch.no_grad():
            lm.stream.unembed.weight.copy_(saved_w)
            lm.stream.final_norm.weight.copy_(saved_norm)


def states(lm: LoadedModel, seed: int) -> torch.Tensor:
    return torch.randn(4, lm.identity.hidden_size, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize(
    ("piece", "stands_for_a_word"),
    [(" des", True), ("愤", True), ("怒怒", True), ("\ufffd", False), ("æ\ufffd", False), (" ", False), (" he", False)],
)
def test_a_first_token_stands_for_a_word_with_three_letters_or_a_han_character(
    piece: str, stands_for_a_word: bool
) -> None:
    assert usable(piece) is stands_for_a_word


def test_first_tokens_leave_out_single_letters_and_tokens_two_emotions_share(tiny_llama: LoadedModel) -> None:
    lm = tiny_llama
    tokens = word_tokens(lm, {"xx": {"happy": ("boat", "sea"), "sad": (" sea", "bowl"), "calm": ("b",)}})
    decoded = {e: [lm.tokenizer.decode([t]) for t in ids] for e, ids in tokens.ids["xx"].items()}
    # " sea" begins a word of happy and of sad: it stands for neither; "b" alone is one letter
    assert decoded == {"happy": [" boat"], "sad": [" bowl"], "calm": []}
    assert tokens.unusable == {"xx": 1}


def test_a_lens_that_reads_each_emotions_words_along_its_vector_is_a_finding(tiny_llama: LoadedModel) -> None:
    lm = tiny_llama
    tokens = word_tokens(lm, TRANSLATIONS)
    assert all(all(ids for ids in table.values()) for table in tokens.ids.values())
    axes = {e: torch.eye(lm.identity.hidden_size)[i] for i, e in enumerate(EMOTIONS)}
    with rigged_lens(lm, tokens):
        result = entanglement(lm, states(lm, 0), axes, GRID, tokens)
    assert result.pairs == 16 and result.multipliers == [0.5, 1.0]
    assert result.emotions_higher == 8 and result.p_value == pytest.approx(1 / 2**8)  # the exact test's least p
    assert result.specific_share == 1.0 and result.mean_excess > 0.5 and result.selectivity_p_value == 1 / 2**8
    pair = result.languages["xx"].emotions["angry"]
    assert pair.rise > pair.random_rise and pair.rise > pair.other_rise and pair.specific
    assert pair.rank_steered <= pair.rank_unsteered and pair.logprob_steered > pair.logprob_unsteered
    assert pair.excess == pytest.approx(pair.rise - pair.random_rise) and pair.selectivity > 0
    assert result.by_multiplier["2.0"] > result.by_multiplier["0.5"] > 0  # the stronger, the higher
    check = semantic_check(load_policy().semantic_entanglement, result)
    assert check.failed and check.severity == "low"
    assert "16 emotion × language pairs" in check.detail and "8 of 8 emotions higher" in check.detail


def test_four_steered_emotions_cannot_reach_alpha_and_the_check_says_so(tiny_llama: LoadedModel) -> None:
    """The quick profile steers four emotions: the exact test's least p is 1/16 > 0.05, so even words rising
    along their own vectors and no other give no finding, and the detail says why."""
    lm = tiny_llama
    four = {"xx": {e: w for e, w in TRANSLATIONS["xx"].items() if e in EMOTIONS[:4]}}
    tokens = word_tokens(lm, four)
    axes = {e: torch.eye(lm.identity.hidden_size)[i] for i, e in enumerate(EMOTIONS[:4])}
    with rigged_lens(lm, tokens, axis={e: i for i, e in enumerate(EMOTIONS[:4])}):
        result = entanglement(lm, states(lm, 0), axes, GRID, tokens)
    assert result.emotions_higher == 4 and result.p_value == pytest.approx(1 / 16)
    check = semantic_check(load_policy().semantic_entanglement, result)
    assert not check.failed and check.evidence["smallest_p"] == 1 / 16
    assert "underpowered: over 4 steered emotions the smallest p the test can give is 0.0625" in check.detail
    eight = semantic_check(
        load_policy().semantic_entanglement, dataclasses.replace(result, by_emotion=dict.fromkeys(EMOTIONS, 1.0))
    )
    assert "smallest p the test can give" not in eight.detail and eight.evidence["underpowered"] is False


def test_a_vector_that_raises_every_emotions_words_alike_is_not_a_finding(tiny_llama: LoadedModel) -> None:
    """Every emotion's words read along one axis, and every vector along it: the words rise far beyond the
    random directions, but no more than the other emotions' words, which is not semantic."""
    lm = tiny_llama
    tokens = word_tokens(lm, TRANSLATIONS)
    one = torch.eye(lm.identity.hidden_size)[0]
    with rigged_lens(lm, tokens, axis=dict.fromkeys(EMOTIONS, 0)):
        result = entanglement(lm, states(lm, 0), dict.fromkeys(EMOTIONS, one), GRID, tokens)
    assert result.mean_excess > 0.5 and result.p_value == pytest.approx(1 / 2**8)
    assert result.mean_selectivity == pytest.approx(0, abs=1e-6) and result.specific_share == 0.0
    rule = load_policy().semantic_entanglement
    check = semantic_check(rule, result)
    # A pass keeps the severity the check guards at: the reader sees what a failure would have meant.
    assert not check.failed and check.severity == rule.severity


def test_random_emotion_directions_are_rarely_a_finding(tiny_llama: LoadedModel) -> None:
    """The same rigged lens, but each emotion steered along a random direction: its words rise no more than
    under the controls, so at alpha 0.05 about one seed in twenty may pass by chance, not more."""
    lm = tiny_llama
    tokens = word_tokens(lm, TRANSLATIONS)
    rule = load_policy().semantic_entanglement
    found = []
    with rigged_lens(lm, tokens):
        for seed in range(1, 11):
            draws = random_directions(len(EMOTIONS), lm.identity.hidden_size, 1000 + seed)
            noise = dict(zip(EMOTIONS, draws, strict=True))
            result = entanglement(lm, states(lm, seed), noise, GRID, tokens)
            found.append(semantic_check(rule, result).failed)
    assert sum(found) <= 2


def test_without_translations_the_check_says_it_measured_nothing() -> None:
    rule = load_policy().semantic_entanglement
    check = semantic_check(rule, None)
    assert not check.failed and check.severity == rule.severity and "not measured" in check.detail


def test_words_without_a_usable_token_in_the_vocabulary_are_measured_as_nothing_not_a_crash(
    tiny_llama: LoadedModel,
) -> None:
    # The tiny tokenizer knows no Han character and no Cyrillic word: no column for the lens to read.
    lm = tiny_llama
    tokens = word_tokens(
        lm, {"zh": {"happy": ("快乐",), "sad": ("悲伤",)}, "ru": {"happy": ("счастье",), "sad": ("грусть",)}}
    )
    assert not any(ids for table in tokens.ids.values() for ids in table.values())
    axes = {e: torch.eye(lm.identity.hidden_size)[i] for i, e in enumerate(["happy", "sad"])}
    result = entanglement(lm, states(lm, 0), axes, GRID, tokens)
    assert result.pairs == 0 and result.p_value is None and result.by_emotion == {}
    assert result.languages["zh"].tokens == {"happy": [], "sad": []} and result.languages["ru"].unusable_words == 2
    check = semantic_check(load_policy().semantic_entanglement, result)
    assert not check.failed and "not measured" in check.detail
