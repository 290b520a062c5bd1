import pytest
import torch

from emoaudit.leakage.assess import annotate
from emoaudit.leakage.lens import read_lens
from emoaudit.leakage.scripts import (
    detect_language,
    foreign_share,
    foreign_spans,
    script_of,
    script_shares,
    token_script,
)
from emoaudit.model.logits import lens_logits
from emoaudit.model.loaded import LoadedModel
from emoaudit.spec import load_spec


def test_scripts_of_mixed_hand_made_strings() -> None:
    assert [script_of(c) for c in "aé中ひカ한жع1 ."] == [
        "Latin",
        "Latin",
        "Han",
        "Hiragana",
        "Katakana",
        "Hangul",
        "Cyrillic",
        "Arabic",
        None,
        None,
        None,
    ]
    text = "I feel so 开心 today, really 非常好！ and пока"
    shares = script_shares(text)
    assert shares["Han"] == pytest.approx(5 / 30) and shares["Cyrillic"] == pytest.approx(4 / 30)
    assert foreign_share(text) == pytest.approx(9 / 30)  # 21 Latin letters, 5 Han, 4 Cyrillic
    assert foreign_share("Plain English, with digits 123 and emoji 🎉.") == 0.0
    assert foreign_share("1234 !!!") == 0.0
    spans = foreign_spans(text, context=3)
    assert spans == ["so 开心 to", "ly 非常好！ a", "nd пока"]


def test_language_detection_is_seeded_and_repeatable() -> None:
    english = "The weather is lovely today and we are going for a long walk by the river."
    chinese = "今天天气很好，我们打算去河边散步，然后一起吃午饭。"
    assert detect_language(english)[0] == "en"
    assert detect_language(chinese)[0].startswith("zh")
    assert detect_language(chinese) == detect_language(chinese)
    assert detect_language("")[0] == "unknown"


@pytest.mark.parametrize("text", ["🎉\ufffd", "\ufffd", "1234 5678", "🎉🎉 42 !!", "   "])
def test_a_text_without_letters_has_no_language(text: str) -> None:
    """langdetect alone says "bn" at 1.00 for emoji and U+FFFD, "hi" for a lone U+FFFD."""
    assert detect_language(text) == ("unknown", 0.0)


def test_too_few_letters_to_tell_a_language_are_unknown() -> None:
    config = load_spec().leakage
    english = "The weather is lovely today and we are going for a long walk by the river."
    samples = [{"text": t} for t in ("Ok sure, 👍 \ufffd", "Ja", english, "好的，谢谢！" * 10, "好的，谢谢！")]
    annotate(samples, config, seed=0)
    assert [s["leakage"]["language"] for s in samples] == ["unknown", "unknown", "en", "zh-cn", "unknown"]
    assert samples[4]["leakage"]["leaks"]  # scripts, not languages, tell a leak: a short one still leaks
    assert detect_language("Ok sure", min_letters=3)[0] != "unknown"  # the threshold is the specification's


def test_token_script_takes_the_dominant_script() -> None:
    assert token_script(" 高兴") == "Han" and token_script(" happy") == "Latin" and token_script(" 42") is None


def test_logit_lens_on_a_hand_set_unembedding(tiny_llama: LoadedModel) -> None:
    """With the final norm's weight and the unembedding set by hand, the top tokens are known."""
    lm = tiny_llama
    vocab = lm.tokenizer.get_vocab()
    hidden = lm.identity.hidden_size
    # Pick two ordinary tokens and make them the only ones the unembedding can see along two axes.
    chosen = [vocab[t] for t in ("Ġsea", "Ġletter") if t in vocab][:2]
    assert len(chosen) == 2
    with torch.no_grad():
        saved_w = lm.stream.unembed.weight.clone()
        saved_norm = lm.stream.final_norm.weight.clone()
        lm.stream.unembed.weight.zero_()
        lm.stream.final_norm.weight.fill_(1.0)
        lm.stream.unembed.weight[chosen[0], 0] = 5.0
        lm.stream.unembed.weight[chosen[1], 1] = 5.0
    try:
        states = torch.zeros(2, hidden)
        states[0, 0] = 3.0
        states[1, 1] = 3.0
        readings = read_lens(lm, lens_logits(lm, states), k=1)
        assert readings[0].tokens == [lm.tokenizer.decode([chosen[0]])]
        assert readings[1].tokens == [lm.tokenizer.decode([chosen[1]])]
        assert readings[0].foreign_share == 0.0 and readings[0].foreign_tokens() == []
    finally:
        with torch.no_grad():
            lm.stream.unembed.weight.copy_(saved_w)
            lm.stream.final_norm.weight.copy_(saved_norm)
