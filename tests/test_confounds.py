"""The extraction against its confounds: the input-embedding baseline, the stories read again, emotion words,
and held-out texts in other registers and languages."""

from pathlib import Path

import numpy as np
import pytest
import torch

from emoaudit.analysis.confounds import better_variant, embedding_baseline, keyword_free, story_keywords
from emoaudit.capture.activations import Activations
from emoaudit.capture.reading import capture
from emoaudit.capture.stimuli import heldout_set_rows, reread_activations
from emoaudit.model.loaded import LoadedModel
from emoaudit.model.runtime import tokenize
from emoaudit.spec import DEFAULT_SPEC, load_spec

TINY_SPEC = Path(__file__).parent / "data" / "tiny-audit.toml"


def test_capture_pools_the_input_of_block_zero_as_transformers_hidden_states_zero(tiny_llama: LoadedModel) -> None:
    spec = load_spec(TINY_SPEC)
    texts = ["The kettle clicked off in the empty kitchen.", "Rain again."]
    ids = tokenize(tiny_llama, texts)
    captured = capture(tiny_llama, ids, spec.extraction.pooling)
    assert captured.embedding is not None
    for row, seq in enumerate(ids):
        out = tiny_llama.model(torch.tensor([seq]), output_hidden_states=True)
        expected = out.hidden_states[0][0, 1:].mean(dim=0)  # mean:1 pooling
        torch.testing.assert_close(captured.embedding[row], expected.float(), rtol=1e-5, atol=1e-5)
        # and it is not a block's output: the first block changes the stream
        assert not torch.allclose(captured.means[row, 0], captured.embedding[row])


def test_stories_read_again_are_read_as_plain_documents(tiny_llama: LoadedModel) -> None:
    spec = load_spec(TINY_SPEC)
    texts = ["She laughed all the way home.", "He kicked the door shut."]
    stories = Activations(
        "generation", ["happy", "angry"], texts, torch.zeros(2, 1, 1), torch.zeros(2, 1), "x", ["p", "q"]
    )
    reread = reread_activations(tiny_llama, spec, stories)
    direct = capture(tiny_llama, tokenize(tiny_llama, texts), spec.extraction.pooling)
    assert reread.labels == stories.labels and reread.prompts == ["p", "q"]
    torch.testing.assert_close(reread.values, direct.means)
    assert reread.embedding is not None and reread.values.shape[1] == tiny_llama.stream.n_layers


def test_activations_keep_their_embeddings_through_save_load_and_select(tmp_path: Path) -> None:
    acts = Activations(
        "heldout",
        ["a", "b", "c"],
        ["x", "y", "z"],
        torch.randn(3, 2, 4),
        torch.rand(3, 2),
        "mean",
        None,
        torch.randn(3, 4),
    )
    acts.save(tmp_path / "a.safetensors")
    loaded = Activations.load(tmp_path / "a.safetensors")
    assert loaded.embedding is not None and loaded.embedding.equal(acts.embedding)
    picked = loaded.select([2, 0])
    assert (
        picked.labels == ["c", "a"] and picked.embedding is not None and picked.embedding.equal(acts.embedding[[2, 0]])
    )


def test_emotion_words_come_from_the_forbidden_lists_and_the_lexicon() -> None:
    spec = load_spec(DEFAULT_SPEC)
    assert spec.emotions_named_in("I was so Scared, then furious.") == ["afraid", "angry"]
    assert spec.emotions_named_in("Her sadness lingered.") == ["sad"]
    assert spec.emotions_named_in("The bus was late.") == []
    assert spec.emotions_named_in("a hopeless case") == []  # whole words only


def test_story_keywords_count_own_and_any_emotion_words() -> None:
    spec = load_spec(TINY_SPEC)
    labels = ["happy", "happy", "sad", "sad", "neutral"]
    texts = ["She felt so happy.", "He was furious.", "Nothing happened.", "A sad day, full of sorrow.", "I am happy."]
    stories = Activations("generation", labels, texts, torch.zeros(5, 1, 1), torch.zeros(5, 1), "x")
    kw = story_keywords(stories, spec)
    assert kw.n_stories == 4  # the reference's stories are not an emotion's
    assert kw.own_emotion_share == 0.5 and kw.any_emotion_share == 0.75
    assert kw.per_emotion_own_share == {"happy": 0.5, "sad": 0.5}


