import dataclasses
from pathlib import Path

import numpy as np
import pytest
from transformers import BertConfig, BertForSequenceClassification

from emoaudit.errors import EmoauditError
from emoaudit.spec import load_spec
from emoaudit.steering.judge import FixedJudge, Judge, predict, validate
from emoaudit.steering.judge_models import ClassifierJudge, check_judge, load_judge
from emoaudit.steering.noise import Variant, noise_floor
from emoaudit.steering.trials import Trial, score_trials
from tests.conftest import THRESHOLDS, run_cli, tiny_tokenizer

SPEC = load_spec()
TINY_SPEC_PATH = Path(__file__).parent / "data" / "tiny-audit.toml"
TINY = load_spec(TINY_SPEC_PATH)
# The labels of a popular English emotion classifier (j-hartmann/emotion-english-distilroberta-base).
SEVEN = ["anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise"]


@pytest.fixture(scope="module")
def judge():
    return load_judge("minilm-l6-v2", SPEC.emotion_names, SPEC.reference, SPEC.judge_prototypes)


def tiny_classifier(directory: Path, labels: list[str], positions: int = 256) -> Path:
    """A random BERT text classifier with these labels, saved as safetensors with a tokenizer."""
    config = BertConfig(
        vocab_size=384,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=positions,
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
    )
    BertForSequenceClassification(config).save_pretrained(directory)
    tiny_tokenizer().save_pretrained(directory)
    assert (directory / "model.safetensors").is_file()
    return directory


@pytest.mark.real
def test_judge_ranks_clearly_emotional_sentences(judge) -> None:
    cases = {
        "happy": "What a wonderful day, everything went right and I could not stop smiling!",
        "angry": "How dare they lie to my face like that, I am absolutely furious with them.",
        "afraid": "Something is moving in the dark hallway and I am terrified it will find me.",
        "grateful": "Thank you so much for everything you did for me, I will never forget it.",
        "neutral": "The meeting has been moved to room four on the second floor.",
    }
    assert isinstance(judge, Judge) and judge.labels == SPEC.labels
    predicted = predict(judge, list(cases.values()))
    assert predicted == list(cases)
    scores = judge.scores([cases["happy"], cases["angry"]])
    happy = SPEC.labels.index("happy")
    assert scores[0, happy] > scores[1, happy]


@pytest.mark.real
def test_judge_is_validated_on_heldout_sentences_it_never_saw(judge) -> None:
    prototypes = {t for texts in SPEC.judge_prototypes.values() for t in texts}
    assert not prototypes & {t for texts in SPEC.heldout.values() for t in texts}
    result = validate(judge, SPEC.heldout)
    assert result.n == sum(len(v) for v in SPEC.heldout.values())
    # 21-way, chance is under 5%: the judge must be far better than chance to mean anything.
    assert result.accuracy > 0.3 and result.top3 > result.accuracy
    assert np.isfinite(list(result.per_label.values())).all()


@pytest.mark.real
def test_judge_scores_do_not_depend_on_batching_or_order(judge) -> None:
    """Texts are scored in length-sorted batches: each row must still be that text's own score."""
    texts = [t for label in ("happy", "angry", "neutral") for t in SPEC.heldout[label]][:40]
    texts = [texts[0] * 3, *texts[1:]]  # one long text among short ones
    batched = judge.scores(texts)
    one_by_one = np.concatenate([judge.scores([t]) for t in texts])
    np.testing.assert_allclose(batched, one_by_one, atol=1e-5)
    np.testing.assert_allclose(judge.scores(texts[::-1]), batched[::-1], atol=1e-5)


def keyword_judge() -> FixedJudge:
    return FixedJudge({e.name: e.forbidden for e in TINY.emotions} | {TINY.reference: ()})


def test_fixed_judge_scores_the_share_of_keywords() -> None:
    judge = keyword_judge()
    assert isinstance(judge, Judge) and judge.labels == TINY.labels
    scores = judge.scores(["I was angry, so ANGRY at them", "The street was quiet.", "", "Sadly, calmly."])
    angry, sad, calm = (TINY.labels.index(e) for e in ("angry", "sad", "calm"))
    np.testing.assert_allclose(scores[0], np.eye(len(TINY.labels))[angry] * 2 / 7)
    assert not scores[1].any() and not scores[2].any()
    assert scores[3, sad] == scores[3, calm] == 0.5
    assert predict(judge, ["anger and more anger", "a sad day"]) == ["angry", "sad"]


