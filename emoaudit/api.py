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
    **options: Any,
) -> Results:
    """Audit `model` as `emoaudit scan` does; return the typed results document, findings included.

    `model` is what `scan` takes (offline alias, .gguf file, checkpoint directory, Hugging Face ID);
    `out` is written and resumed as `scan --out` is. `judge` is a judge's name as `--judge` takes, or any
    object with the `emoaudit.Judge` shape (`FixedJudge`, your own classifier). `options` are the other
    fields of `AuditOptions`: seed, device, dtype, spec_path, trust_remote_code, policy, stages,
    device_map, max_memory, disk_offload, quantize, norms.
    Progress goes to `console` (stderr if None). Nothing is gated here: `results.findings` holds every
    check, each with its severity and `failed`. Raises EmoauditError for bad input, TypeError for an unknown option.
    """
    from rich.console import Console

    from emoaudit.pipeline.options import AuditOptions
    from emoaudit.pipeline.run import audit as run_audit

    paths = {key: Path(options[key]) for key in ("spec_path", "policy", "norms") if options.get(key) is not None}
    settings = AuditOptions(model=model, out=Path(out), profile=profile, judge=judge, **(options | paths))
    return run_audit(settings, console or Console(stderr=True))
