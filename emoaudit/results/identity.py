"""Which model an audit read, and which audit it was: what results.json says of the model, and the key that
decides whether two runs are the same audit (resume, study reuse, the manifest)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Annotated, Literal

from emoaudit.results.convert import OMITTED_IF_NONE

SourceKind = Literal["alias", "gguf", "directory", "hub"]


@dataclass(frozen=True)
class ModelIdentity:
    """What the report says the audited model was; enough to tell two releases apart."""

    reference: str
    kind: SourceKind
    path: str | None
    revision: str | None
    sha256: str | None
    architecture: str
    model_type: str
    parameters: int
    n_layers: int
    hidden_size: int
    dtype: str
    device: str  # where inputs enter: the input embedding's device
    # Left out of results.json on one device without quantisation, as in audits from before they existed.
    device_map: Annotated[str | None, OMITTED_IF_NONE] = None  # accelerate's strategy, None for one device
    # modules per place (cpu, cuda:0, disk) under a device map
    placement: Annotated[dict[str, list[str]] | None, OMITTED_IF_NONE] = None
    # bitsandbytes scheme (4bit, 8bit): the vectors come from a quantised model
    quantization: Annotated[str | None, OMITTED_IF_NONE] = None

    def to_dict(self) -> dict[str, object]:
        return asdict(self)
