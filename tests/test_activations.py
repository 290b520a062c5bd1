import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from emoaudit.capture.generation_reader import GenerationReader
from emoaudit.spec.pooling import Pooling, pooling_weights
from emoaudit.capture.reading import capture
from emoaudit.model.runtime import length_batches, pad_batch, tokenize
from emoaudit.errors import EmoauditError
from emoaudit.model.generation import generate
from emoaudit.model.runtime import chat_prompt_ids, eos_ids
from emoaudit.model.hooks import block_hooks, block_output
from emoaudit.model.loaded import LoadedModel

TEXTS = [
    "A short one.",
    "This sentence is a good deal longer than the first one, so the batch will need padding.",
    "Medium length text here, with a comma.",
]


@given(
    lengths=st.lists(st.integers(1, 12), min_size=1, max_size=6),
    start=st.integers(0, 5),
    kind=st.sampled_from(["mean", "last"]),
)
@settings(max_examples=60, deadline=None)
def test_pooling_selects_the_same_real_tokens_whichever_side_pads(lengths: list[int], start: int, kind: str) -> None:
    sequences = [list(range(10, 10 + n)) for n in lengths]
    start = min(start, min(lengths) - 1) if kind == "mean" else 0
    pooling = Pooling(kind, start)  # type: ignore[arg-type]
    per_side = []
    for side in ("left", "right"):
        ids, mask = pad_batch(sequences, 0, side)  # type: ignore[arg-type]
        weights = pooling_weights(mask, pooling)
        assert torch.all(weights[mask == 0] == 0), "a padded position entered the pool"
        torch.testing.assert_close(weights.sum(dim=1), torch.ones(len(lengths)))
        per_side.append([weights[r][mask[r] == 1].tolist() for r in range(len(lengths))])
    assert per_side[0] == per_side[1]
    for row, n in enumerate(lengths):
        real = per_side[0][row]
        if kind == "last":
            assert real[-1] == 1.0
        else:
            assert sum(w > 0 for w in real) == n - start


def test_pooling_parse_and_empty_selection() -> None:
    assert Pooling.parse("mean:4") == Pooling("mean", 4)
    assert str(Pooling.parse("last")) == "last"
    with pytest.raises(EmoauditError):
        Pooling.parse("median")
    _, mask = pad_batch([[1, 2]], 0, "right")
    with pytest.raises(EmoauditError, match="no tokens left"):
        pooling_weights(mask, Pooling("mean", 5))


def test_length_batches_respect_the_token_budget() -> None:
    lengths = [5, 50, 7, 20, 50, 3]
    batches = length_batches(lengths, 100)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for batch in batches:
        assert max(lengths[i] for i in batch) * len(batch) <= 100 or len(batch) == 1


