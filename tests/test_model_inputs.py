"""Checkpoints the audit must read despite their oddities, and ones it must refuse in one line, before it
reads anything: tokenizers without usable special tokens, short contexts, one block, broken chat templates."""

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedTokenizerFast

from emoaudit.pipeline.preflight import check_lengths
from emoaudit.capture.reading import capture
from emoaudit.errors import EmoauditError
from emoaudit.model.generation import generate
from emoaudit.model.load import load_model
from emoaudit.model.loaded import LoadedModel
from emoaudit.model.runtime import chat_prompt_ids, generated_text, tokenize, truncated
from emoaudit.spec import load_spec
from emoaudit.steering.perplexity import continuation_nll
from tests.conftest import TINY_SIZES, run_cli, tiny_tokenizer
from tests.test_loading import assert_one_line_error

TEXTS = ["A short one.", "This sentence is a good deal longer than the first one, so the batch needs padding."]
LONG = "The sea was grey and the boat rocked slowly in the harbour. " * 6


def with_tokenizer(source: Path, target: Path, tokenizer: PreTrainedTokenizerFast) -> Path:
    """A copy of a checkpoint with another tokenizer."""
    shutil.copytree(source, target)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja"):
        (target / name).unlink(missing_ok=True)
    tokenizer.save_pretrained(target)
    return target


def bare_tokenizer(**special: str) -> PreTrainedTokenizerFast:
    """The tiny tokenizer's vocabulary with only the special tokens named."""
    return PreTrainedTokenizerFast(tokenizer_object=tiny_tokenizer().backend_tokenizer, **special)


def tiny_checkpoint(directory: Path, model_type: str = "llama", **config: object) -> Path:
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(AutoConfig.for_model(model_type, **{**TINY_SIZES, **config}))
    model.save_pretrained(directory)
    tiny_tokenizer().save_pretrained(directory)
    return directory


def reads_padded_as_alone(lm: LoadedModel) -> None:
    """Texts of different lengths read in one padded batch give what each gives alone, and generation runs."""
    ids = tokenize(lm, TEXTS)
    batched = capture(lm, ids).means
    alone = torch.cat([capture(lm, [seq]).means for seq in ids])
    torch.testing.assert_close(batched, alone, rtol=1e-4, atol=1e-4)
    written = generate(lm, [chat_prompt_ids(lm, t) for t in TEXTS], 4, seed=0, temperature=0.0, top_p=1.0)
    assert all(len(w) <= 4 for w in written)


@pytest.mark.parametrize(
    ("special", "expected"),
    [
        ({"bos_token": "<s>", "unk_token": "<unk>"}, 1),  # neither pad nor end-of-text: the start token
        ({}, 0),  # no special token at all
        ({"eos_token": "</s>"}, 2),
    ],
)
def test_a_tokenizer_without_pad_pads_with_a_token_that_has_an_embedding(
    tmp_path: Path, tiny_dir: Callable[[str], Path], special: dict[str, str], expected: int
) -> None:
    lm = load_model(str(with_tokenizer(tiny_dir("llama"), tmp_path / "m", bare_tokenizer(**special))), device="cpu")
    assert lm.tokenizer.pad_token_id is None and lm.pad_id == expected
    reads_padded_as_alone(lm)


def test_a_pad_added_without_resizing_is_not_used(tmp_path: Path, tiny_dir: Callable[[str], Path]) -> None:
    tokenizer = tiny_tokenizer()
    tokenizer.add_special_tokens({"pad_token": "[PAD]"})
    lm = load_model(str(with_tokenizer(tiny_dir("llama"), tmp_path / "m", tokenizer)), device="cpu")
    assert lm.tokenizer.pad_token_id == lm.embedding_rows  # one past the embedding matrix
    assert lm.pad_id == lm.tokenizer.eos_token_id
    reads_padded_as_alone(lm)


def test_a_token_without_an_embedding_row_is_refused_at_load(tmp_path: Path, tiny_dir: Callable[[str], Path]) -> None:
    tokenizer = tiny_tokenizer()
    tokenizer.add_special_tokens({"additional_special_tokens": ["<|user|>"]})
    tokenizer.chat_template = "<|user|>{{ messages[0]['content'] }}\n"
    path = with_tokenizer(tiny_dir("llama"), tmp_path / "m", tokenizer)
    with pytest.raises(EmoauditError, match=r"'<\|user\|>' \(id 384\), which has no row in the input embedding"):
        load_model(str(path), device="cpu")


@pytest.mark.parametrize(
    ("template", "error"),
    [
        ("{% if messages %}{{ messages[0]['content'] }", "TemplateSyntaxError"),
        ("{{ raise_exception('Only system and assistant roles are supported') }}", "TemplateError"),
        ("{{ messages[0]['content'] | no_such_filter }}", "TemplateAssertionError"),
    ],
)
def test_a_chat_template_that_cannot_render_is_refused_at_load(
    tmp_path: Path, tiny_dir: Callable[[str], Path], template: str, error: str
) -> None:
    tokenizer = tiny_tokenizer()
    tokenizer.chat_template = template
    path = with_tokenizer(tiny_dir("llama"), tmp_path / "m", tokenizer)
    with pytest.raises(EmoauditError, match=f"chat template of .* cannot render a user turn: {error}"):
        load_model(str(path), device="cpu")


