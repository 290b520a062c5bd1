"""What was audited, in words and as a command: the weights' quantisation and the reproduce line.

Every option that keys the audit (model, profile, seed, dtype, judge, specification, steering positions,
bitsandbytes quantisation; `extract` for an extraction-only audit) is on the reproduce line, read from the
results themselves, so the line reruns the same audit wherever results.json travels.
"""

from __future__ import annotations

import shlex
from dataclasses import fields

from emoaudit.results.document import Results


def weights_note(results: Results) -> str | None:
    """One sentence on audited weights that are not the full-precision release, None otherwise."""
    notes = []
    kind = results.model.gguf_type
    if kind is not None:
        notes.append(
            f"The audited weights are a GGUF of quantisation type {kind}, dequantised to "
            f"{results.model.dtype} for the audit: the findings are of these weights, not of the full-precision "
            "release."
        )
    if results.model.quantization:
        notes.append(
            f"The model ran quantised to {results.model.quantization} with bitsandbytes: the vectors may differ "
            "from those of the released weights."
        )
    return " ".join(notes) or None


def reproduce_command(results: Results) -> str:
    """`emoaudit scan ...` with every option that keys this audit, shell-quoted."""
    model, audit = results.model, results.audit
    run = [f.name for f in fields(results.stages) if getattr(results.stages, f.name) is not None]
    command = "extract" if run == ["extraction"] else "scan"  # the commands that run these stages
    args = ["emoaudit", command, model.reference, "--profile", audit.profile, "--seed", str(audit.seed)]
    args += ["--dtype", model.dtype, "--spec", audit.path]
    steering = results.stages.steering
    if steering is not None:
        args += ["--judge", steering.judge.name, "--steer-positions", steering.steer_positions]
    if model.quantization:
        args += ["--quantize", model.quantization]
    return shlex.join(args)
