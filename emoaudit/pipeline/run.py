"""The audit, top to bottom: load, extract by both methods, steer, look for leakage, gate, test the paper's
claims, write.

Each stage's output is written atomically under OUT, and a rerun with the same OUT picks up what
is already there. results.json is rewritten after every stage (with `complete: false` until the
end), so a crash in a later stage leaves the earlier stages' numbers readable.
"""

from __future__ import annotations

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
from emoaudit.pipeline.estimate import estimate
from emoaudit.pipeline.preflight import check_lengths, check_output, fetch_judge, fetch_reader, workload
from emoaudit.results.common import Resources
from emoaudit.results.convert import from_dict, to_dict
from emoaudit.results.document import RESULTS_SCHEMA_VERSION, AuditInfo, Environment, Results, Stages
from emoaudit.results.extraction import Extraction
from emoaudit.results.leakage import Leakage
from emoaudit.results.norms import Norms
from emoaudit.results.reading import read_json
from emoaudit.results.steering import Steering
from emoaudit.progress import Progress, note
from emoaudit.pipeline.stages import extraction_stage, leakage_stage, steering_stage
from emoaudit.pipeline.behaviour import behaviour_stage, runs_behaviour
from emoaudit.results.behaviour import Behaviour
from emoaudit.memory import release_free_memory, rss_high_water
from emoaudit.model.footprint import Workload
from emoaudit.model.load import load_model
from emoaudit.model.loaded import LoadedModel
from emoaudit.pipeline.outputs import write_outputs
from emoaudit.pipeline.identity import audit_identity, claim_output, judge_name
from emoaudit.results.identity import ModelContent, RunRecord
from emoaudit.report.gating import evaluate
from emoaudit.report.policy import DEFAULT_POLICY, load_policy
from emoaudit.spec import load_spec
from emoaudit.steering.judge_models import check_judge
from emoaudit.storage import sha256_file, write_json
from emoaudit.report.claims import load_claims, paper_claims
from emoaudit.report.evidence import evidence_of
from emoaudit.vectors import EmotionVectors

StageResults = TypeVar("StageResults", Extraction, Steering, Leakage, Behaviour)


def audit(options: AuditOptions, console: Console, progress: Progress | None = None) -> Results:
    """Run the stages in order, each reusing what an earlier run finished; write results, findings and report.

    `progress` shows each stage's work (a line on `console` if None) and is told each stage finished now
    (`Progress.kept`), once its files and the partial results.json are written. Raises EmoauditError for
    bad input (model, specification, policy, output directory).
    """
    started = datetime.now(UTC)
    spec = load_spec(options.spec_path)
    profile = spec.profile(options.profile)
    policy = load_policy(options.policy)
    policy_sha256 = sha256_file(options.policy or DEFAULT_POLICY)
    claims = load_claims()
    check_output(options.out)
    options.outputs.check()
    judge = options.judge or spec.steering.judge
    lexicon = read_norms(options.norms) if options.norms is not None else None
    if lexicon is not None:
        check_coverage(lexicon, spec.emotion_names)
    if "steering" in options.stages:  # a judge that cannot score the emotions, refused before any model loads
        check_judge(judge, spec.emotion_names, spec.judge_prototypes)
        fetch_judge(judge, console)
    reader = None
    if "behaviour" in options.stages and runs_behaviour(spec, profile):
        reader = fetch_reader(spec, console)
    runtime_rss = rss_high_water()
    lm = load(options, console, workload(spec, profile, reader))
    run = Run(options, lm, spec, profile, console, runtime_rss, progress=progress)
    check_lengths(run.lm, spec, profile, options.stages)
    # Only a person at a terminal reads the estimate; a resumed audit near its end needs none.
    if console.is_terminal and not (options.out / "stages" / "steering.json").is_file():
        with run.stage("measuring this machine's throughput", 2, "probes") as advance:
            judged_by = judge if isinstance(judge, str) else ""
            probed = estimate(run.lm, spec, profile, options.stages, judged_by, advance, reader)
        note(console, probed.line())
    identity = audit_identity(ModelContent.of(run.lm.identity), spec, options)
    claim_output(options.out, RunRecord(identity, run.lm.identity.reference), console)
    done: dict[str, Any] = {}
    bodies: dict[str, tuple[type[Any], Callable[[], Any]]] = {
        "extraction": (Extraction, lambda: extraction_stage(run)),
        "steering": (Steering, lambda: steering_stage(run, done["extraction"])),
        "leakage": (Leakage, lambda: leakage_stage(run, done["steering"])),
        "behaviour": (Behaviour, lambda: behaviour_stage(run, done["steering"])),
    }
    fresh = False  # a stage computed now: those after it read it, so none of theirs is reused
    for name in STAGES:
        if name in options.stages and (name != "behaviour" or runs_behaviour(spec, profile)):
            done[name], reused = _stage(run, name, *bodies[name], may_reuse=not fresh)
            fresh = fresh or not reused
            partial = results_document(run, Stages(**done), started, complete=False)
            write_json(run.out / "results.json", to_dict(partial))
            if not reused:
                run.kept(name)
    document = results_document(run, Stages(**done), started, complete=True)
    findings = evaluate(document, policy)
    # The claims read the typed stages, reused or not: a resumed audit recomputes no stage for them.
    document = replace(document, findings=findings, claims=paper_claims(claims, evidence_of(document, findings)))
    if lexicon is not None and document.stages.extraction is not None:
        document = replace(document, norms=norms_of(run, lexicon, document.stages.extraction))
    record = RunRecord(identity, run.lm.identity.reference)
    write_outputs(run.out, document, spec, policy, policy_sha256, options.outputs, options.fail_on, record)
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


def _stage(
    run: Run, name: str, kind: type[StageResults], compute: Callable[[], StageResults], may_reuse: bool
) -> tuple[StageResults, bool]:
    """A stage's results, and whether they were reused: from its file when an earlier run of this audit
    finished it (with that run's timings), unless an earlier stage was computed now or, for steering and
    behaviour, another judge scored it (the judge keys those stages alone)."""
    path = run.out / "stages" / f"{name}.json"
    if may_reuse and path.is_file():
        reused = from_dict(kind, read_json(path), f"{path} cannot be reused (pass a new --out)")
        judged_by = _judged_by(reused)
        if judged_by is None or judged_by == judge_name(run.options, run.spec):
            run.console.print(f"{name}: done in an earlier run, reusing {path}")
            run.timings.update(reused.timings)
            if reused.resources is not None:
                run.reused_memory.append(reused.resources)
            return reused, True
        run.console.print(f"{name}: done in an earlier run with the judge {judged_by}; running it again")
    before = set(run.timings)
    with run.timed(name):
        result = compute()
    release_free_memory()  # what the stage freed, before the next one runs on top of it
    timings = {k: v for k, v in run.timings.items() if k not in before}
    result = replace(result, timings=timings, resources=memory(run))
    write_json(path, to_dict(result))
    return result, False


def _judged_by(stage: Extraction | Steering | Leakage | Behaviour) -> str | None:
    """The judge a stage's results were scored by: steering's and behaviour's; None for the others."""
    if isinstance(stage, Steering):
        return stage.judge.name
    return stage.judge if isinstance(stage, Behaviour) else None


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
