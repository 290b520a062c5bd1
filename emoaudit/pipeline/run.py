"""The audit, top to bottom: load, extract by both methods, steer, look for leakage, gate, test the paper's
claims, write.

Each stage's output is written atomically under OUT, and a rerun with the same OUT picks up what
is already there. results.json is rewritten after every stage (with `complete: false` until the
end), so a crash in a later stage leaves the earlier stages' numbers readable.
"""

from __future__ import annotations

import json
import platform
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, TypeVar

import numpy as np
import torch
import transformers
from rich.console import Console

from emoaudit import __version__
from emoaudit.analysis.norms import Lexicon, check_coverage, norms_alignment, read_norms
from emoaudit.pipeline.context import Run
from emoaudit.pipeline.options import STAGES, AuditOptions
from emoaudit.pipeline.preflight import check_lengths, check_output, workload
from emoaudit.results.common import Resources
from emoaudit.results.convert import from_dict, to_dict
from emoaudit.results.document import RESULTS_SCHEMA_VERSION, AuditInfo, Environment, Results, Stages
from emoaudit.results.extraction import Extraction
from emoaudit.results.leakage import Leakage
from emoaudit.results.norms import Norms
from emoaudit.results.reading import read_json
from emoaudit.results.steering import Steering
from emoaudit.pipeline.stages import extraction_stage, leakage_stage, steering_stage
from emoaudit.errors import EmoauditError
from emoaudit.memory import release_free_memory, rss_high_water
from emoaudit.model.footprint import Workload
from emoaudit.model.load import LoadedModel, load_model
from emoaudit.export.manifest import AuditIdentity, write_manifest
from emoaudit.report.gating import evaluate
from emoaudit.report.policy import DEFAULT_POLICY, load_policy
from emoaudit.report.render import write_report
from emoaudit.spec import load_spec
from emoaudit.steering.judge_models import check_judge
from emoaudit.storage import sha256_file, write_json
from emoaudit.study.claims import load_claims, paper_claims
from emoaudit.study.evidence import evidence_of
from emoaudit.vectors import EmotionVectors

StageResults = TypeVar("StageResults", Extraction, Steering, Leakage)


def audit(options: AuditOptions, console: Console) -> Results:
    """Run the stages in order, each reusing what an earlier run finished; write results, findings and report.

    Raises EmoauditError for bad input (model, specification, policy, output directory).
    """
    started = datetime.now(UTC)
    spec = load_spec(options.spec_path)
    profile = spec.profile(options.profile)
    policy = load_policy(options.policy)
    policy_sha256 = sha256_file(options.policy or DEFAULT_POLICY)
    claims = load_claims()
    check_output(options.out)
    lexicon = read_norms(options.norms) if options.norms is not None else None
    if lexicon is not None:
        check_coverage(lexicon, spec.emotion_names)
    if "steering" in options.stages:  # a judge that cannot score the emotions, refused before any model loads
        check_judge(options.judge or spec.steering.judge, spec.emotion_names, spec.judge_prototypes)
    runtime_rss = rss_high_water()
    run = Run(options, load(options, console, workload(spec, profile)), spec, profile, console, runtime_rss)
    check_lengths(run.lm, spec, profile, options.stages)
    claim_output(run)
    done: dict[str, Any] = {}
    bodies: dict[str, tuple[type[Any], Callable[[], Any]]] = {
        "extraction": (Extraction, lambda: extraction_stage(run)),
        "steering": (Steering, lambda: steering_stage(run, done["extraction"])),
        "leakage": (Leakage, lambda: leakage_stage(run, done["steering"])),
    }
    for name in STAGES:
        if name in options.stages:
            done[name] = _stage(run, name, *bodies[name])
            partial = results_document(run, Stages(**done), started, complete=False)
            write_json(run.out / "results.json", to_dict(partial))
    document = results_document(run, Stages(**done), started, complete=True)
    findings = evaluate(document, policy)
    # The claims read the typed stages, reused or not: a resumed audit recomputes no stage for them.
    document = replace(document, findings=findings, claims=paper_claims(claims, evidence_of(document, findings)))
    if lexicon is not None and document.stages.extraction is not None:
        document = replace(document, norms=norms_of(run, lexicon, document.stages.extraction))
    write_json(run.out / "results.json", to_dict(document))
    write_report(run.out / "report.html", document, spec)
    write_manifest(
        run.out, AuditIdentity(run.lm.identity.reference, run.lm.identity.sha256, spec.sha256, policy_sha256)
    )
    return document


