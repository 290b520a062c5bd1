"""Every supported family: the logits emoaudit computes itself equal the model's own forward."""

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from emoaudit.leakage.lens import last_prompt_states
from emoaudit.model.load import load_model
from emoaudit.model.logits import final_logits, lens_logits
from emoaudit.model.runtime import pad_batch, run_body
from tests.conftest import TINY_FAMILIES

TEXTS = ["The sea was grey", "She opened the letter, read it twice, and laughed out loud.", "Preheat the oven"]


@pytest.mark.parametrize("model_type", sorted(TINY_FAMILIES))
def test_final_and_lens_logits_equal_the_models_own(tiny_dir: Callable[[str], Path], model_type: str) -> None:
    lm = load_model(str(tiny_dir(model_type)), device="cpu", dtype="float32")
    prompts = [lm.tokenizer(t)["input_ids"] for t in TEXTS]
    with torch.inference_mode():  # each prompt alone, unpadded: the reference
        own = torch.stack([lm.model(input_ids=torch.tensor([p])).logits[0, -1] for p in prompts]).float()
    # One left-padded batch, as calibration reads the next token after each prompt.
    ids, mask = pad_batch(prompts, lm.pad_id, "left")
    with torch.inference_mode():
        ours = final_logits(lm, run_body(lm, ids, mask)[:, -1])
    torch.testing.assert_close(ours, own, rtol=1e-4, atol=1e-5)
    # The logit lens of the last block's output is the model's own head.
    last_block = last_prompt_states(lm, prompts, lm.stream.n_layers - 1)
    torch.testing.assert_close(lens_logits(lm, last_block), own, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(("model_type", "setting"), [("granite", "logits_scaling"), ("gemma2", "softcapping")])
def test_the_final_transforms_are_not_the_identity(
    tiny_dir: Callable[[str], Path], model_type: str, setting: str
) -> None:
    """Without its final transform a family's logits differ: the test above can fail."""
    lm = load_model(str(tiny_dir(model_type)), device="cpu", dtype="float32")
    ids = torch.tensor([lm.tokenizer(TEXTS[1])["input_ids"]])
    with torch.inference_mode():
        own = lm.model(input_ids=ids).logits[0, -1]
        bare = lm.stream.unembed(run_body(lm, ids, torch.ones_like(ids))[0, -1])
    assert (own - bare).abs().max() > 0.05, setting
