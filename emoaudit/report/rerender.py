"""Findings and report again from a results file, without running the model."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from emoaudit.results.convert import to_dict
from emoaudit.results.document import Results
from emoaudit.results.reading import read_results
from emoaudit.errors import EmoauditError
from emoaudit.report.gating import evaluate
from emoaudit.report.policy import Policy
from emoaudit.report.render import write_report
from emoaudit.spec import AuditSpec, load_spec
from emoaudit.storage import write_json
from emoaudit.report.claims import load_claims, paper_claims
from emoaudit.report.evidence import evidence_of


def rerender(path: Path, report: Path, policy: Policy, results_out: Path | None) -> Results:
    """Findings, the paper's claims and report again from the results file at `path`: a changed policy
    applies without rerunning the model. `path` is only read; the results with their new findings are written to
    `results_out` when given (which the caller may make `path` itself, on request).

    Raises EmoauditError for a bad results file; OSError for an unwritable output.
    """
    claims = load_claims()
    document = read_results(path)
    findings = evaluate(document, policy)
    # The claims too, from this emoaudit's claims file: results written before them get them as well.
    document = replace(document, findings=findings, claims=paper_claims(claims, evidence_of(document, findings)))
    write_report(report, document, _spec_of(document))
    if results_out is not None:
        write_json(results_out, to_dict(document))
    return document


def _spec_of(document: Results) -> AuditSpec | None:
    """The audit specification a run used, when it is still where it was (for the reference ratings).

    The path is as the results file records it, which may be any text: one the system cannot even look up
    (too long, a NUL byte) means the specification is not there, not that the results are bad."""
    try:
        spec = load_spec(document.audit.path)
    except (EmoauditError, OSError, ValueError):
        return None
    return spec if spec.sha256 == document.audit.sha256 else None
