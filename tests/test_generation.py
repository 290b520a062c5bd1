import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from emoaudit.model.generation import NucleusSampler


def _nucleus(probs: list[float], top_p: float) -> set[int]:
    """The reference definition: the likeliest tokens until their mass reaches top_p, the crossing one included."""
    order = sorted(range(len(probs)), key=lambda i: -probs[i])
    kept, mass = set(), 0.0
    for i in order:
        if mass >= top_p:
            break
        kept.add(i)
        mass += probs[i]
    return kept


@given(
    logits=st.lists(st.integers(-40, 40).map(lambda i: i / 10), min_size=2, max_size=12, unique=True),  # no ties
    top_p=st.floats(0.05, 0.99),
    temperature=st.floats(0.3, 2.0),
    candidates=st.integers(1, 12),
)
@settings(max_examples=80, deadline=None)
def test_nucleus_sampler_draws_only_inside_the_nucleus(
    logits: list[float], top_p: float, temperature: float, candidates: int
) -> None:
    scores = torch.tensor(logits)[None].repeat(32, 1)
    out = NucleusSampler(temperature, top_p, torch.Generator().manual_seed(0), candidates)(None, scores)  # type: ignore[arg-type]
    assert bool((torch.isfinite(out).sum(dim=-1) == 1).all())  # greedy decoding is left one choice
    probs = torch.softmax(torch.tensor(logits, dtype=torch.float64) / temperature, dim=-1).tolist()
    assert set(out.argmax(dim=-1).tolist()) <= _nucleus(probs, top_p)


@pytest.mark.parametrize("candidates", [2, 256])  # 2: the top candidates hold too little mass, the full sort runs
def test_nucleus_sampler_draws_with_the_renormalised_probabilities(candidates: int) -> None:
    probs = torch.tensor([0.05, 0.5, 0.15, 0.3])
    sampler = NucleusSampler(1.0, 0.9, torch.Generator().manual_seed(1), candidates)
    tokens = sampler(None, probs.log()[None].repeat(40_000, 1)).argmax(dim=-1)  # type: ignore[arg-type]
    frequencies = torch.bincount(tokens, minlength=4).double() / len(tokens)
    expected = torch.tensor([0.0, 0.5, 0.15, 0.3], dtype=torch.float64) / 0.95
    torch.testing.assert_close(frequencies, expected, rtol=0, atol=0.01)


def test_nucleus_sampler_is_seeded() -> None:
    scores = torch.randn(16, 50, generator=torch.Generator().manual_seed(3))

    def draw(seed: int) -> list[int]:
        sampler = NucleusSampler(0.8, 0.95, torch.Generator().manual_seed(seed))
        return sampler(None, scores).argmax(dim=-1).tolist()  # type: ignore[arg-type]

    assert draw(7) == draw(7) and draw(7) != draw(8)
