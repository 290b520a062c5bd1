from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from emoaudit.model.runtime import chat_prompt_ids
from emoaudit.model.load import load_model
from emoaudit.model.loaded import LoadedModel
from emoaudit.steering.regimes import classify, distinct_n, repeat_share, shape
from emoaudit.model.hooks import add_to_blocks
from emoaudit.steering.calibration import calibrate, next_token_kl
from emoaudit.steering.perplexity import continuation_nll
from emoaudit.vectors import unit_deltas
from tests.conftest import THRESHOLDS, TINY_FAMILIES


def logits(lm: LoadedModel, text: str) -> torch.Tensor:
    ids = lm.tokenizer(text, return_tensors="pt")
    with torch.inference_mode():
        return lm.model(**ids).logits


def test_hook_is_removed_cleanly_and_zero_changes_nothing(tiny_llama: LoadedModel) -> None:
    lm = tiny_llama
    before = logits(lm, "The sea was grey.")
    hooks_before = [dict(block._forward_hooks) for block in lm.stream.blocks]  # transformers keeps its own
    direction = torch.randn(lm.identity.hidden_size)
    with add_to_blocks(lm.stream, [1], unit_deltas(direction[None], [0.0], 10.0)[0]):
        torch.testing.assert_close(logits(lm, "The sea was grey."), before)
    with add_to_blocks(lm.stream, [1], unit_deltas(direction[None], [2.0], 10.0)[0]):
        assert not torch.allclose(logits(lm, "The sea was grey."), before)
    torch.testing.assert_close(logits(lm, "The sea was grey."), before)
    with pytest.raises(RuntimeError), add_to_blocks(lm.stream, [0, 2], direction):
        raise RuntimeError("a failure inside the block still removes the hooks")
    torch.testing.assert_close(logits(lm, "The sea was grey."), before)
    assert [dict(block._forward_hooks) for block in lm.stream.blocks] == hooks_before


def test_per_row_deltas_steer_only_their_row(tiny_llama: LoadedModel) -> None:
    lm = tiny_llama
    ids = lm.tokenizer(["The sea was grey.", "The sea was grey."], return_tensors="pt")
    direction = torch.randn(lm.identity.hidden_size)
    deltas = unit_deltas(torch.stack([direction, direction]), [0.0, 3.0], 10.0)
    with torch.inference_mode(), add_to_blocks(lm.stream, [1], deltas):
        out = lm.model(**ids).logits
    torch.testing.assert_close(out[0], logits(lm, "The sea was grey.")[0])
    assert not torch.allclose(out[1], out[0])


def test_deltas_have_the_requested_norm() -> None:
    deltas = unit_deltas(torch.randn(3, 16), [0.5, 1.0, -2.0], 40.0)
    torch.testing.assert_close(deltas.norm(dim=-1), torch.tensor([20.0, 40.0, 80.0]))


def test_kl_grows_with_strength_and_calibration_lands_between_probes(tiny_llama: LoadedModel) -> None:
    lm = tiny_llama
    prompts = [chat_prompt_ids(lm, p) for p in ["The sea", "A letter arrived"]]
    direction = torch.randn(1, lm.identity.hidden_size)
    kls = [
        next_token_kl(lm, prompts, 1, unit_deltas(direction.repeat(2, 1), [s, s], 1.0)).mean() for s in (0.0, 1.0, 4.0)
    ]
    assert kls[0] == pytest.approx(0.0, abs=1e-6) and kls[0] < kls[1] < kls[2]
    result = calibrate(lm, prompts, 1, direction, 1.0, target_kl=float(kls[1]), probe_strengths=[0.25, 1.0, 4.0])
    assert 0.25 <= result.unit_strength <= 4.0


@pytest.mark.parametrize("model_type", sorted(TINY_FAMILIES))
def test_continuation_nll_matches_a_direct_computation(tiny_dir: Callable[[str], Path], model_type: str) -> None:
    lm = load_model(str(tiny_dir(model_type)), device="cpu", dtype="float32")
    tok = lm.tokenizer
    prompts = [tok("The sea was", add_special_tokens=True)["input_ids"], tok("She opened the letter")["input_ids"]]
    long = " and then the train leaves at nine from platform four, and he slammed the door so hard"  # > a window
    endings = [" grey and cold.", "", " ok", " read it twice, and laughed out loud.", long]
    rows = [(p, tok(e, add_special_tokens=False)["input_ids"]) for e in endings for p in prompts]
    # max_batch 3: the shared prompt states serve several batches of uneven continuations
    nll = continuation_nll(lm, [p for p, _ in rows], [c for _, c in rows], max_batch=3)
    for (prompt, cont), value in zip(rows, nll, strict=True):
        if not cont:
            assert value is None
            continue
        with torch.inference_mode():
            lp = torch.log_softmax(lm.model(input_ids=torch.tensor([prompt + cont])).logits[0].double(), -1)
        direct = -np.mean([lp[len(prompt) - 1 + i, t].item() for i, t in enumerate(cont)])
        assert value == pytest.approx(direct, rel=1e-4, abs=1e-5), (prompt, cont)


def words(text: str) -> list[str]:
    return text.split()


def test_regimes_classify_hand_made_texts() -> None:
    normal = words("The harbour was quiet this morning, and the fishing boats came back early with a small catch.")
    looping = words("I am so so happy happy happy happy happy happy happy happy happy happy happy happy today")
    phrase = words("and then we went home " * 6)
    noise = words("zq7 xx#9 ;;lp qqv 0x1f brr kk@ ww pl& 88z aa1 mm# 3rr")
    assert classify(shape(normal), 1.3, True, THRESHOLDS) == "surgical"
    assert classify(shape(normal), 1.3, False, THRESHOLDS) == "no_effect"
    assert classify(shape(looping), 0.5, True, THRESHOLDS) == "repetitive_collapse"
    assert classify(shape(phrase), 0.4, False, THRESHOLDS) == "repetitive_collapse"
    assert classify(shape(noise), 40.0, True, THRESHOLDS) == "explosive"


def test_repetition_measures() -> None:
    assert distinct_n(list("abcdef")) == 1.0
    assert distinct_n(list("abababab")) == pytest.approx(2 / 7)
    assert repeat_share(list("xyzabababq")) == pytest.approx(6 / 10)
    assert repeat_share(list("abcdefgh")) == 0.0
