import numpy as np
import pytest

from emoaudit.steering.judge import load_judge, validate
from emoaudit.spec import load_spec

SPEC = load_spec()


@pytest.fixture(scope="module")
def judge():
    return load_judge("minilm-l6-v2", SPEC.labels, SPEC.judge_prototypes)


@pytest.mark.real
def test_judge_ranks_clearly_emotional_sentences(judge) -> None:
    cases = {
        "happy": "What a wonderful day, everything went right and I could not stop smiling!",
        "angry": "How dare they lie to my face like that, I am absolutely furious with them.",
        "afraid": "Something is moving in the dark hallway and I am terrified it will find me.",
        "grateful": "Thank you so much for everything you did for me, I will never forget it.",
        "neutral": "The meeting has been moved to room four on the second floor.",
    }
    predicted = judge.predict(list(cases.values()))
    assert predicted == list(cases)
    scores = judge.scores([cases["happy"], cases["sad" if "sad" in cases else "angry"]])
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
