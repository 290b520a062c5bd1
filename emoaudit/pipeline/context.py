"""What the stages of one audit share: the loaded model, the specification, timings and outputs."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from emoaudit.pipeline.options import AuditOptions
from emoaudit.results.common import Resources
from emoaudit.model.loaded import LoadedModel
from emoaudit.progress import Advance, ConsoleProgress, Progress
from emoaudit.spec import AuditSpec
from emoaudit.spec.tables import Profile


@dataclass
class Run:
    """What the stages share: the loaded model, the specification and where outputs go."""

    options: AuditOptions
    lm: LoadedModel
    spec: AuditSpec
    profile: Profile
    console: Console
    runtime_rss_bytes: int | None = None  # resident memory before the model was loaded
    timings: dict[str, float] = field(default_factory=dict)
    reused_memory: list[Resources] = field(default_factory=list)  # of the runs that made reused stages
    progress: Progress | None = None  # a line per stage on `console` unless given

    def __post_init__(self) -> None:
        if self.progress is None:
            self.progress = ConsoleProgress(self.console)

    @property
    def out(self) -> Path:
        return self.options.out

    @property
    def seed(self) -> int:
        return self.options.seed

    @contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        yield
        self.timings[stage] = self.timings.get(stage, 0.0) + time.perf_counter() - start

    def stage(self, description: str, total: float, unit: str = "") -> AbstractContextManager[Advance]:
        """A progress line for work of `total` units; the context gives the callback its loops advance."""
        assert self.progress is not None
        return self.progress.stage(description, total, unit)

    def kept(self, work: str) -> None:
        """Say that `work` (a stage, or a reading's activations) is written under OUT, for whoever streams it on."""
        assert self.progress is not None
        self.progress.kept(work)
