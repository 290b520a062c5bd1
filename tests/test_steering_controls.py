"""Random-direction controls, specificity and the statistics the steerability checks gate on."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from emoaudit.pipeline.options import audit_options
from emoaudit.results.steering import SteeringStatistics
from emoaudit.errors import EmoauditError
from emoaudit.model.hooks import add_to_blocks, block_hooks
from emoaudit.model.load import load_model
from emoaudit.model.loaded import LoadedModel
from emoaudit.report.gating import steerable_check
from emoaudit.report.policy import load_policy
from emoaudit.steering.specificity import random_directions, rank
from emoaudit.steering.statistics import benjamini_hochberg, estimate, wilson
from emoaudit.steering.summary import summarise
from emoaudit.model.generation import generate, shared_prompt_cache
from emoaudit.model.runtime import chat_prompt_ids, pad_batch, pad_id
from emoaudit.steering.trials import Trial, score_trials, steering_context
from tests.conftest import THRESHOLDS

EMOTIONS = [f"e{i}" for i in range(17)] + ["hostile", "angry", "desperate"]
LABELS = [*EMOTIONS, "neutral"]
MULTIPLIERS = [0.25, 0.5, 1.0, 2.0]
SCENARIOS = 6
DIRECTIONS = 3
TEXT = "The harbour was quiet this morning and the fishing boats came back early with a small catch"


def sweep(effect: float, seed: int = 0) -> tuple[SteeringStatistics, list[Trial]]:
    """A synthetic sweep as the steering stage builds it: unsteered, steered and control trials of coherent
    text, judge scores of pure noise (uniform, as a judge's scores move between texts), plus `effect` on
    the target's score of every steered trial."""
    rng = np.random.default_rng(seed)
    trials = [Trial(f"s{i}", "neutral", "p", None, 0.0, None, TEXT, 17, 2.0) for i in range(SCENARIOS)]
    targets: list[str | None] = []
    for emotion in EMOTIONS:
        for m in MULTIPLIERS:
            trials += [Trial(f"s{i}", "neutral", "p", emotion, m, m, TEXT, 17, 2.0) for i in range(SCENARIOS)]
    for m in MULTIPLIERS:
        for _ in range(DIRECTIONS):
            for i in range(SCENARIOS):
                trial = Trial(f"s{i}", "neutral", "p", None, m, m, TEXT, 17, 2.0)
                trial.control = "random"
                trials.append(trial)
    scores = rng.uniform(0.0, 0.3, size=(len(trials), len(LABELS)))
    for row, trial in enumerate(trials):
        targets.append(trial.emotion)
        if trial.emotion is not None:
            scores[row, LABELS.index(trial.emotion)] += effect
    null = score_trials(trials, scores, LABELS, EMOTIONS, THRESHOLDS, str.split)
    summary = summarise(trials, EMOTIONS, MULTIPLIERS, EMOTIONS, null, THRESHOLDS)
    return summary.statistics, trials


def test_wilson_interval_matches_newcombes_worked_example() -> None:
    """Newcombe (1998), Statistics in Medicine 17:857, table I: 81 of 263, Wilson 0.2553 to 0.3662."""
    low, high = wilson(81, 263)
    assert low == pytest.approx(0.2553, abs=5e-5) and high == pytest.approx(0.3662, abs=5e-5)


def test_benjamini_hochberg_across_emotions() -> None:
    # sorted p 0.005, 0.01, 0.03, 0.04 (m = 4): p·m/rank = 0.02, 0.02, 0.04, 0.04, already monotone
    assert benjamini_hochberg([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.02, 0.04, 0.04, 0.02])
    assert benjamini_hochberg([0.01, None, 0.04]) == [pytest.approx(0.02), None, pytest.approx(0.04)]


def test_an_estimate_tests_the_steered_rate_against_the_control() -> None:
    same = estimate(3, 18, 3, 18)
    better = estimate(15, 18, 1, 60)
    assert same.p_value is not None and same.p_value > 0.5
    assert better.p_value is not None and better.p_value < 1e-6
    assert better.ci_low is not None and better.ci_high is not None and better.ci_low < 15 / 18 < better.ci_high
    assert estimate(0, 0, 0, 0).rate is None


def test_rank_counts_the_emotions_that_rose_more() -> None:
    assert rank({"a": 0.3, "b": 0.1, "c": 0.5}, "a") == 1
    assert rank({"a": 0.3, "b": 0.3, "c": 0.1}, "a") == 0  # a tie ranks in the target's favour


def test_judge_noise_alone_is_no_steerability_finding() -> None:
    statistics, trials = sweep(effect=0.0)
    policy = load_policy()
    for check_id, rule, scope in (
        ("steerable", policy.steerable, None),
        ("hostile_steerable", policy.hostile_steerable, set(policy.hostile_steerable.emotions)),
    ):
        check = steerable_check(check_id, rule, statistics, scope)
        assert not check.failed and check.severity == rule.severity
        assert "control" in check.detail and "[" in check.detail
    overall = statistics.overall
    assert overall.rate is not None and overall.rate < 0.1  # 3 of 20 ranks × 5% above the control
    assert sum(t.control == "random" for t in trials) == DIRECTIONS * SCENARIOS * len(MULTIPLIERS)


def test_a_clear_target_effect_is_a_finding_quoting_interval_and_control() -> None:
    statistics, _ = sweep(effect=1.0)  # every target rise above every other: all surgical
    policy = load_policy()
    check = steerable_check(
        "hostile_steerable", policy.hostile_steerable, statistics, set(policy.hostile_steerable.emotions)
    )
    assert check.failed and check.severity == "high"
    hostile = statistics.by_emotion["hostile"]
    assert hostile.rate == 1.0 and hostile.control_rate is not None and hostile.control_rate <= 0.05
    assert hostile.q_value is not None and hostile.q_value < 0.05
    assert f"hostile 100% [{hostile.ci_low:.0%}, {hostile.ci_high:.0%}]" in check.detail
    assert f"control {hostile.control_rate:.0%}" in check.detail and "q = " in check.detail
    cell = statistics.cells["angry"]["0.5"]
    assert (cell.trials, cell.control_trials) == (SCENARIOS, DIRECTIONS * SCENARIOS)


def test_random_directions_are_seeded_unit_vectors() -> None:
    a, b = random_directions(3, 64, seed=1), random_directions(3, 64, seed=1)
    assert a.equal(b) and not a.equal(random_directions(3, 64, seed=2))
    assert a.norm(dim=-1) == pytest.approx(torch.ones(3))


def test_a_delta_from_start_leaves_the_earlier_positions_alone(tiny_llama: LoadedModel) -> None:
    lm = tiny_llama
    ids = lm.tokenizer("The sea was grey and the wind was cold.", return_tensors="pt")["input_ids"]
    delta = torch.randn(lm.identity.hidden_size) * 50

    def logits(start: int | None) -> torch.Tensor:
        with torch.inference_mode():
            if start is None:
                return lm.model(ids).logits[0]
            with add_to_blocks(lm.stream, [1], delta, start=start):
                return lm.model(ids).logits[0]

    plain, all_positions, later = logits(None), logits(0), logits(4)
    assert torch.allclose(later[:4], plain[:4]) and not torch.allclose(later[4:], plain[4:])
    assert not torch.allclose(later[4:], all_positions[4:])  # under "all" the prompt is steered too
    assert not torch.allclose(all_positions[:4], plain[:4])
    # Positions count across forward passes, as in generation from the KV cache: prompt, then one token.
    with torch.inference_mode(), add_to_blocks(lm.stream, [1], delta, start=4):
        first = lm.model(ids[:, :4], use_cache=True)
        cache = first.past_key_values
        rest = [
            lm.model(ids[:, k : k + 1], past_key_values=cache, use_cache=True).logits[0] for k in range(4, ids.shape[1])
        ]
    assert torch.allclose(first.logits[0], plain[:4], atol=1e-5)
    assert torch.allclose(torch.cat(rest), later[4:], atol=1e-4)


def test_steering_only_generated_positions_leaves_the_first_new_token_alone(tiny_llama: LoadedModel) -> None:
    """The first new token is predicted at the prompt's last position, which "generated" does not steer."""
    lm = tiny_llama
    delta = torch.randn(lm.identity.hidden_size, generator=torch.Generator().manual_seed(0)) * 100
    prompts = [chat_prompt_ids(lm, p) for p in ("The harbour was quiet this morning.", "Write about the sea.")]
    lengths = [len(p) for p in prompts]

    def run(deltas: torch.Tensor, positions: str) -> list[list[int]]:
        steer = steering_context(lm, 1, deltas, lengths, positions)
        return generate(lm, prompts, 6, 0, temperature=0.0, top_p=1.0, batch_context=steer)

    plain = run(torch.zeros(2, lm.identity.hidden_size), "all")
    everywhere = run(delta.expand(2, -1), "all")
    after = run(delta.expand(2, -1), "generated")
    assert [ids[0] for ids in after] == [ids[0] for ids in plain]  # generated-only: same first token
    assert after != plain  # and steered from there on
    assert [ids[0] for ids in everywhere] != [ids[0] for ids in plain]  # steering the prompt too moves it


def shared_and_alone(lm: LoadedModel, texts: list[str], per_prompt: int, tokens: int, scale: float) -> None:
    """Rows repeating prompts of different lengths, steered from the prompt on ("generated"), each along its own
    random direction (the first unsteered): with the prompts' cache shared they write what they write without it,
    and the model reads each prompt once (but its last token), not once per row."""
    prompts = [chat_prompt_ids(lm, text) for text in texts]
    assert len({len(p) for p in prompts}) > 1  # left padding in the batch
    rows = [p for p in prompts for _ in range(per_prompt)]
    hidden = lm.identity.hidden_size
    deltas = torch.cat([torch.zeros(1, hidden), random_directions(len(rows) - 1, hidden, 0) * scale])
    passes: list[int] = []  # positions the first block read, per forward pass

    def count(_: int, states: torch.Tensor) -> None:
        passes.append(states.shape[0] * states.shape[1])

    def run(shared: bool) -> list[list[int]]:
        passes.clear()
        steer = steering_context(lm, 1, deltas, [len(r) for r in rows], "generated")
        with block_hooks(lm.stream, {0: count}):
            return generate(lm, rows, tokens, 0, temperature=0.0, top_p=1.0, batch_context=steer, shared_prompts=shared)

    alone = run(False)
    read_alone = passes[0]
    shared = run(True)
    width = max(len(p) for p in prompts)
    assert read_alone == len(rows) * width and passes[0] == len(prompts) * (width - 1)
    assert shared == alone and len({tuple(ids) for ids in shared}) > len(prompts)  # steered rows differ


@pytest.mark.parametrize("family", ["llama", "gpt2", "gemma3_text", "qwen2"])
def test_rows_that_repeat_a_prompt_share_its_cache_and_write_what_they_would_alone(
    tiny_dir: Callable[[str], Path], family: str
) -> None:
    lm = load_model(str(tiny_dir(family)), device="cpu", dtype="float32")
    shared_and_alone(lm, ["The harbour was quiet this morning.", "Write about the sea."], 4, 8, 20.0)


def test_a_model_whose_generation_config_names_its_own_cache_is_not_given_a_shared_one(
    tiny_dir: Callable[[str], Path],
) -> None:
    """Gemma 2 and 3 checkpoints ask for a "hybrid" cache, and transformers refuses a cache passed beside it."""
    lm = load_model(str(tiny_dir("gemma3_text")), device="cpu", dtype="float32")
    lm.model.generation_config.cache_implementation = "hybrid"
    try:
        prompt = chat_prompt_ids(lm, "Write about the sea.")
        ids, mask = pad_batch([prompt, prompt], pad_id(lm), "left")
        assert shared_prompt_cache(lm, ids, mask) == {}
        steer = steering_context(lm, 1, torch.zeros(2, lm.identity.hidden_size), [len(prompt)] * 2, "generated")
        written = generate(lm, [prompt, prompt], 4, 0, temperature=0.0, top_p=1.0, batch_context=steer,
                           shared_prompts=True)  # fmt: skip
        assert written[0] == written[1] and len(written[0]) == 4
    finally:
        lm.model.generation_config.cache_implementation = None


@pytest.mark.real
def test_smollm2_rows_that_repeat_a_prompt_share_its_cache_and_write_what_they_would_alone(
    smollm2: LoadedModel,
) -> None:
    texts = ["Write a message to my neighbour asking him not to park in my spot.", "What is 7 times 8?"]
    shared_and_alone(smollm2, texts, 5, 16, 0.3 * 40.0)


def test_an_unknown_steer_positions_is_refused_before_anything_loads(tmp_path: Path) -> None:
    with pytest.raises(EmoauditError, match="--steer-positions must be all or generated"):
        audit_options("smollm2-135m", tmp_path, {"steer_positions": "prompt"})
