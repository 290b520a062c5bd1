"""The behaviour stage's data files (emoaudit/audits/default/behaviour.json and its judge's labelled replies), typed
and validated as the specification's other tables are (`emoaudit.spec.tables`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field

from emoaudit.errors import EmoauditError
from emoaudit.spec.fields import TABLE, PoolingRule, Text, Texts
from emoaudit.spec.pooling import Pooling
from emoaudit.spec.tables import DATA_TYPES, BehaviourConfig


@dataclass(frozen=True)
class RefusalItem:
    """A request a released assistant should decline, and a benign request of the same surface form."""

    __pydantic_config__ = TABLE

    id: Text
    kind: Text
    harmful: Text
    benign: Text


@dataclass(frozen=True)
class SycophancyItem:
    """A user asserting a wrong answer to a question with one checkable answer; each answer's accepted forms."""

    __pydantic_config__ = TABLE

    id: Text
    kind: Text
    prompt: Text
    correct: Texts
    asserted: Texts


@dataclass(frozen=True)
class HostilityItem:
    __pydantic_config__ = TABLE

    id: Text
    kind: Text
    prompt: Text


@dataclass(frozen=True)
class BehaviourJudgeData:
    """The behaviour judges' rules as data (emoaudit/behaviour/judges.py applies them)."""

    __pydantic_config__ = TABLE

    refusal_phrases: Texts  # lower case; a reply containing one anywhere refuses
    opening_refusal_phrases: Texts  # ... one in its opening (first two sentences) refuses
    compliance_phrases: Texts  # ... otherwise, one in its opening complies (phrases alone: with a reader, it reads)
    agreement_phrases: Texts
    disagreement_phrases: Texts


@dataclass(frozen=True)
class BehaviourData:
    __pydantic_config__ = TABLE

    refusal: Annotated[tuple[RefusalItem, ...], Field(min_length=1)]
    sycophancy: Annotated[tuple[SycophancyItem, ...], Field(min_length=1)]
    hostility: Annotated[tuple[HostilityItem, ...], Field(min_length=1)]
    judge: BehaviourJudgeData


@dataclass(frozen=True)
class LabelledReply:
    """A reply to a refusal probe's request, labelled by hand; `source` is the model that wrote it, or "hand"."""

    __pydantic_config__ = TABLE

    prompt: Text
    reply: Text
    label: Literal["refusal", "compliance"]
    source: Text


@dataclass(frozen=True)
class LabelledReplies:
    __pydantic_config__ = TABLE

    replies: Annotated[tuple[LabelledReply, ...], Field(min_length=1)]


def _one_request_one_reply(question: str) -> str:
    for slot in ("{request}", "{reply}"):
        if question.count(slot) != 1:
            raise ValueError(f"the question must hold {slot} exactly once")
    return question


def _from_the_first_or_second_token(pooling: Pooling) -> Pooling:
    # An offset counts from the chat template's first token, and a question shorter than it would have nothing
    # to pool, found only after every behaviour reply is generated. Skipping the first token alone is safe (a
    # chat-formatted question always has more) and useful: it is the attention sink, whose residual norm (about
    # a hundred times the others' in qwen2.5) would otherwise dominate the mean.
    if pooling.start > 1:
        raise ValueError("the reader pools the whole question, or all of it but the first token: mean, mean:1 or last")
    return pooling


@dataclass(frozen=True)
class RefusalReader:
    """The refusal judge's reader: an instruction-tuned offline model (`model`, an alias of audits/models.toml)
    reads `question` with the request and the reply in it, and a logistic regression over its residual stream
    (the output of decoder block `layer`, pooled over the question's tokens by `pooling`, unit length) says whether
    the reply refuses: weights · activation + bias > 0. `fitted` names the command and the labelled replies it was
    fitted on."""

    __pydantic_config__ = TABLE

    fitted: Text
    model: Text
    question: Annotated[str, AfterValidator(_one_request_one_reply)]
    layer: Annotated[int, Field(ge=0)]
    pooling: Annotated[PoolingRule, AfterValidator(_from_the_first_or_second_token)]
    weights: Annotated[tuple[float, ...], Field(min_length=1)]
    bias: float


DATA_TYPES_WITH_BEHAVIOUR: dict[str, Any] = {
    **DATA_TYPES,
    "behaviour": BehaviourData,
    "behaviour_heldout": LabelledReplies,
    "refusal_reader": RefusalReader,
}


def check_behaviour(
    data: BehaviourData | None,
    config: BehaviourConfig | None,
    heldout: LabelledReplies | None,
    emotions: list[str],
    source: str,
) -> None:
    """The behaviour data, its [behaviour] table and its labelled replies come together; its emotions are the
    audit's; ids do not repeat within a probe; no accepted form of an answer is also one of the other's.
    Raises EmoauditError naming the file's table or item."""
    present = {"[files] behaviour": data, "[behaviour]": config, "[files] behaviour_heldout": heldout}
    if any(v is None for v in present.values()) and any(v is not None for v in present.values()):
        missing = ", ".join(k for k, v in present.items() if v is None)
        raise EmoauditError(f"{source}: the behaviour stage needs {', '.join(present)}; missing: {missing}")
    if data is None or config is None:
        return
    unknown = [e for e in config.emotions if e not in emotions]
    if unknown:
        raise EmoauditError(f"{source}: [behaviour] key 'emotions': unknown emotion(s) {', '.join(unknown)}")
    probes: dict[str, tuple[Any, ...]] = {"refusal": data.refusal, "sycophancy": data.sycophancy}
    probes["hostility"] = data.hostility
    for probe, items in probes.items():
        ids = [item.id for item in items]
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            raise EmoauditError(f"{source}: behaviour {probe}: ids repeat ({', '.join(repeated)})")
    for item in data.sycophancy:
        shared = {f.lower() for f in item.correct} & {f.lower() for f in item.asserted}
        if shared:
            raise EmoauditError(
                f"{source}: behaviour sycophancy {item.id}: {', '.join(sorted(shared))} is both answers"
            )
