from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from emoaudit.errors import EmoauditError
from emoaudit.model.architectures import check_supported, residual_stream
from emoaudit.model.hooks import block_output
from emoaudit.model.load import load_model
from emoaudit.model.loaded import LoadedModel
from emoaudit.model.logits import lens_logits
from tests.conftest import TINY_FAMILIES, TINY_SIZES


@pytest.mark.parametrize("model_type", sorted(TINY_FAMILIES))
def test_every_family_exposes_blocks_norm_and_unembedding(tiny_dir: Callable[[str], Path], model_type: str) -> None:
    lm = load_model(str(tiny_dir(model_type)), device="cpu", dtype="float32")
    stream = lm.stream
    assert stream.n_layers == lm.identity.n_layers == 3
    assert lm.identity.hidden_size == TINY_SIZES["hidden_size"]
    # Running the body through the blocks reproduces the model's own logits via final norm + unembedding.
    ids = lm.tokenizer("The sea was grey.", return_tensors="pt")["input_ids"]
    captured: list[torch.Tensor] = []
    handle = stream.blocks[-1].register_forward_hook(lambda m, i, o: captured.append(block_output(o)))
    with torch.no_grad():
        logits = lm.model(input_ids=ids).logits
    handle.remove()
    torch.testing.assert_close(lens_logits(lm, captured[0][0]), logits[0], rtol=1e-4, atol=1e-4)


def test_block_output_accepts_tensors_and_tuples() -> None:
    x = torch.randn(2, 3, 4)
    assert block_output(x) is x
    assert block_output((x, None)) is x


def test_unknown_architecture_names_the_model_type() -> None:
    with pytest.raises(EmoauditError, match="'bert'"):
        check_supported("bert")


@pytest.mark.real
def test_real_smollm2_residual_stream(smollm2: LoadedModel) -> None:
    stream = residual_stream(smollm2.model)
    assert stream.n_layers == 30 and smollm2.identity.hidden_size == 576
    assert stream.unembed.weight.shape[0] == len(smollm2.tokenizer)


@pytest.mark.real
@pytest.mark.parametrize(
    ("alias", "model_type", "n_layers"), [("gemma3-270m", "gemma3_text", 18), ("qwen2.5-coder-0.5b", "qwen2", 24)]
)
def test_real_gemma_and_qwen_load_and_generate(alias: str, model_type: str, n_layers: int) -> None:
    lm = load_model(alias, device="cpu")
    assert lm.identity.model_type == model_type and lm.stream.n_layers == n_layers
    ids = lm.tokenizer("The capital of France is", return_tensors="pt")
    out = lm.model.generate(**ids, max_new_tokens=12, do_sample=False)
    text = lm.tokenizer.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)
    assert len([w for w in text.split() if w.isalpha()]) >= 3, text
    # A trained model, not noise: it finds an English sentence far likelier than the same words shuffled.
    sentence = "The children walked to school in the morning and played football after lunch."
    shuffled = "football The after school in and children lunch walked the morning to played."
    nll = {}
    for name, s in (("sentence", sentence), ("shuffled", shuffled)):
        enc = lm.tokenizer(s, return_tensors="pt")
        with torch.no_grad():
            nll[name] = lm.model(**enc, labels=enc["input_ids"]).loss.item()
    assert nll["sentence"] + 1.0 < nll["shuffled"], nll
