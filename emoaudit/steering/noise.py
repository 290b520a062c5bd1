"""The judge's noise floor: how far its scores move between unsteered continuations that differ only by
chance, so that a steered trial's gain can be read against what no steering produces.

A trial's judge gain is the target's score minus that of its scenario's unsteered greedy continuation.
Here the same difference is taken for unsteered variants of that continuation: sampled draws of the same
prompt (the specification's `[generation]` temperature and top-p), and greedy continuations of the
scenario's paraphrased prompts (kept with the scenarios in `audits/`). The spread of |change| over
scenarios and variants is the noise floor, per label and over all labels; the share of changes at or
above the specification's `judge_margin` is how often an unsteered text would pass the trials' criterion.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from emoaudit.model.generation import generate
from emoaudit.model.loaded import LoadedModel
from emoaudit.model.runtime import chat_prompt_ids, generated_text
from emoaudit.results.steering import NoiseFloor
from emoaudit.spec.tables import Sampling, Scenario
from emoaudit.steering.judge import Judge
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


def unsteered_variants(
    lm: LoadedModel,
    scenarios: Sequence[Scenario],
    draws: int,
    sampling: Sampling,
    max_new_tokens: int,
    seed: int,
) -> list[Variant]:
    """`draws` sampled continuations of each scenario's prompt, then a greedy one of each paraphrase."""
    sampled = [(sc, "sampled", sc.prompt) for sc in scenarios for _ in range(draws)]
    reworded = [(sc, "paraphrase", p) for sc in scenarios for p in sc.paraphrases]
    variants = []
    for rows, temperature in ((sampled, sampling.temperature), (reworded, 0.0)):
        if not rows:
            continue
        ids = generate(
            lm,
            [chat_prompt_ids(lm, prompt) for *_, prompt in rows],
            max_new_tokens,
            seed,
            temperature=temperature,
            top_p=sampling.top_p,
        )
        variants += [
            Variant(sc.id, source, prompt, generated_text(lm, new))
            for (sc, source, prompt), new in zip(rows, ids, strict=True)
        ]
    return variants


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
) -> NoiseFloor:
    """Generate and judge the unsteered variants of `scenarios`, write them to `samples` (JSON lines) and
    measure the noise floor against `base` (each scenario's greedy continuation's judge scores)."""
    variants = unsteered_variants(lm, scenarios, draws, sampling, max_new_tokens, seed)
    scores = judge.scores([v.text for v in variants])
    # Rounded as the trials' scores are, so that the changes compare with their gains exactly.
    judged = [
        replace(v, judge={label: round(float(x), 5) for label, x in zip(judge.labels, row, strict=True)})
        for v, row in zip(variants, scores, strict=True)
    ]
    write_text(samples, "".join(json.dumps(asdict(v), ensure_ascii=False) + "\n" for v in judged))
    return noise_floor(judged, base, judge.labels, margin, samples.name)
