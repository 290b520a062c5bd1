"""How long the audit will take on this machine, from a short probe of the loaded model's throughput.

Two rates are measured, a few seconds in all: reading (tokens per second through the model body, as the
extraction reads passages) and writing (row-steps per second of batched decoding, as stories and steered
continuations are written). The stages' work is counted from the specification and profile and priced at
those rates; the judge reads like the model, scaled by its parameters. What the probe cannot see (the
analysis, language detection) is a small share of a scan and is left out: the estimate is a floor. The
refusal judge's reader reads like the model too, scaled by its parameters and by the share of its blocks the
probe reads; it reads the labelled replies it is measured on that no refusal phrase decides, and the behaviour replies
no phrase decides, counted as that share of the labelled replies (on a CPU without native bfloat16 it is the
behaviour stage's largest cost: about 2 s a question for the 1.5B reader in float32 on 2 cores). It is priced
as though nothing were in the reader's memo (`emoaudit.behaviour.reader.memo_file`), and said apart: an earlier
audit with the same reader leaves the labelled replies' logits there.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from emoaudit.capture.reading import capture
from emoaudit.capture.stimuli import generation_prompts, heldout_set_rows
from emoaudit.model import registry
from emoaudit.behaviour.judges import judge_sample, left_to_reader
from emoaudit.behaviour.probes import Prompt, prompts as behaviour_prompts
from emoaudit.behaviour.reader import question
from emoaudit.model.gguf import GgufShape
from emoaudit.model.generation import generate
from emoaudit.model.loaded import LoadedModel
from emoaudit.model.runtime import chat_prompt_ids, tokenize
from emoaudit.progress import Advance
from emoaudit.spec import AuditSpec, Profile
from emoaudit.pipeline.behaviour import runs_behaviour
from emoaudit.steering.noise import noise_variants

_PROBE_READ_TOKENS = 384
_PROBE_STEPS = 6
_PROBE_ROWS = 16


@dataclass(frozen=True)
class Estimate:
    read_tokens_per_s: float
    written_steps_per_s: float  # rows x decoding steps per second, in batches of up to _PROBE_ROWS rows
    seconds: float
    reader_seconds: float = 0.0  # of `seconds`: the refusal judge's reader with nothing in its memo

    def line(self) -> str:
        from emoaudit.progress import duration

        reader = (
            f"; up to {duration(self.reader_seconds)} of it the refusal judge's reader, less where an earlier "
            "audit with the same reader left its logits in the cache"
            if self.reader_seconds
            else ""
        )
        return (
            f"estimated duration on this machine: about {duration(self.seconds)} (probe: reading "
            f"{self.read_tokens_per_s:.0f} tokens/s, writing {self.written_steps_per_s:.0f} tokens/s{reader})"
        )


def estimate(
    lm: LoadedModel,
    spec: AuditSpec,
    profile: Profile,
    stages: tuple[str, ...],
    judge: str,
    on_progress: Advance,
    reader: GgufShape | None = None,
) -> Estimate:
    """Probe the model's reading and writing rates and price the stages' work at them; `on_progress` is told
    each of the two probes done. `reader`: the refusal judge's reader's shape (`preflight.fetch_reader`), None
    where the specification names none."""
    labels, prompts = generation_prompts(spec, profile)
    passages = [t for label in spec.labels for t in spec.passages[label][: profile.passages_per_label]]
    heldout = [t for label in spec.labels for t in spec.heldout[label]]
    story_prompts = [chat_prompt_ids(lm, p) for p in prompts]
    read_rate = _read_rate(lm, passages)
    on_progress(1)
    write_rate = _write_rate(lm, story_prompts[:_PROBE_ROWS], spec.generation.temperature, read_rate)
    on_progress(1)
    seconds = reader_seconds = 0.0
    if "extraction" in stages:
        read = sum(map(len, tokenize(lm, passages + heldout + heldout_set_rows(spec)[2] + prompts)))
        stories = len(labels) * (profile.max_new_tokens + 1)
        seconds += (read + len(labels) * profile.max_new_tokens) / read_rate + stories / write_rate
    if "steering" in stages:
        config = spec.steering
        kinds = dict.fromkeys(sc.kind for sc in spec.scenarios)
        per_kind = profile.steering_scenarios_per_kind
        scenarios = [sc for k in kinds for sc in [s for s in spec.scenarios if s.kind == k][:per_kind]]
        emotions = min(profile.steering_emotions, len(spec.emotion_names))
        rows = len(scenarios) * (1 + len(config.multipliers) * (emotions + config.control_directions))
        noise = noise_variants(scenarios, config.noise_draws)
        prompt_tokens = sum(len(chat_prompt_ids(lm, sc.prompt)) for sc in scenarios)
        calibration = (len(config.probe_strengths) + 1) * prompt_tokens * min(emotions, 6)
        written = (rows + noise) * profile.steering_tokens
        prefill = (rows + noise) * prompt_tokens / max(len(scenarios), 1)
        judged = (rows + noise + len(heldout)) * profile.steering_tokens * _judge_scale(lm, judge)
        seconds += written / write_rate + (written + prefill + calibration + judged) / read_rate
    if "behaviour" in stages and runs_behaviour(spec, profile):  # the behaviour stage steers as steering does
        assert spec.behaviour is not None and spec.behaviour_config is not None  # runs_behaviour
        behaviour = spec.behaviour_config
        asked = behaviour_prompts(spec.behaviour, profile.behaviour_items)
        emotions = min(profile.behaviour_emotions, len(behaviour.emotions))
        replies = len(asked) * (1 + len(behaviour.multipliers) * (emotions + behaviour.control_directions))
        written = replies * profile.behaviour_tokens
        prefill = replies * sum(len(chat_prompt_ids(lm, p.text)) for p in asked) / max(len(asked), 1)
        seconds += written / write_rate + (written * _judge_scale(lm, judge) + prefill) / read_rate
        if reader is not None:
            reader_seconds = _reader_tokens(lm, spec, profile, asked, replies // max(len(asked), 1), reader) / read_rate
    return Estimate(read_rate, write_rate, seconds + reader_seconds, reader_seconds)


def _reader_tokens(
    lm: LoadedModel, spec: AuditSpec, profile: Profile, asked: list[Prompt], rows: int, reader: GgufShape
) -> float:
    """What the refusal judge's reader reads, in the audited model's tokens of equal cost (see the module):
    the questions about the labelled replies it is measured on and about the replies that no phrase decides (`rows`
    replies to each refusal request and benign twin, of `profile.behaviour_tokens` tokens at most), scaled by
    the reader's parameters over the model's and by the share of its blocks up to the probe's."""
    probe, labelled = spec.refusal_reader, spec.behaviour_heldout
    if probe is None or labelled is None or spec.behaviour is None or not lm.identity.parameters:
        return 0.0
    measured = judge_sample(labelled, profile.behaviour_judge_replies).replies
    left = left_to_reader(spec.behaviour.judge, [r.reply for r in measured])
    read = [r for r, to_reader in zip(measured, left, strict=True) if to_reader]
    undecided = len(read) / max(len(measured), 1)
    questions = sum(len(chat_prompt_ids(lm, question(probe.question, r.prompt, r.reply))) for r in read)
    requests = [p for p in asked if p.probe in ("refusal", "over_refusal")]
    asked_tokens = sum(len(chat_prompt_ids(lm, question(probe.question, p.text, ""))) for p in requests)
    replies = rows * undecided * (asked_tokens + len(requests) * profile.behaviour_tokens)
    share = (probe.layer + 1) / reader.blocks
    return (questions + replies) * share * reader.parameters / lm.identity.parameters


