"""Progress lines: loops advance them as they work (a decoding step, not a batch), each stage's line ends with
its time, and the ETA is the rest of the work at the throughput measured so far."""

import io

import numpy as np
import pytest
from rich.console import Console

from emoaudit.model.generation import generate
from emoaudit.model.loaded import LoadedModel
from emoaudit.model.runtime import token_ids
from emoaudit.progress import ConsoleProgress, QuietProgress, eta_seconds
from emoaudit.steering.judge import FixedJudge, scores_in_parts


def test_generation_reports_every_decoding_step_and_the_prompts_in_all(tiny_llama: LoadedModel) -> None:
    prompts = [token_ids(tiny_llama, t) for t in ["The sea was grey", "She opened the letter", "Preheat the oven"]]
    told: list[float] = []
    generate(tiny_llama, prompts, 12, 0, temperature=1.0, top_p=0.9, max_batch_tokens=40, on_progress=told.append)
    batches = 2  # 40 tokens a batch: two prompts of up to 16+12 tokens do not fit together
    assert len(told) >= 12 * batches - 1  # one report a step, unless a batch ended at end-of-text
    assert abs(sum(told) - len(prompts)) < 1e-9 and max(told) <= 2


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
