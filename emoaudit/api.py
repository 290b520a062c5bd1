"""The Python API: one audit as one function call, for notebooks and scripts.

`emoaudit.audit(...)` is this function; `emoaudit.EmotionVectors`
loads an audit's vectors and steers any supported transformers model with them; `emoaudit.load_pretrained`
gives the transformers model and tokenizer an audit read, from the cache, offline.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from emoaudit.results.document import Results
    from emoaudit.steering.judge import Judge


def audit(
    model: str,
    profile: str = "standard",
    out: str | Path = "emoaudit-out",
    *,
    judge: str | Judge | None = None,
    console: Console | None = None,
    stages: Sequence[str] | None = None,
    **options: Any,
) -> Results:
    """Audit `model` as `emoaudit scan` does; return the typed results document, findings included.

    `model` is what `scan` takes (offline alias, .gguf file, checkpoint directory, Hugging Face ID);
    `out` is written and resumed as `scan --out` is. `judge` is a judge's name as `--judge` takes, or any
    object with the `emoaudit.Judge` shape (`FixedJudge`, your own classifier). `stages` runs some of
    extraction, steering, leakage and behaviour (each needs those before it, except that behaviour does not
    need leakage; behaviour runs where the profile asks for it). `options` are the model and audit options
    of the table in `emoaudit.options`, as `scan` takes them: seed, device, dtype, spec_path,
    trust_remote_code, policy, device_map, max_memory, disk_offload, quantize, steer_positions, norms.
    Progress goes to `console` (stderr if None). Nothing is gated here: `results.findings` holds every
    check, each with its severity and `failed`. Raises EmoauditError for bad input (before any model
    work for a bad option or stages), TypeError for an unknown option, ValueError for a value of the wrong
    type.
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
        stages=STAGES if stages is None else stages,
    )
    return run_audit(settings, console or Console(stderr=True))


def load_pretrained(
    model_or_audit: str | Path, *, device: str = "cpu", dtype: str | None = None
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The transformers model and tokenizer of an audit, loaded offline from emoaudit's cache.

    `model_or_audit` is an audit's output folder or its results.json (the model it audited, in the dtype
    it ran, checked against the sha256 it recorded), or anything `scan` takes (an offline alias such as
    `smollm2-135m`, a .gguf file, a checkpoint directory, a Hugging Face ID). `dtype` defaults to the
    audit's (else "auto"). Not `emoaudit.model.load_model`, which wraps the model for the audit's stages.
    Raises EmoauditError when the model cannot load or is not the one the audit read.
    """
    from emoaudit.errors import EmoauditError
    from emoaudit.model.load import load_model
    from emoaudit.results.reading import read_json

    path = Path(model_or_audit)
    results = path / "results.json" if path.is_dir() and (path / "results.json").is_file() else path
    if results.name == "results.json" and results.is_file():
        recorded = read_json(results)["model"]
        lm = load_model(recorded["reference"], device=device, dtype=dtype or recorded["dtype"])
        if lm.identity.sha256 != recorded["sha256"]:
            raise EmoauditError(
                f"{recorded['reference']} now has sha256 {lm.identity.sha256}, not the audited {recorded['sha256']}"
            )
    else:
        lm = load_model(str(model_or_audit), device=device, dtype=dtype or "auto")
    return lm.model, lm.tokenizer
