"""Which model an audit read, and which audit it was: what results.json says of the model, and the key that
decides whether two runs are the same audit (resume, a study's reuse, the manifest).

An audit's identity is its content, never a spelling: the MODEL argument as typed is recorded beside it,
never compared, so `models/llama/` and its absolute path are one audit, and new weights in the same
folder are another."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Annotated, Literal

from pydantic import Field

from emoaudit.results.common import PositiveCount, Sha256
from emoaudit.results.convert import OMITTED_IF_NONE

SourceKind = Literal["alias", "gguf", "directory", "hub"]
DeviceMap = Literal["auto", "balanced", "balanced_low_0", "sequential"]  # accelerate's strategies
Quantization = Literal["4bit", "8bit"]  # bitsandbytes' schemes
GgufType = Annotated[str, Field(pattern=r"^[A-Z0-9_]+$")]  # general.file_type's name: Q4_1, Q4_K_M


@dataclass(frozen=True)
class ModelIdentity:
    """What the report says the audited model was; enough to tell two releases apart."""

    reference: str
    kind: SourceKind
    path: str | None
    revision: str | None
    sha256: Sha256 | None
    architecture: str
    model_type: str
    parameters: PositiveCount
    n_layers: PositiveCount
    hidden_size: PositiveCount
    dtype: str
    device: str  # where inputs enter: the input embedding's device
    # Left out of results.json on one device without quantisation, as in audits from before they existed.
    device_map: Annotated[DeviceMap | None, OMITTED_IF_NONE] = None  # accelerate's strategy, None for one device
    # modules per place (cpu, cuda:0, disk) under a device map
    placement: Annotated[dict[str, list[str]] | None, OMITTED_IF_NONE] = None
    # bitsandbytes scheme (4bit, 8bit): the vectors come from a quantised model
    quantization: Annotated[Quantization | None, OMITTED_IF_NONE] = None
    # a GGUF's quantisation type from its header (Q4_1, Q4_K_M): the weights were dequantised from it
    gguf_type: Annotated[GgufType | None, OMITTED_IF_NONE] = None

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class ModelContent:
    """What a model's numbers depend on, known before or after loading it."""

    sha256: str | None  # over every file that loads; None for a Hugging Face ID, named by its revision
    revision: str | None  # a hub commit; None for local files
    dtype: str  # as loaded (auto resolved: bfloat16, float32, ...)
    quantization: str | None  # bitsandbytes: 4bit, 8bit
    gguf_type: str | None  # the GGUF's own quantisation type, from its header

    @classmethod
    def of(cls, model: ModelIdentity) -> ModelContent:
        return cls(model.sha256, model.revision, model.dtype, model.quantization, model.gguf_type)


@dataclass(frozen=True)
class AuditIdentity:
    """Two runs with equal identities are the same audit: one resumes the other (run.json), a study reuses
    it, the manifest vouches for it. The judge keys the steering stage only (a stage reused under another
    judge is recomputed); the policy keys nothing (`report --policy` re-gates without the model) and is
    recorded in the manifest."""

    model: ModelContent
    specification_sha256: str
    profile: str
    seed: int
    steer_positions: str  # where steering adds its vector: all positions or the generated ones


@dataclass(frozen=True)
class RunRecord:
    """run.json: the audit's identity, and the MODEL argument as typed (recorded, never compared)."""

    identity: AuditIdentity
    model_reference: str