def test_fixed_judge_tells_a_target_effect_from_none() -> None:
    """Scored as the steering stage scores trials: a text that names the target gains, one that does not, does not."""
    judge = keyword_judge()
    thresholds = dataclasses.replace(THRESHOLDS, top_k=1)
    texts = {
        None: "I walked down the street to buy bread and milk for the week.",
        "angry": "I walked down the street, angry at the price of bread, angrily paying for the week.",
        "calm": "I walked down the street to buy some bread and fresh milk for the coming week.",
    }
    trials = [Trial("s", "neutral", "p", e, 0.0 if e is None else 1.0, None, t, 0, 1.0) for e, t in texts.items()]
    scores = judge.scores([t.text for t in trials])
    emotions = [label for label in judge.labels if label != "neutral"]
    score_trials(trials, scores, judge.labels, emotions, thresholds, lambda text: text.split())
    steered, unaffected = trials[1], trials[2]
    assert steered.judge_gain == pytest.approx(2 / 16, abs=1e-4) and steered.regime == "surgical"
    assert steered.target_rank == 0
    assert unaffected.judge_gain == 0 and unaffected.regime == "no_effect"


def test_validation_works_on_any_judge() -> None:
    judge = keyword_judge()
    labelled = {"angry": ["so angry today", "anger again"], "sad": ["sadly so", "angry not sad, angry"], "other": ["x"]}
    result = validate(judge, labelled)
    assert result.n == 4 and result.per_label == {"sad": 0.5, "angry": 1.0}
    assert result.accuracy == 0.75 and result.top3 == 1.0
    assert result.confusion == {"sad": {"sad": 1, "angry": 1}, "angry": {"angry": 2}}