def test_keyword_free_held_out_drops_texts_with_any_emotion_word() -> None:
    spec = load_spec(TINY_SPEC)
    texts = ["The sun came out.", "I was so angry.", "We laughed.", "Pure joy."]
    held = Activations(
        "heldout", ["happy", "angry", "happy", "happy"], texts, torch.zeros(4, 1, 1), torch.zeros(4, 1), "x"
    )
    assert keyword_free(held, spec).texts == ["The sun came out.", "We laughed."]


def test_the_variant_that_generalises_better_is_exported_and_ties_keep_the_written_one() -> None:
    assert better_variant({"writing": 0.36, "reread": 0.52}) == "reread"
    assert better_variant({"writing": 0.6, "reread": 0.5}) == "writing"
    assert better_variant({"writing": 0.5, "reread": 0.5}) == "writing"


def test_default_held_out_sets_cover_every_emotion_in_two_registers_and_four_languages() -> None:
    spec = load_spec(DEFAULT_SPEC)
    assert list(spec.heldout_sets) == ["messages", "dialogue", "es", "fr", "de", "zh"]
    for name, table in spec.heldout_sets.items():
        assert set(table) == set(spec.emotion_names), name
        assert all(len(texts) >= 4 for texts in table.values()), name
    # English held-out texts name no emotion, or they would test the words rather than the vectors
    for name in ("messages", "dialogue"):
        named = {t: spec.emotions_named_in(t) for texts in spec.heldout_sets[name].values() for t in texts}
        assert not {t: e for t, e in named.items() if e}
    # written apart: no text is a stimulus, a held-out sentence or a judge prototype
    used = {
        t for table in (spec.passages, spec.heldout, spec.judge_prototypes) for texts in table.values() for t in texts
    }
    sets, labels, texts = heldout_set_rows(spec)
    assert not used & set(texts) and len(sets) == len(labels) == len(texts) == 6 * 20 * 4
    zh = [t for s, t in zip(sets, texts, strict=True) if s == "zh"]
    assert all(any("\u4e00" <= ch <= "\u9fff" for ch in t) for t in zh)


def test_held_out_set_rows_list_every_text_with_its_set_and_label() -> None:
    spec = load_spec(TINY_SPEC)
    sets, labels, _ = heldout_set_rows(spec)
    assert set(labels) == set(spec.emotion_names) and set(sets) == {"messages", "zh"}
    assert len(labels) == 2 * len(spec.emotion_names) * 3


def test_embedding_baseline_sees_label_geometry_in_the_embeddings() -> None:
    spec = load_spec(TINY_SPEC)
    profile = spec.profile("tiny")
    rng = np.random.default_rng(0)
    labels = [lab for lab in spec.labels for _ in range(4)]
    n, hidden = len(labels), 8
    # embeddings that carry the label: the baseline must see it
    centres = {lab: rng.normal(size=hidden) * 3 for lab in spec.labels}
    emb = torch.tensor(np.stack([centres[lab] + rng.normal(size=hidden) for lab in labels]), dtype=torch.float32)
    acts = Activations("comprehension", labels, [""] * n, torch.zeros(n, 1, hidden), torch.ones(n, 1), "x", None, emb)
    base = embedding_baseline(acts, acts, spec, profile, 0, layer_value=1.0)
    assert base is not None and base.centroid_accuracy > 0.9 and base.heldout_accuracy > 0.9
    assert base.score > 0 and base.score_above == pytest.approx(1.0 - base.score)
    read_before = Activations("heldout", labels, [""] * n, torch.zeros(n, 1, hidden), torch.ones(n, 1), "x")
    assert embedding_baseline(acts, read_before, spec, profile, 0, layer_value=1.0) is None
