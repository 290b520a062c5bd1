"""The behaviour stage's replies: every probe's prompts unsteered, steered toward each emotion in scope at
each strength, and steered along seeded random directions of the same norm, generated greedily in shared
batches (the steering stage's `Row`s and per-row deltas, `emoaudit.steering.trials`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import torch

from emoaudit.model.generation import generate
from emoaudit.model.loaded import LoadedModel
from emoaudit.model.runtime import chat_prompt_ids, generated_text
from emoaudit.spec.behaviour import BehaviourData
from emoaudit.steering.specificity import random_directions
from emoaudit.steering.trials import Row, steering_context
from emoaudit.vectors import unit_deltas

T = TypeVar("T")
PROBES = ("refusal", "over_refusal", "sycophancy", "hostility")


@dataclass(frozen=True)
class Prompt:
    probe: str  # one of PROBES; "over_refusal" is the benign twin of a refusal item
    item: str
    text: str


@dataclass(frozen=True)
class Steer:
    """What steers the replies: the emotion layer, the strengths (multipliers of the calibrated unit, in units
    of the layer's mean residual norm) and each emotion's direction [hidden]."""

    layer: int
    unit_strength: float
    mean_norm: float
    multipliers: tuple[float, ...]
    directions: dict[str, torch.Tensor]
    control_directions: int
    seed: int
    positions: str  # "all" or "generated", as the steering stage


@dataclass
class Reply:
    """One reply: unsteered (emotion and control None), steered toward `emotion`, or a random-direction control."""

    probe: str
    item: str
    prompt: str
    emotion: str | None
    multiplier: float | None
    control: str | None
    text: str
    tokens: int
    event: bool | None = None  # the probe's unsafe event; None: undecidable
    verdict: str | None = None  # the judge's word for it
    score: float | None = None  # hostility: the rise of the hostile or angry score


def pick(items: Sequence[T], n: int, kind: Callable[[T], str]) -> list[T]:
    """The first `n` items taken in turn from each kind (threats, harassment, ...), so a small profile still
    sees every kind; the items' own order within a kind."""
    by_kind: dict[str, list[T]] = {}
    for item in items:
        by_kind.setdefault(kind(item), []).append(item)
    picked: list[T] = []
    depth = 0
    while len(picked) < min(n, len(items)):
        picked += [group[depth] for group in by_kind.values() if depth < len(group)][: n - len(picked)]
        depth += 1
    return picked


def prompts(data: BehaviourData, n: int) -> list[Prompt]:
    """Each probe's first `n` items (see `pick`), the refusal items with their benign twins."""
    out: list[Prompt] = []
    for item in pick(data.refusal, n, lambda i: i.kind):
        out += [Prompt("refusal", item.id, item.harmful), Prompt("over_refusal", item.id, item.benign)]
    out += [Prompt("sycophancy", i.id, i.prompt) for i in pick(data.sycophancy, n, lambda i: i.kind)]
    out += [Prompt("hostility", i.id, i.prompt) for i in pick(data.hostility, n, lambda i: i.kind)]
    return out


def rows(n_prompts: int, steer: Steer, hidden: int) -> list[Row]:
    """Every prompt unsteered, toward each emotion at each strength, and along each random direction."""
    out = [Row(i, None, 0.0, None, None) for i in range(n_prompts)]
    for emotion, direction in steer.directions.items():
        for m in steer.multipliers:
            delta = unit_deltas(direction[None], [steer.unit_strength * m], steer.mean_norm)[0]
            out += [Row(i, emotion, steer.unit_strength * m, m, delta) for i in range(n_prompts)]
    controls = random_directions(steer.control_directions, hidden, steer.seed)
    for m in steer.multipliers:
        deltas = unit_deltas(controls, [steer.unit_strength * m] * len(controls), steer.mean_norm)
        out += [Row(i, None, steer.unit_strength * m, m, d, "random") for d in deltas for i in range(n_prompts)]
    return out


def generate_replies(
    lm: LoadedModel,
    asked: Sequence[Prompt],
    steer: Steer,
    max_new_tokens: int,
    on_progress: Callable[[float], None] | None = None,
) -> list[Reply]:
    """Greedy replies of every row (see `rows`), steered and control rows of a prompt in shared batches."""
    planned = rows(len(asked), steer, lm.identity.hidden_size)
    prompt_ids = [chat_prompt_ids(lm, p.text) for p in asked]
    row_ids = [prompt_ids[r.prompt] for r in planned]
    deltas = torch.stack([r.delta if r.delta is not None else torch.zeros(lm.identity.hidden_size) for r in planned])
    context = steering_context(lm, steer.layer, deltas, [len(ids) for ids in row_ids], steer.positions)
    new_ids = generate(
        lm,
        row_ids,
        max_new_tokens,
        steer.seed,
        temperature=0.0,
        top_p=1.0,
        on_progress=on_progress,
        batch_context=context,
        shared_prompts=steer.positions == "generated",
    )
    return [
        Reply(asked[r.prompt].probe, asked[r.prompt].item, asked[r.prompt].text, r.emotion, r.multiplier, r.control,
              generated_text(lm, ids), len(ids))
        for r, ids in zip(planned, new_ids, strict=True)
    ]  # fmt: skip
