"""What one audit is asked to do: the model, where its outputs go, and how it runs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from emoaudit.errors import EmoauditError
from emoaudit.model.placement import Placement, parse_max_memory
from emoaudit.steering.judge import Judge
from emoaudit.steering.trials import POSITIONS

STAGES = ("extraction", "steering", "leakage")
# numpy's legacy generators and scikit-learn's random_state take seeds in 0..2**32 - 1.
MAX_SEED = 2**32 - 1


@dataclass(frozen=True)
class AuditOptions:
    """The options of `emoaudit scan` (and of `emoaudit.audit`), before anything is loaded."""

    model: str
    out: Path
    profile: str = "standard"
    seed: int = 0
    device: str = "auto"
    dtype: str = "auto"
    spec_path: Path | None = None
    trust_remote_code: bool = False
    judge: str | Judge | None = None  # overrides the specification's judge: a name, or a Judge object
    policy: Path | None = None  # release-gating policy; the built-in one if None
    stages: tuple[str, ...] = STAGES
    device_map: str | None = None  # accelerate's: auto, balanced, balanced_low_0, sequential
    max_memory: str | None = None  # budgets per device, "0=70GiB,1=70GiB,cpu=200GiB"
    disk_offload: bool = True  # under a device map, weights past every budget go to disk
    quantize: str | None = None  # bitsandbytes: 4bit or 8bit (CUDA only)
    steer_positions: str = "all"  # where steering adds its vector: "all" positions or the "generated" ones
    norms: Path | None = None  # a user's valence/arousal lexicon (NRC VAD or Warriner et al.), read before loading

    def __post_init__(self) -> None:
        """Raises EmoauditError for a seed numpy cannot take, an unknown --steer-positions or a malformed
        placement, before anything is loaded."""
        if not 0 <= self.seed <= MAX_SEED:
            raise EmoauditError(f"--seed must be in 0..{MAX_SEED} (numpy's seed range), not {self.seed}")
        if self.steer_positions not in POSITIONS:
            raise EmoauditError(f"--steer-positions must be {' or '.join(POSITIONS)}, not {self.steer_positions!r}")
        _ = self.placement

    @property
    def placement(self) -> Placement:
        return Placement(self.device_map, parse_max_memory(self.max_memory), self.disk_offload, self.quantize)  # type: ignore[arg-type]
