"""The results document, results.json: the model, the audit, each stage's results, findings, timings, resources."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Final, Literal

from pydantic import ConfigDict

from emoaudit.results.behaviour import Behaviour
from emoaudit.results.claims import PaperClaims
from emoaudit.results.common import Check, DateTime, NonNegative, Resources, Sha256
from emoaudit.results.convert import OMITTED_IF_NONE
from emoaudit.results.extraction import Extraction
from emoaudit.results.identity import ModelIdentity
from emoaudit.results.leakage import Leakage
from emoaudit.results.norms import Norms
from emoaudit.results.steering import Steering

# 2.0: the steering stage's random-direction controls, statistics and judge validation (issue 14) and
# the extraction stage's embedding-layer baseline and held-out sets (issue 19).
RESULTS_SCHEMA_VERSION: Final = "2.0"
SchemaVersion = Literal["2.0"]  # RESULTS_SCHEMA_VERSION: mypy refuses a Results that writes another


@dataclass(frozen=True)
class AuditInfo:
    """Which audit ran: the specification (by path and content hash), the profile and the seed."""

    name: str
    path: str
    sha256: Sha256
    profile: str
    seed: int


@dataclass(frozen=True)
class Environment:
    emoaudit: str
    torch: str
    transformers: str
    python: str
    machine: str
    threads: int


@dataclass(frozen=True, kw_only=True)
class Stages:
    """The stages that have run; a stage that has not is absent from the JSON."""

    extraction: Annotated[Extraction | None, OMITTED_IF_NONE] = None
    steering: Annotated[Steering | None, OMITTED_IF_NONE] = None
    leakage: Annotated[Leakage | None, OMITTED_IF_NONE] = None
    behaviour: Annotated[Behaviour | None, OMITTED_IF_NONE] = None

    __pydantic_config__ = ConfigDict(extra="forbid")


@dataclass(frozen=True, kw_only=True)
class Results:
    """results.json. `complete` is false while stages are still to run; `findings` and `claims` are absent
    until the policy and the claims file have been applied. Timestamps are ISO 8601 in UTC, timings in
    seconds by stage and step."""

    schema_version: SchemaVersion
    complete: bool
    model: ModelIdentity
    audit: AuditInfo
    stages: Stages
    timings: dict[str, NonNegative]
    resources: Annotated[Resources | None, OMITTED_IF_NONE] = None  # absent in audits from before it was measured
    environment: Environment
    started: DateTime
    finished: DateTime
    findings: Annotated[list[Check] | None, OMITTED_IF_NONE] = None
    # The paper's claims tested on this model, with the findings; absent in results written before it.
    claims: Annotated[PaperClaims | None, OMITTED_IF_NONE] = None
    # The vectors against the human norms of `--norms FILE`; absent when none were given.
    norms: Annotated[Norms | None, OMITTED_IF_NONE] = None

    __pydantic_config__ = ConfigDict(extra="forbid")