def _padding_invariance(lm: LoadedModel) -> None:
    ids = tokenize(lm, TEXTS)
    pooling = Pooling("mean", 1)
    alone = [capture(lm, [seq], pooling) for seq in ids]
    alone_means = torch.cat([c.means for c in alone])
    for side in ("left", "right"):
        batched = capture(lm, ids, pooling, pad_side=side)  # type: ignore[arg-type]
        torch.testing.assert_close(batched.means, alone_means, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(batched.token_norms, torch.cat([c.token_norms for c in alone]), rtol=1e-4, atol=1e-4)
    # A text's activations do not change with the company it keeps in a batch.
    with_others = capture(lm, ids + tokenize(lm, ["An extra, much longer companion text " * 4]), pooling)
    torch.testing.assert_close(with_others.means[: len(ids)], alone_means, rtol=1e-4, atol=1e-4)


def test_padding_invariance_tiny(tiny_llama: LoadedModel) -> None:
    _padding_invariance(tiny_llama)


@pytest.mark.real
def test_padding_invariance_smollm2(smollm2: LoadedModel) -> None:
    _padding_invariance(smollm2)


def test_capture_matches_hidden_states_and_pools_from_start(tiny_llama: LoadedModel) -> None:
    lm = tiny_llama
    seq = tokenize(lm, [TEXTS[1]])[0]
    with torch.no_grad():
        hidden = lm.model(input_ids=torch.tensor([seq]), output_hidden_states=True).hidden_states
    captured = capture(lm, [seq])
    mean = captured.means[0]
    for layer in range(lm.stream.n_layers - 1):  # the last entry of hidden_states is after the final norm
        torch.testing.assert_close(mean[layer], hidden[layer + 1][0].mean(dim=0), rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(
            captured.token_norms[0, layer], hidden[layer + 1][0].norm(dim=-1).mean(), rtol=1e-4, atol=1e-5
        )
    from_k = capture(lm, [seq], Pooling("mean", 4)).means[0]
    torch.testing.assert_close(from_k[0], hidden[1][0, 4:].mean(dim=0), rtol=1e-4, atol=1e-5)
    last = capture(lm, [seq], Pooling("last")).means[0]
    torch.testing.assert_close(last[0], hidden[1][0, -1], rtol=1e-4, atol=1e-5)


def _reading_during_generation(lm: LoadedModel, stop_at: int | None, monkeypatch: pytest.MonkeyPatch) -> None:
    prompts = [chat_prompt_ids(lm, p) for p in ["The sea", "A much longer prompt about the old harbour", "He"]]
    keep = 8
    temperature = 0.9 if stop_at is None else 0.0
    if stop_at is not None:  # a token the model writes mid-way ends its text: rows stop at different steps
        stop = generate(lm, prompts, keep, seed=0, temperature=temperature, top_p=1.0)[0][stop_at]
        monkeypatch.setattr(lm.model.generation_config, "eos_token_id", sorted(eos_ids(lm) | {stop}))
    reader = GenerationReader(lm, len(prompts), eos_ids(lm))
    # A small token budget puts each prompt in a batch of its own: rows must land where they belong.
    written = generate(
        lm, prompts, keep + 1, 5, temperature=temperature, top_p=0.95, max_batch_tokens=40, batch_context=reader.batch
    )
    kept = [ids[:keep] for ids in written]
    assert reader.counts.tolist() == [len(ids) for ids in kept]
    if stop_at is not None:
        assert min(len(ids) for ids in kept) < keep
    rows = [i for i, ids in enumerate(kept) if ids]
    read = reader.captured(rows)
    for row, i in enumerate(rows):  # a second pass over prompt + kept text, pooled over the kept text
        outputs: list[torch.Tensor] = []
        keep_output = lambda _m, _i, o, into=outputs: into.append(block_output(o)[0])  # noqa: E731
        handles = [block.register_forward_hook(keep_output) for block in lm.stream.blocks]
        with torch.inference_mode():
            lm.model(input_ids=torch.tensor([prompts[i] + kept[i]]))
        for handle in handles:
            handle.remove()
        generated = torch.stack(outputs)[:, len(prompts[i]) :].float()
        torch.testing.assert_close(read.means[row], generated.mean(dim=1), rtol=1e-3, atol=1e-4)
        torch.testing.assert_close(read.token_norms[row], generated.norm(dim=-1).mean(dim=1), rtol=1e-3, atol=1e-4)


def test_reading_the_first_blocks_stops_the_pass_there_and_reads_what_the_whole_pass_reads(
    tiny_llama: LoadedModel,
) -> None:
    lm = tiny_llama
    ids = tokenize(lm, ["The sea was grey and the boat rocked.", "She laughed."])
    whole = capture(lm, ids)
    later: list[int] = []
    with block_hooks(lm.stream, {lm.stream.n_layers - 1: lambda layer, _: later.append(layer)}):
        first = capture(lm, ids, blocks=2)
    assert first.means.shape == (2, 2, lm.identity.hidden_size) and later == []  # the last block never ran
    assert torch.equal(first.means, whole.means[:, :2]) and torch.equal(first.token_norms, whole.token_norms[:, :2])
    for blocks in (0, 4):
        with pytest.raises(EmoauditError, match=f"cannot read {blocks} blocks of a model with 3"):
            capture(lm, ids, blocks=blocks)


def test_reading_during_generation_matches_a_second_pass_tiny(
    tiny_llama: LoadedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    _reading_during_generation(tiny_llama, 2, monkeypatch)


@pytest.mark.real
def test_reading_during_generation_matches_a_second_pass_smollm2(
    smollm2: LoadedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    _reading_during_generation(smollm2, None, monkeypatch)