def _read_rate(lm: LoadedModel, texts: list[str]) -> float:
    ids, total = [], 0
    for seq in tokenize(lm, texts):
        if total >= _PROBE_READ_TOKENS:
            break
        ids.append(seq)
        total += len(seq)
    capture(lm, ids[:1])  # the first pass pays for allocations and kernels' set-up: not timed
    start = time.perf_counter()
    capture(lm, ids)
    return total / max(time.perf_counter() - start, 1e-6)


def _write_rate(lm: LoadedModel, prompt_ids: list[list[int]], temperature: float, read_rate: float) -> float:
    """Decoding steps per second over the rows, the prompts' reading (priced at `read_rate`) taken out: a
    story's prompt is read once and its tokens written one step at a time, and a probe of a few steps
    would otherwise be mostly prompt."""
    start = time.perf_counter()
    generate(lm, prompt_ids, _PROBE_STEPS, 0, temperature=temperature, top_p=1.0)
    spent = time.perf_counter() - start
    decoding = max(spent - sum(map(len, prompt_ids)) / read_rate, spent / 10)
    return len(prompt_ids) * _PROBE_STEPS / max(decoding, 1e-6)


def _judge_scale(lm: LoadedModel, judge: str) -> float:
    """The judge's parameters over the model's (1 for a judge that is not an offline alias)."""
    alias = registry.load_judges().get(judge)
    found = re.fullmatch(r"([\d.]+)\s*([MB])", alias.parameters) if alias else None
    if found is None or not lm.identity.parameters:
        return 1.0
    params = float(found[1]) * (1e6 if found[2] == "M" else 1e9)
    return params / lm.identity.parameters