def test_a_model_with_one_block_is_refused_at_load(tmp_path: Path) -> None:
    path = tiny_checkpoint(tmp_path / "one", num_hidden_layers=1)
    with pytest.raises(EmoauditError, match="has 1 decoder block; emoaudit needs at least 2"):
        load_model(str(path), device="cpu")


@pytest.fixture(scope="module")
def short_gpt2(tmp_path_factory: pytest.TempPathFactory) -> LoadedModel:
    """GPT-2 with 64 learned positions: an IndexError in the position embedding past them."""
    # GPT-2 names max_position_embeddings n_positions; the config maps one onto the other.
    path = tiny_checkpoint(tmp_path_factory.mktemp("gpt2-64"), "gpt2", num_hidden_layers=2, max_position_embeddings=64)
    return load_model(str(path), device="cpu", dtype="float32")


def test_read_texts_are_cut_to_the_context_and_counted(short_gpt2: LoadedModel) -> None:
    lm = short_gpt2
    assert lm.context_length == 64
    ids = tokenize(lm, [LONG, TEXTS[0]])
    assert len(lm.tokenizer(LONG)["input_ids"]) > 64 and [len(s) for s in ids][0] == 64
    assert truncated(lm, [LONG, TEXTS[0], LONG]) == 2
    assert capture(lm, ids).means.shape == (2, 2, 32)


def test_generation_past_the_context_is_refused_before_it_runs(short_gpt2: LoadedModel) -> None:
    lm = short_gpt2
    prompt = chat_prompt_ids(lm, "The sea was grey.")
    assert len(generate(lm, [prompt], 64 - len(prompt), seed=0, temperature=0.0, top_p=1.0)[0]) <= 64 - len(prompt)
    with pytest.raises(EmoauditError, match="holds 64 positions; a prompt of .* tokens and .* new ones do not fit"):
        generate(lm, [prompt], 65 - len(prompt), seed=0, temperature=0.0, top_p=1.0)
    spec = load_spec()
    with pytest.raises(EmoauditError, match="holds 64 positions"):
        check_lengths(lm, spec, spec.profile("quick"))


def test_perplexity_scores_what_fits_the_context(short_gpt2: LoadedModel) -> None:
    lm = short_gpt2
    prompt = chat_prompt_ids(lm, "The sea")
    continuation = lm.tokenizer(LONG, add_special_tokens=False)["input_ids"]
    [nll] = continuation_nll(lm, [prompt], [continuation])
    fits = continuation[: 64 - len(prompt)]
    with torch.inference_mode():
        lp = torch.log_softmax(lm.model(input_ids=torch.tensor([prompt + fits])).logits[0].double(), -1)
    direct = -np.mean([lp[len(prompt) - 1 + i, t].item() for i, t in enumerate(fits)])
    assert nll == pytest.approx(direct, rel=1e-4)


def test_a_character_cut_by_the_token_limit_is_dropped(tiny_llama: LoadedModel) -> None:
    lm = tiny_llama
    text = "a\ufffdb café ☕"  # a U+FFFD of the model's own inside, multi-byte characters at the end
    ids = lm.tokenizer(text, add_special_tokens=False)["input_ids"]
    assert lm.tokenizer.decode(ids) == text
    cut = [k for k in range(1, len(ids)) if lm.tokenizer.decode(ids[:k]).endswith("\ufffd")]
    assert len(cut) >= 2  # the byte-level vocabulary splits ☕ (3 bytes) and é over several tokens
    for k in cut:  # the U+FFFD that stands for the cut bytes goes, and nothing else
        assert generated_text(lm, ids[:k]) == lm.tokenizer.decode(ids[:k])[:-1]
    assert generated_text(lm, ids) == text
    assert "\ufffd" in generated_text(lm, ids[: len(ids) - 1])  # the one inside stays


def assert_nothing_read(out: Path) -> None:
    assert not (out / "activations").exists() and not (out / "run.json").exists()


@pytest.mark.parametrize("case", ["one block", "broken template", "64 positions"])
def test_unauditable_checkpoints_end_in_one_line_before_anything_is_read(
    tmp_path: Path, tiny_dir: Callable[[str], Path], case: str
) -> None:
    if case == "one block":
        path, fragment = tiny_checkpoint(tmp_path / "m", num_hidden_layers=1), "needs at least 2"
    elif case == "broken template":
        tokenizer = tiny_tokenizer()
        tokenizer.chat_template = "{% for m in messages %}{{ m['content'] }"
        path, fragment = with_tokenizer(tiny_dir("llama"), tmp_path / "m", tokenizer), "cannot render"
    else:
        config = dict(num_hidden_layers=2, max_position_embeddings=64)
        path, fragment = tiny_checkpoint(tmp_path / "m", "gpt2", **config), "holds 64 positions"
    out = tmp_path / "out"
    assert_one_line_error(run_cli("scan", str(path), "--out", str(out), "--profile", "quick"), fragment)
    assert_nothing_read(out)
