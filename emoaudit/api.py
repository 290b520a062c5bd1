"""The Python API: one audit as one function call, for notebooks and scripts.

`emoaudit.audit(...)` is this function; `emoaudit.EmotionVectors`
loads an audit's vectors and steers any supported transformers model with them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

    from emoaudit.results.document import Results
    from emoaudit.steering.judge import Judge


def audit(
    model: str,
    profile: str = "standard",
    out: str | Path = "emoaudit-out",
    *,
    judge: str | Judge | None = None,
    console: Console | None = None,
    stages: tuple[str, ...] | None = None,
    **options: Any,
) -> Results:
    """Audit `model` as `emoaudit scan` does; return the typed results document, findings included.

    `model` is what `scan` takes (offline alias, .gguf file, checkpoint directory, Hugging Face ID);
    `out` is written and resumed as `scan --out` is. `judge` is a judge's name as `--judge` takes, or any
    object with the `emoaudit.Judge` shape (`FixedJudge`, your own classifier). `stages` runs some of
    extraction, steering and leakage (each needs those before it). `options` are the model and audit
    options of the table in `emoaudit.options`, as `scan` takes them: seed, device, dtype, spec_path,
    trust_remote_code, policy, device_map, max_memory, disk_offload, quantize, steer_positions,
    norms.
    Progress goes to `console` (stderr if None). Nothing is gated here: `results.findings` holds every
    check, each with its severity and `failed`. Raises EmoauditError for bad input (before any model
    work for a bad option), TypeError for an unknown option or one of the wrong type.
    """
    from rich.console import Console

    from emoaudit.pipeline.options import STAGES, audit_options
    from emoaudit.pipeline.run import audit as run_audit

    named = {"judge": judge} if isinstance(judge, str) else {}
    settings = audit_options(
        model,
        Path(out),
        {"profile": profile, **named, **options},
        judge=None if isinstance(judge, str) else judge,
        stages=STAGES if stages is None else tuple(stages),
    )
    return run_audit(settings, console or Console(stderr=True))
