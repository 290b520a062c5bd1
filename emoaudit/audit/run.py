"""The audit, top to bottom: load, extract by both methods, steer, look for leakage, gate, write.

Each stage's output is written atomically under OUT, and a rerun with the same OUT picks up what
is already there. results.json is rewritten after every stage (with `complete: false` until the
end), so a crash in a later stage leaves the earlier stages' numbers readable.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from rich.console import Console

from emoaudit.audit.context import Run
from emoaudit.audit.options import STAGES, AuditOptions
from emoaudit.audit.preflight import check_lengths, check_output, workload
from emoaudit.audit.results import memory, results_document
from emoaudit.audit.stages import extraction_stage, leakage_stage, steering_stage
from emoaudit.errors import EmoauditError
from emoaudit.memory import release_free_memory, rss_high_water
from emoaudit.model.footprint import Workload
from emoaudit.model.load import LoadedModel, load_model
from emoaudit.export.manifest import AuditIdentity, write_manifest
from emoaudit.report.gating import DEFAULT_POLICY, Check, evaluate, load_policy
from emoaudit.report.render import write_report
from emoaudit.spec import load_spec
from emoaudit.steering.judge_models import check_judge
from emoaudit.storage import sha256_file, write_json


def audit(options: AuditOptions, console: Console) -> tuple[dict[str, Any], list[Check]]:
    """Run the stages in order, each reusing what an earlier run finished; write results, findings and report.

    Raises EmoauditError for bad input (model, specification, policy, output directory).
    """
    started = datetime.now(UTC)
    spec = load_spec(options.spec_path)
    profile = spec.profile(options.profile)
    policy = load_policy(options.policy)
    policy_sha256 = sha256_file(options.policy or DEFAULT_POLICY)
    check_output(options.out)
    if "steering" in options.stages:  # a judge that cannot score the emotions, refused before any model loads
        check_judge(options.judge or spec.steering.judge, spec.emotion_names, spec.judge_prototypes)
    runtime_rss = rss_high_water()
    run = Run(options, load(options, console, workload(spec, profile)), spec, profile, console, runtime_rss)
    check_lengths(run.lm, spec, profile, options.stages)
    claim_output(run)
    done: dict[str, Any] = {}
    bodies: dict[str, Callable[[], dict[str, Any]]] = {
        "extraction": lambda: extraction_stage(run),
        "steering": lambda: steering_stage(run, done["extraction"]),
        "leakage": lambda: leakage_stage(run, done["steering"]),
    }
    for name in STAGES:
        if name in options.stages:
            done[name] = _stage(run, name, bodies[name])
            write_json(run.out / "results.json", results_document(run, done, started, complete=False))
    document = results_document(run, done, started, complete=True)
    checks = evaluate(document, policy)
    document["findings"] = [c.to_dict() for c in checks]
    write_json(run.out / "results.json", document)
    write_report(run.out / "report.html", document, checks, spec)
    write_manifest(
        run.out, AuditIdentity(run.lm.identity.reference, run.lm.identity.sha256, spec.sha256, policy_sha256)
    )
    return document, checks


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


def _stage(run: Run, name: str, compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """A stage's results, from its file when an earlier run finished it (with that run's timings)."""
    path = run.out / "stages" / f"{name}.json"
    if path.is_file():
        run.console.print(f"{name}: done in an earlier run, reusing {path}")
        result: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        run.timings.update(result.get("timings", {}))
        if "resources" in result:
            run.reused_memory.append(result["resources"])
        return result
    before = set(run.timings)
    with run.timed(name):
        result = compute()
    release_free_memory()  # what the stage freed, before the next one runs on top of it
    result["timings"] = {k: v for k, v in run.timings.items() if k not in before}
    result["resources"] = memory(run)
    write_json(path, result)
    return result
