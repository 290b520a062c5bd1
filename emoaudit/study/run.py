"""A study from top to bottom: check the inputs, audit the models not finished yet, compare, write."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, replace
from typing import Literal
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from emoaudit.escaping import console_text

from emoaudit import __version__
from emoaudit.analysis.norms import check_coverage, read_norms
from emoaudit.pipeline.options import AuditOptions
from emoaudit.errors import EmoauditError
from emoaudit.report.policy import DEFAULT_POLICY, Policy, load_policy
from emoaudit.spec import AuditSpec, load_spec
from emoaudit.storage import sha256_file, write_json
from emoaudit.report.claims import DEFAULT_CLAIMS, Subject, evaluate_claims, load_claims
from emoaudit.report.evidence import read_evidence
from emoaudit.pipeline.behaviour import runs_behaviour
from emoaudit.study.evidence import changed, is_finished
from emoaudit.pipeline.identity import audit_identity, judge_name
from emoaudit.results.identity import AuditIdentity
from emoaudit.study.attempt import Attempt
from emoaudit.study.executors import RayResources, run_local, run_ray
from emoaudit.study.render import write_study_report
from emoaudit.results.common import FailLevel
from emoaudit.results.convert import to_dict
from emoaudit.results.study import (
    CORRECTION,
    STUDY_SCHEMA_VERSION,
    AuditedModel,
    Correction,
    Executor,
    ModelEntry,
    Study,
    StudyAudit,
    audited_model,
    failed_model,
)
from emoaudit.study.study import corrected_p_values, families, gate
from emoaudit.study.targets import Target, check_slugs


@dataclass(frozen=True)
class StudyRequest:
    """What `emoaudit study` is asked: the models, the study directory, how every model is audited
    (`template`: AuditOptions whose model and out each model replaces) and where the audits run."""

    targets: list[Target]
    out: Path
    template: AuditOptions
    ray: RayResources | None  # None: the local executor
    fail_on: FailLevel


def run_study(request: StudyRequest, console: Console) -> Study:
    """Audit every model not finished yet, then write OUT/study.json and OUT/study.html.

    Raises EmoauditError for bad input shared by every model (specification, profile, policy, claims, norms,
    output directory, an unreachable Ray cluster); a model's own failure is recorded in the study instead.
    """
    started = datetime.now(UTC)
    options, out = request.template, request.out
    spec = load_spec(options.spec_path)
    profile = spec.profile(options.profile)
    policy = load_policy(options.policy)
    claims = load_claims()
    lexicon = read_norms(options.norms) if options.norms is not None else None
    if lexicon is not None:  # a bad norms file is every model's bad input: refused before any audit
        check_coverage(lexicon, spec.emotion_names)
    norms_sha256 = lexicon.sha256 if lexicon is not None else None
    if out.exists() and not out.is_dir():
        raise EmoauditError(f"--out {out} is a file, not a directory")
    check_slugs(request.targets, out)
    out.mkdir(parents=True, exist_ok=True)
    todo = []
    for target in request.targets:
        folder = out / target.slug
        identity = _identity(target, options, spec)
        if identity is not None and is_finished(
            folder, identity, judge_name(options, spec), norms_sha256, runs_behaviour(spec, profile)
        ):
            console.print(
                f"study: {console_text(target.reference)} finished in an earlier run, reusing {target.slug}/",
                soft_wrap=True,
            )
            continue
        stale = changed(folder, identity) if identity is not None else []
        if stale:  # the audit there is of other weights, dtype, ...: its evidence is not this model's
            console.print(
                f"study: {console_text(target.reference)} differs from its audit in {target.slug}/ "
                f"({', '.join(stale)}); auditing it again",
                soft_wrap=True,
            )
            shutil.rmtree(folder)
        todo.append(target)
    if not todo:  # nothing to audit: no Ray instance to start either
        attempts = {}
    elif request.ray is None:
        attempts = run_local(todo, options, out, console)
    else:
        attempts = run_ray(todo, options, out, console, request.ray)
    entries = [_entry(target, attempts.get(target.slug), out, policy) for target in request.targets]
    corrected = corrected_p_values({e.slug: e.evidence for e in entries if e.evidence is not None})
    entries = [replace(e, corrected_p=corrected[e.slug]) if isinstance(e, AuditedModel) else e for e in entries]
    study = Study(
        schema_version=STUDY_SCHEMA_VERSION,
        executor=_executor(request.ray),
        audit=StudyAudit(
            specification=spec.name,
            specification_sha256=spec.sha256,
            profile=profile.name,
            seed=options.seed,
            device=options.device,
            dtype=options.dtype,
            judge=judge_name(options, spec),
            policy_sha256=sha256_file(options.policy or DEFAULT_POLICY),
            claims_sha256=sha256_file(DEFAULT_CLAIMS),
            emoaudit=__version__,
        ),
        models=entries,
        correction=Correction(
            method=CORRECTION,
            applies_to="each audited model's generation-against-comprehension Mann-Whitney p",
            tests=len(corrected),
        ),
        families=families(entries),
        claims=evaluate_claims(claims, [Subject(e.slug, e.evidence, e.corrected_p) for e in entries]),
        gate=gate(entries, request.fail_on),
        started=started.isoformat(timespec="seconds"),
        finished=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    write_json(out / "study.json", to_dict(study))
    write_study_report(out / "study.html", study)
    return study


def _entry(target: Target, attempt: Attempt | None, out: Path, policy: Policy) -> ModelEntry:
    """A model's entry: reused or audited now, with its evidence; failed when its audit or its results fail."""
    status: Literal["reused", "audited"] = "reused" if attempt is None else "audited"
    seconds = None if attempt is None else round(attempt.seconds, 1)
    if attempt is not None and attempt.error is not None:
        return failed_model(target.reference, target.slug, seconds, attempt.error, attempt.error_kind or "internal")
    try:
        evidence = read_evidence(out / target.slug / "results.json", policy)
    except EmoauditError as exc:
        return failed_model(target.reference, target.slug, seconds, str(exc), "input")
    return audited_model(target.reference, target.slug, status, seconds, evidence)


def _executor(ray: RayResources | None) -> Executor:
    if ray is None:
        return Executor("local", None, None, None)
    return Executor("ray", ray.address, ray.cpus_per_model, ray.gpus_per_model)


def _identity(target: Target, options: AuditOptions, spec: AuditSpec) -> AuditIdentity | None:
    """The identity auditing `target` would have, from its files (hashed) without loading it; None where the
    model cannot be resolved (its audit then reports why)."""
    from emoaudit.model.source import model_content

    try:
        content = model_content(target.reference, options.device, options.dtype, options.placement.quantize)
    except EmoauditError:
        return None
    return audit_identity(content, spec, options)
