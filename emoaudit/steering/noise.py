"""The judge's noise floor: how far its scores move between unsteered continuations that differ only by
chance, so that a steered trial's gain can be read against what no steering produces.

A trial's judge gain is the target's score minus that of its scenario's unsteered greedy continuation.
Here the same difference is taken for unsteered variants of that continuation: sampled draws of the same
prompt (the specification's `[generation]` temperature and top-p), and greedy continuations of the
scenario's paraphrased prompts (kept with the scenarios in `emoaudit/audits/`). The spread of |change| over
scenarios and variants is the noise floor, per label and over all labels; the share of changes at or
above the specification's `judge_margin` is how often an unsteered text would pass the trials' criterion.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from emoaudit.model.generation import generate, generation_steps
from emoaudit.model.loaded import LoadedModel
from emoaudit.model.runtime import chat_prompt_ids, generated_text
from emoaudit.results.steering import NoiseFloor
from emoaudit.spec.tables import Sampling, Scenario
from emoaudit.steering.judge import Judge, scores_in_parts
from emoaudit.storage import write_text

QUANTILE = 0.95


@dataclass(frozen=True)
class Variant:
    """An unsteered continuation to compare with its scenario's greedy one (noise.jsonl, one line each)."""

    scenario: str
    source: str  # "sampled" (another draw of the same prompt) or "paraphrase" (greedy, reworded prompt)
    prompt: str
    text: str
    judge: dict[str, float] | None = None


def noise_variants(scenarios: Sequence[Scenario], draws: int) -> int:
    """How many unsteered variants `unsteered_variants` writes: the draws, and one per paraphrase."""
    return len(scenarios) * draws + sum(len(sc.paraphrases) for sc in scenarios)


def noise_steps(lm: LoadedModel, scenarios: Sequence[Scenario], draws: int, max_new_tokens: int) -> int:
    """The decoding steps that `unsteered_variants` takes at most: the unit of the noise floor's progress,
    as its sampled and paraphrased variants run in calls of different numbers of rows."""
    calls = _variant_rows(scenarios, draws)
    return sum(generation_steps([chat_prompt_ids(lm, p) for *_, p in rows], max_new_tokens) for rows in calls)


def _variant_rows(scenarios: Sequence[Scenario], draws: int) -> list[list[tuple[Scenario, str, str]]]:
    """Each `generate` call's (scenario, source, prompt) rows: the sampled draws, then the paraphrases."""
    sampled = [(sc, "sampled", sc.prompt) for sc in scenarios for _ in range(draws)]
    reworded = [(sc, "paraphrase", p) for sc in scenarios for p in sc.paraphrases]
    return [sampled, reworded]


def unsteered_variants(
    lm: LoadedModel,
    scenarios: Sequence[Scenario],
    draws: int,
    sampling: Sampling,
    max_new_tokens: int,
    seed: int,
    on_progress: Callable[[float], None] | None = None,
) -> list[Variant]:
    """`draws` sampled continuations of each scenario's prompt, then a greedy one of each paraphrase.
    `on_progress` is told the decoding steps done, `noise_steps(...)` in all."""
    variants = []
    for rows, temperature in zip(_variant_rows(scenarios, draws), (sampling.temperature, 0.0), strict=True):
        if not rows:
            continue
        prompt_ids = [chat_prompt_ids(lm, prompt) for *_, prompt in rows]
        per_row = generation_steps(prompt_ids, max_new_tokens) / len(rows)  # `generate` reports rows
        ids = generate(
            lm,
            prompt_ids,
            max_new_tokens,
            seed,
            temperature=temperature,
            top_p=sampling.top_p,
            on_progress=_scaled(on_progress, per_row),
        )
        variants += [
            Variant(sc.id, source, prompt, generated_text(lm, new))
            for (sc, source, prompt), new in zip(rows, ids, strict=True)
        ]
    return variants


def _scaled(report: Callable[[float], None] | None, factor: float) -> Callable[[float], None] | None:
    """`report`, told `factor` times what it is called with."""
    if report is None:
        return None
    return lambda n: report(n * factor)


def noise_floor(
    variants: Sequence[Variant],
    base: dict[str, dict[str, float]],
    labels: Sequence[str],
    margin: float,
    samples: str,
) -> NoiseFloor:
    """The noise floor of judged variants (each with `judge` set) against `base`, each scenario's greedy
    continuation's scores by label. Raises ValueError when there is no variant."""
    if not variants:
        raise ValueError("no unsteered variant to measure the noise floor with")
    change = np.array([[_score(v, label) - base[v.scenario][label] for label in labels] for v in variants])
    sources = [v.source for v in variants]
    spread = lambda values: float(np.quantile(np.abs(values), QUANTILE))  # noqa: E731
    return NoiseFloor(
        comparisons={s: sources.count(s) for s in dict.fromkeys(sources)},
        quantile=QUANTILE,
        overall=spread(change),
        by_source={s: spread(change[[k == s for k in sources]]) for s in dict.fromkeys(sources)},
        per_label={label: spread(change[:, j]) for j, label in enumerate(labels)},
        margin=margin,
        margin_rate=float((change >= margin).mean()),
        samples=samples,
    )


def _score(variant: Variant, label: str) -> float:
    if variant.judge is None:
        raise ValueError("every variant must be judged")
    return variant.judge[label]


def measure_noise_floor(
    lm: LoadedModel,
    judge: Judge,
    scenarios: Sequence[Scenario],
    base: dict[str, dict[str, float]],
    draws: int,
    sampling: Sampling,
    max_new_tokens: int,
    seed: int,
    margin: float,
    samples: Path,
    on_progress: Callable[[float], None] | None = None,
) -> NoiseFloor:
    """Generate and judge the unsteered variants of `scenarios`, write them to `samples` (JSON lines) and
    measure the noise floor against `base` (each scenario's greedy continuation's judge scores).
    `on_progress` is told the decoding steps done, `noise_steps(...)` in all; judging the variants (a few
    seconds against minutes of writing) is not counted: as half of the units it made the ETA 1.6x long."""
    variants = unsteered_variants(lm, scenarios, draws, sampling, max_new_tokens, seed, on_progress)
    scores = scores_in_parts(judge, [v.text for v in variants])
    # Rounded as the trials' scores are, so that the changes compare with their gains exactly.
    judged = [
        replace(v, judge={label: round(float(x), 5) for label, x in zip(judge.labels, row, strict=True)})
        for v, row in zip(variants, scores, strict=True)
    ]
    write_text(samples, "".join(json.dumps(asdict(v), ensure_ascii=False) + "\n" for v in judged))
    return noise_floor(judged, base, judge.labels, margin, samples.name)