def norms_of(run: Run, lexicon: Lexicon, extraction: Extraction) -> Norms:
    """Both methods' vectors at the emotion layer, from the files the extraction wrote, against the
    lexicon: computed on every run, so norms given to a resumed audit apply without recomputing a stage."""
    layer = extraction.layer
    vectors = {
        method: EmotionVectors.load(run.out / path).vectors[:, layer].numpy().astype(np.float64)
        for method, path in extraction.vectors.items()
    }
    return norms_alignment(lexicon, extraction.emotions, vectors, layer)


def load(options: AuditOptions, console: Console, workload: Workload | None = None) -> LoadedModel:
    return load_model(
        options.model,
        device=options.device,
        dtype=options.dtype,
        trust_remote_code=options.trust_remote_code,
        console=console,
        placement=options.placement,
        workload=workload,
    )


def claim_output(run: Run) -> None:
    """Refuse to mix two different audits in one output directory; otherwise, resume it."""
    key = {
        "model": run.lm.identity.reference,
        "sha256": run.lm.identity.sha256,
        "revision": run.lm.identity.revision,
        "spec_sha256": run.spec.sha256,
        "profile": run.profile.name,
        "seed": run.options.seed,
        "dtype": run.lm.identity.dtype,
        "steer_positions": run.options.steer_positions,
    }
    if run.lm.identity.quantization:  # quantised weights give other vectors; key absent otherwise (older runs resume)
        key["quantization"] = run.lm.identity.quantization
    path = run.out / "run.json"
    if path.is_file():
        previous = json.loads(path.read_text(encoding="utf-8"))
        if previous != key:
            changed = ", ".join(k for k in key if previous.get(k) != key[k])
            raise EmoauditError(f"{run.out} holds another audit (different {changed}); pass a new --out")
        run.console.print(f"resuming the audit in {run.out}")
    write_json(path, key)


def _stage(run: Run, name: str, kind: type[StageResults], compute: Callable[[], StageResults]) -> StageResults:
    """A stage's results, from its file when an earlier run finished it (with that run's timings)."""
    path = run.out / "stages" / f"{name}.json"
    if path.is_file():
        run.console.print(f"{name}: done in an earlier run, reusing {path}")
        reused = from_dict(kind, read_json(path), f"{path} cannot be reused (pass a new --out)")
        run.timings.update(reused.timings)
        if reused.resources is not None:
            run.reused_memory.append(reused.resources)
        return reused
    before = set(run.timings)
    with run.timed(name):
        result = compute()
    release_free_memory()  # what the stage freed, before the next one runs on top of it
    timings = {k: v for k, v in run.timings.items() if k not in before}
    result = replace(result, timings=timings, resources=memory(run))
    write_json(path, to_dict(result))
    return result


def results_document(run: Run, stages: Stages, started: datetime, complete: bool) -> Results:
    return Results(
        schema_version=RESULTS_SCHEMA_VERSION,
        complete=complete,
        model=run.lm.identity,
        audit=AuditInfo(
            name=run.spec.name,
            path=str(run.spec.path),
            sha256=run.spec.sha256,
            profile=run.profile.name,
            seed=run.options.seed,
        ),
        stages=stages,
        timings={k: round(v, 3) for k, v in run.timings.items()},
        # A resumed audit's peak is that of whichever run, this one or one that made a reused stage, went highest.
        resources=max([memory(run), *run.reused_memory], key=lambda m: m.peak_rss_bytes or 0),
        environment=Environment(
            emoaudit=__version__,
            torch=str(torch.__version__),  # a str subclass; the JSON wants the plain string
            transformers=transformers.__version__,
            python=platform.python_version(),
            machine=platform.machine(),
            threads=torch.get_num_threads(),
        ),
        started=started.isoformat(timespec="seconds"),
        finished=datetime.now(UTC).isoformat(timespec="seconds"),
    )


def memory(run: Run) -> Resources:
    """High-water marks: this process's resident memory, and before the model (interpreter and libraries),
    and the CUDA allocator's where it ran."""
    cuda = int(torch.cuda.max_memory_allocated(run.lm.device)) if run.lm.device.type == "cuda" else None
    return Resources(peak_rss_bytes=rss_high_water(), runtime_rss_bytes=run.runtime_rss_bytes, peak_cuda_bytes=cuda)
