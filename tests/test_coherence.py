"""The coherence rule against a reader (docs/coherence.md): the labelled set, its fixed halves, and the
figures the documentation quotes, recomputed from the set."""

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


def test_the_set_is_large_labelled_and_split_by_its_seeded_hash() -> None:
    items = load()
    assert len(items) >= 138 and len({i.text for i in items}) == len(items)  # docs/coherence.md: 150+ is next
    assert {i.label for i in items} == {"coherent", "broken"}
    assert all(i.split == split_of(i.text) for i in items)  # never moved by hand
    halves = {h: sum(i.split == h for i in items) for h in ("dev", "test")}
    assert min(halves.values()) >= 60
    assert sum(i.source.split(": ")[1].startswith("surgical") for i in items) >= 13  # where the rule leaked


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
