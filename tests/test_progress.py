"""Progress lines: loops advance them as they work (a decoding step, not a batch), each stage's line ends with
its time, and the ETA is the rest of the work at the throughput measured so far."""

import io
from types import SimpleNamespace

import numpy as np
import pytest
from rich.console import Console

from emoaudit.capture.reading import capture
from emoaudit.model import generation
from emoaudit.model.generation import StepReport, generate, generation_steps
from emoaudit.model.loaded import LoadedModel
from emoaudit.model.runtime import even_batches, length_batches, token_ids
from emoaudit.progress import ConsoleProgress, QuietProgress, eta_seconds
from emoaudit.steering.judge import FixedJudge, scores_in_parts


def test_generation_reports_every_decoding_step_and_the_prompts_in_all(
    tiny_llama: LoadedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    ticks = iter(range(10**6))  # steps of equal time: each step after a batch's first reports more of it
    monkeypatch.setattr(generation, "time", SimpleNamespace(perf_counter=lambda: float(next(ticks))))
    prompts = [token_ids(tiny_llama, t) for t in ["The sea was grey", "She opened the letter", "Preheat the oven"]]
    told: list[float] = []
    generate(tiny_llama, prompts, 12, 0, temperature=1.0, top_p=0.9, max_batch_tokens=40, on_progress=told.append)
    batches = 2  # 40 tokens a batch: two prompts of up to 16+12 tokens do not fit together
    assert len(told) >= (12 - 1) * batches - 1  # a step after each batch's first, unless it ended at end-of-text
    assert abs(sum(told) - len(prompts)) < 1e-9 and max(told) <= 2


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_batch_reports_its_rows_in_proportion_to_its_measured_time() -> None:
    clock, told = FakeClock(), []
    report = StepReport(10, 5, told.append, clock)
    clock.now = 40.0  # the prefill and the first token: not reported until a step after it is timed
    report.tick()
    assert told == []
    for _ in range(4):  # steps of 5 s: the batch takes 40 + 4 x 5 = 60 s
        clock.now += 5.0
        report.tick()
    assert told == pytest.approx([10 * 45 / 60, 10 * 5 / 60, 10 * 5 / 60, 10 * 5 / 60])
    report.finish()  # nothing left: finishing adds nothing
    assert sum(told) == pytest.approx(10) and len(told) == 4
    # a quarter of the way in (after 15 of 60 s) the ETA from these reports is the rest of the batch
    clock, told = FakeClock(), []
    report = StepReport(8, 9, told.append, clock)
    for t in (3.0, 9.0, 15.0):  # a 3 s prefill then steps of 6 s: 3 + 8 x 6 = 51 s in all
        clock.now = t
        report.tick()
    assert eta_seconds(15.0, sum(told), 8) == pytest.approx(36.0)


def test_a_batch_that_ends_early_reports_the_rest_and_one_step_reports_at_once() -> None:
    clock, told = FakeClock(), []
    report = StepReport(4, 48, told.append, clock)
    clock.now = 1.0
    report.tick()
    report.finish()  # every row wrote its end-of-text token at the first step
    assert told == [4]
    single: list[float] = []
    StepReport(3, 1, single.append, clock).tick()
    assert single == [3]


def test_generation_batches_hold_like_numbers_of_rows_within_the_budget() -> None:
    lengths = [100] * 84  # greedy packing: 83 rows, then one row alone for as many steps
    assert [len(b) for b in length_batches(lengths, 8300)] == [83, 1]
    assert [len(b) for b in even_batches(lengths, 8300)] == [42, 42]
    uneven = [300, 290, 40, 40, 40, 40, 40, 40, 40, 40]  # equal sizes may not fit: more groups then
    batches = even_batches(uneven, 600)
    assert sorted(i for b in batches for i in b) == list(range(10))
    assert all(uneven[b[0]] * len(b) <= 600 and b[0] == max(b, key=lambda i: uneven[i]) for b in batches)
    assert max(map(len, batches)) - min(map(len, batches)) <= 1
    assert even_batches([700, 10], 600) == [[0], [1]] and even_batches([], 600) == []
    assert generation_steps([[1] * 52] * 84, 48, 8300) == 2 * 48


def test_reading_reports_each_block_of_each_batch(tiny_llama: LoadedModel) -> None:
    texts = ["The sea was grey", "She opened the letter", "Preheat the oven", "A dog barked twice"]
    sequences = [token_ids(tiny_llama, t) for t in texts]
    told: list[float] = []
    capture(tiny_llama, sequences, max_batch_tokens=12, on_progress=told.append)
    batches = len(length_batches([len(s) for s in sequences], 12))
    assert batches > 1 and len(told) == batches * tiny_llama.stream.n_layers
    assert sum(told) == pytest.approx(len(texts))


def test_judge_scores_in_parts_advance_and_keep_the_texts_order() -> None:
    judge = FixedJudge({"joy": ["glad", "happy"], "anger": ["angry"]})
    texts = [f"{'glad ' * (i % 5)}angry day number {i}" for i in range(150)]
    told: list[float] = []
    parts = scores_in_parts(judge, texts, told.append, part=64)
    assert np.array_equal(parts, judge.scores(texts))
    assert told == [64, 64, 22]


def test_eta_is_the_rest_at_the_measured_throughput() -> None:
    assert eta_seconds(30.0, 25.0, 100.0) == 90.0
    assert eta_seconds(0.0, 0.0, 100.0) is None
    assert eta_seconds(10.0, 100.0, 100.0) == 0.0


def test_a_stage_line_ends_with_its_time_and_a_quiet_one_prints_nothing() -> None:
    out = io.StringIO()
    progress = ConsoleProgress(Console(file=out, force_terminal=True, width=100))
    with progress.stage("writing stories", 4, "stories") as advance:
        for _ in range(4):
            advance(1)
        with progress.stage("nested", 1) as inner:  # a second line cannot open while one is live
            inner(1)
    text = out.getvalue()
    assert "writing stories" in text and "4/4 stories" in text and "done in" in text and "nested" not in text
    quiet = io.StringIO()  # a quiet console, a pipe (stderr then holds errors alone), QuietProgress
    with ConsoleProgress(Console(file=quiet, force_terminal=True, quiet=True)).stage("x", 1) as advance:
        advance(1)
    with ConsoleProgress(Console(file=quiet, force_terminal=False)).stage("y", 1) as advance:
        advance(1)
    failed = io.StringIO()
    with pytest.raises(RuntimeError), ConsoleProgress(Console(file=failed, force_terminal=True)).stage("z", 2) as a:
        a(1)
        raise RuntimeError("a failed stage leaves no line behind it")
    assert failed.getvalue().endswith("\x1b[1A\x1b[2K")  # the live line erased
    with QuietProgress().stage("y", 1) as advance:
        advance(1)
    assert quiet.getvalue() == ""


def test_the_duration_estimate_prices_the_behaviour_stage(
    tiny_llama: LoadedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The estimate printed before a scan left the behaviour stage out (a third of qwen2.5-coder-0.5b's
    standard scan); with the probe's rates fixed, the stage adds what its replies cost, and only when it runs
    (`--stages extraction,steering` priced it all the same)."""
    import dataclasses

    from emoaudit.pipeline import estimate as estimate_module
    from emoaudit.spec import load_spec

    spec = load_spec()
    profile = spec.profile("quick")
    monkeypatch.setattr(estimate_module, "_read_rate", lambda lm, texts: 1000.0)
    monkeypatch.setattr(estimate_module, "_write_rate", lambda lm, ids, temperature, read: 100.0)
    stages = ("extraction", "steering", "behaviour")
    with_behaviour = estimate_module.estimate(tiny_llama, spec, profile, stages, "", lambda _: None)
    without = estimate_module.estimate(
        tiny_llama, dataclasses.replace(spec, behaviour=None), profile, stages, "", lambda _: None
    )
    not_asked = estimate_module.estimate(tiny_llama, spec, profile, stages[:2], "", lambda _: None)
    extraction_only = estimate_module.estimate(tiny_llama, spec, profile, ("extraction",), "", lambda _: None)
    # quick: 2 emotions x 2 strengths + 3 random x 2, and unsteered: 11 replies of 32 tokens to each of 16 prompts
    written = 16 * 11 * profile.behaviour_tokens
    assert with_behaviour.seconds - without.seconds >= written / 100.0
    assert not_asked.seconds == pytest.approx(without.seconds)
    assert without.seconds > extraction_only.seconds > 0


def test_the_duration_estimate_prices_the_refusal_judges_reader(
    tiny_llama: LoadedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reader reads every labelled reply it is measured on and the replies no phrase decides, through its
    blocks up to the probe's: the largest cost of the standard scan's behaviour stage on a CPU without native
    bfloat16 (about 21 minutes for the 326 labelled replies alone), which the estimate left out."""
    from emoaudit.model.gguf import GgufShape
    from emoaudit.model.runtime import chat_prompt_ids
    from emoaudit.progress import duration
    from emoaudit.behaviour.reader import question
    from emoaudit.pipeline import estimate as estimate_module
    from emoaudit.spec import load_spec

    spec = load_spec()
    assert spec.refusal_reader is not None and spec.behaviour_heldout is not None
    monkeypatch.setattr(estimate_module, "_read_rate", lambda lm, texts: 1000.0)
    monkeypatch.setattr(estimate_module, "_write_rate", lambda lm, ids, temperature, read: 100.0)
    stages = ("extraction", "steering", "behaviour")

    def seconds(profile: str, reader: GgufShape | None) -> float:
        probed = estimate_module.estimate(tiny_llama, spec, spec.profile(profile), stages, "", lambda _: None, reader)
        return probed.seconds

    params = tiny_llama.identity.parameters
    deep, twice = (
        GgufShape(spec.refusal_reader.layer + 1, 64, 10 * params),
        GgufShape(2 * (spec.refusal_reader.layer + 1), 64, 10 * params),
    )
    said = estimate_module.estimate(tiny_llama, spec, spec.profile("quick"), stages, "", lambda _: None, deep)
    assert said.reader_seconds == pytest.approx(said.seconds - seconds("quick", None)) and said.reader_seconds > 0
    assert f"up to {duration(said.reader_seconds)} of it the refusal judge's reader" in said.line()
    assert (
        "reader"
        not in estimate_module.estimate(tiny_llama, spec, spec.profile("quick"), stages, "", lambda _: None).line()
    )
    for profile in ("quick", "standard"):
        alone = seconds(profile, None)
        read = seconds(profile, deep) - alone
        assert read > 0
        assert seconds(profile, GgufShape(deep.blocks, 64, 20 * params)) - alone == pytest.approx(2 * read)
        assert seconds(profile, twice) - alone == pytest.approx(read / 2)  # the probe reads half its blocks
    # The standard profile reads all 326 labelled replies (at least their questions' tokens, at ten times the
    # model's cost a token) and the undecided share of 1800 replies: far more than the quick profile's 80.
    labelled = sum(
        len(chat_prompt_ids(tiny_llama, question(spec.refusal_reader.question, r.prompt, r.reply)))
        for r in spec.behaviour_heldout.replies
    )
    standard = seconds("standard", deep) - seconds("standard", None)
    assert standard > labelled * 10 / 1000.0
    assert standard > 3 * (seconds("quick", deep) - seconds("quick", None))
