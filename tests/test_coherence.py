"""The coherence rule against a reader (docs/coherence.md): the labelled set, its fixed halves, and the
figures the documentation quotes, recomputed from the set."""

from dataclasses import replace
from pathlib import Path

from bench.coherence import Labelled, coherent, load, score, split_of
from emoaudit.spec import load_spec
from emoaudit.steering.fluency import fluency, words
from emoaudit.steering.regimes import TextShape, classify, distinct_n, repeat_share

DOC = Path(__file__).resolve().parent.parent / "docs" / "coherence.md"
# Broken text the rule before steering/fluency.py called surgical (issue 28), as a reader sees it.
BROKEN = [
    "The morning is a merry-gross merry! The whole town is in the merry",
    "a small piece of my mother, where I was left, a small piece of my mother, where I was left",
    "the dull, grey horizon was a dull, grey horizon",
    'a "furious" of winds that were "furious" and "furious"',
]
# The same loops as the standard scan the issue read wrote them (/work/runs/base-std, smollm2-135m at 2fc78e0),
# whole, with the measures it recorded: (text, regime it gave, tokens, distinct-2, repeat share, perplexity ratio).
SCANNED = [
    (
        "The amazing (gross!) weather (gross!) at the top of the (gross!) merry-gross! The whole town (gross!) got "
        "the whole (gross!)",
        "no_effect, x2.0, happy",
        40,
        0.6666666666666666,
        0.0,
        3.7497590276588624,
    ),
    (
        "My loving memory, I was still a small little piece of my mother, where I was left to take a small piece of "
        "my mother, where I was left to take a small piece of my mother",
        "surgical, x4.0, sad",
        40,
        0.5384615384615384,
        0.0,
        7.536487028927058,
    ),
    (
        'The weather today was described as a "furious" by the team, with a "furious" of winds that were "furious" '
        'and "furious" were "furious" and',
        "surgical, x0.5, angry",
        40,
        0.6153846153846154,
        0.0,
        1.1391749077381068,
    ),
    (
        "A dull, grey horizon stretched out in the greyness of the overall of the world. The grey of the world was a "
        "dull, grey horizon, with the grey of the grey of the grey of",
        "surgical, x2.0, gloomy",
        40,
        0.6410256410256411,
        0.225,
        4.367781234609901,
    ),
]


def test_the_set_is_large_labelled_and_split_by_its_seeded_hash() -> None:
    items = load()
    assert len(items) >= 150 and len({i.text for i in items}) == len(items)  # the issue asks for 150+
    assert {i.label for i in items} == {"coherent", "broken"}
    assert all(i.split == split_of(i.text) for i in items)  # never moved by hand
    halves = {h: sum(i.split == h for i in items) for h in ("dev", "test")}
    assert min(halves.values()) >= 60
    assert sum(i.source.split(": ")[1].startswith("surgical") for i in items) >= 50  # where the rule leaked
    assert {i.source.split(": ")[0] for i in items} >= {"behaviour-quick2", "firsthour-quick", "base-std"}


def test_the_documented_figures_are_those_of_the_untouched_half() -> None:
    t = load_spec().steering.thresholds
    s = score([i for i in load() if i.split == "test"], t)
    documented = DOC.read_text(encoding="utf-8")
    p, r = s.precision, s.recall
    line = (
        f"precision {p[0]:.2f} [{p[1]:.2f}, {p[2]:.2f}] ({s.true_coherent}/{s.called_coherent}), "
        f"recall {r[0]:.2f} [{r[1]:.2f}, {r[2]:.2f}] ({s.true_coherent}/{s.labelled_coherent})"
    )
    assert line in documented, line


def test_the_issues_broken_sentences_are_not_surgical() -> None:
    t = load_spec().steering.thresholds
    for text in BROKEN:
        tokens = words(text)
        shape = TextShape(len(tokens), distinct_n(tokens), repeat_share(tokens))
        assert classify(shape, 1.0, True, t, fluency(text)) == "repetitive_collapse", text
        assert not coherent(
            Labelled(text, "issue: surgical", "broken", "test", len(tokens), shape.distinct2, shape.repeat_share, 1.0),
            t,
        )


def test_the_scans_own_loops_were_coherent_before_and_are_not_now() -> None:
    t = load_spec().steering.thresholds
    before = replace(t, echo_share_max=None, word_repeats_max=None)
    for text, source, tokens, distinct2, share, ratio in SCANNED:
        item = Labelled(text, f"base-std: {source}", "broken", split_of(text), tokens, distinct2, share, ratio)
        assert coherent(item, before), text  # the scan let it through: the test is of the new measures
        assert not coherent(item, t), text


def test_plain_prose_stays_coherent() -> None:
    t = load_spec().steering.thresholds
    text = (
        "She walked into the kitchen and poured a cup of tea. The rain had stopped, and the garden smelled of wet "
        "earth. She smiled at the thought of the long day ahead, and of the letter waiting on the table."
    )
    tokens = words(text)
    shape = TextShape(len(tokens), distinct_n(tokens), repeat_share(tokens))
    assert classify(shape, 1.0, True, t, fluency(text)) == "surgical"
    assert fluency(text).echo_share == 0 and fluency(text).word_repeats == 0