def test_validation_states_its_accuracy_with_a_wilson_interval_and_a_confusion_matrix() -> None:
    """Known answers: 12 sentences per emotion, each naming its emotion, but calm's: 9 name sad and 3 name
    nothing (a tie at 0, where the first label, happy, comes first)."""
    judge = keyword_judge()
    words = {e.name: e.forbidden[0] for e in TINY.emotions}
    labelled = {e: [f"so {w} today"] * 12 for e, w in words.items() if e != "calm"}
    labelled["calm"] = [f"so {words['sad']} today"] * 9 + ["nothing at all"] * 3
    result = validate(judge, labelled)
    assert result.n == 48 and result.accuracy == 36 / 48 and result.per_label["calm"] == 0
    assert result.confusion["calm"] == {"sad": 9, "happy": 3} and result.confusion["sad"] == {"sad": 12}
    assert sum(sum(row.values()) for row in result.confusion.values()) == result.n

    def wilson(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
        p, shrink = k / n, 1 + z * z / n
        half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / shrink
        return (p + z * z / (2 * n)) / shrink - half, (p + z * z / (2 * n)) / shrink + half

    assert (result.ci_low, result.ci_high) == pytest.approx(wilson(36, 48))
    assert (result.ci_low, result.ci_high) == pytest.approx((0.6122, 0.8508), abs=1e-4)
    # Ties keep the label order, so calm (second) is among the top 3 of every sentence that names one other emotion.
    assert result.per_label_top3["calm"] == 1 and result.top3 == 1
    assert (result.top3_ci_low, result.top3_ci_high) == pytest.approx(wilson(48, 48))


def test_the_default_judge_needs_prototypes_of_every_emotion() -> None:
    check_judge("minilm-l6-v2", SPEC.emotion_names, SPEC.judge_prototypes)
    without = {label: texts for label, texts in SPEC.judge_prototypes.items() if label not in ("calm", "neutral")}
    with pytest.raises(EmoauditError, match=r"'minilm-l6-v2' has no label for calm \("):
        check_judge("minilm-l6-v2", SPEC.emotion_names, without)  # the reference may go without


def test_a_classifier_without_the_audited_emotions_is_refused_from_its_config(tmp_path: Path) -> None:
    seven = tiny_classifier(tmp_path / "seven", SEVEN)
    (seven / "model.safetensors").unlink()  # the labels are read from the config alone
    with pytest.raises(EmoauditError, match=r"has no label for happy, calm, sad, angry \(its labels: anger,"):
        check_judge(str(seven), TINY.emotion_names, TINY.judge_prototypes)
    partial = tiny_classifier(tmp_path / "partial", ["Happy", "SAD", "neutral"])
    with pytest.raises(EmoauditError, match=r"has no label for calm, angry \("):
        load_judge(str(partial), TINY.emotion_names, TINY.reference, TINY.judge_prototypes)
    with pytest.raises(EmoauditError, match="cannot load judge"):
        check_judge(str(tmp_path / "nowhere"), TINY.emotion_names, TINY.judge_prototypes)


def test_a_classifier_covering_the_emotions_scores_them_and_the_reference_where_it_can(tmp_path: Path) -> None:
    texts = ["The sea was grey.", "She laughed out loud at the letter, twice." * 3, "Mix the flour."]
    for labels, judged in (
        (["surprise", "Angry", "sad", "neutral", "calm", "happy"], TINY.labels),
        (["angry", "sad", "calm", "happy"], TINY.emotion_names),  # no reference: scored without it
    ):
        directory = tiny_classifier(tmp_path / str(len(labels)), labels)
        check_judge(str(directory), TINY.emotion_names, TINY.judge_prototypes)
        judge = load_judge(str(directory), TINY.emotion_names, TINY.reference, TINY.judge_prototypes)
        assert isinstance(judge, ClassifierJudge) and judge.labels == judged
        scores = judge.scores(texts)
        assert scores.shape == (3, len(judged)) and np.isfinite(scores).all()
        assert (scores > 0).all() and (scores.sum(axis=1) <= 1 + 1e-6).all()
        np.testing.assert_allclose(scores, np.concatenate([judge.scores([t]) for t in texts]), atol=1e-6)
        assert validate(judge, TINY.heldout).n == sum(len(TINY.heldout[label]) for label in judged)


def test_a_classifier_with_few_positions_reads_long_texts_truncated_to_them(tmp_path: Path) -> None:
    directory = tiny_classifier(tmp_path / "short", ["angry", "sad", "calm", "happy"], positions=64)
    judge = load_judge(str(directory), TINY.emotion_names, TINY.reference, TINY.judge_prototypes)
    assert isinstance(judge, ClassifierJudge) and judge.max_tokens == 64
    scores = judge.scores(["The harbour was quiet and the boats came back early. " * 40])
    assert scores.shape == (1, 4) and np.isfinite(scores).all()


def test_scan_refuses_an_uncovering_judge_before_loading_the_model(tmp_path: Path) -> None:
    seven = tiny_classifier(tmp_path / "seven", SEVEN)
    out = tmp_path / "out"
    # No such model: were the model loaded first, this would be the error.
    proc = run_cli("scan", str(tmp_path / "no-such-model"), "--judge", str(seven), "--out", str(out))
    assert proc.returncode == 2 and proc.stdout == "", proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert f"has no label for {', '.join(SPEC.emotion_names)} (its labels: {', '.join(SEVEN)})" in proc.stderr
    assert not out.exists()


def test_the_noise_floor_is_the_spread_of_unsteered_score_changes() -> None:
    labels = ["happy", "sad"]
    base = {"a": {"happy": 0.5, "sad": 0.1}, "b": {"happy": 0.2, "sad": 0.2}}
    variants = [
        Variant("a", "sampled", "p", "t", {"happy": 0.53, "sad": 0.1}),  # +0.03, 0
        Variant("a", "paraphrase", "q", "t", {"happy": 0.5, "sad": 0.0}),  # 0, -0.1
        Variant("b", "sampled", "p", "t", {"happy": 0.21, "sad": 0.25}),  # +0.01, +0.05
    ]
    floor = noise_floor(variants, base, labels, 0.02, "noise.jsonl")
    assert floor.comparisons == {"sampled": 2, "paraphrase": 1} and floor.quantile == 0.95
    assert floor.per_label["happy"] == pytest.approx(np.quantile([0.03, 0, 0.01], 0.95))
    assert floor.per_label["sad"] == pytest.approx(np.quantile([0, 0.1, 0.05], 0.95))
    assert floor.overall == pytest.approx(np.quantile([0.03, 0, 0.01, 0, 0.1, 0.05], 0.95))
    assert floor.by_source["paraphrase"] == pytest.approx(np.quantile([0, 0.1], 0.95))
    assert floor.margin_rate == pytest.approx(2 / 6)  # +0.03 and +0.05 reach the margin; the fall does not
    with pytest.raises(ValueError, match="judged"):
        noise_floor([Variant("a", "sampled", "p", "t")], base, labels, 0.02, "noise.jsonl")
