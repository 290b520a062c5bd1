"""The final phase of an audit: every file it writes from its results, in one place, the manifest last.

results.json and report.html always; SARIF, a model-card section, a PDF (printed from the report just
written) and JUnit where asked for; then the manifest over everything OUT holds, so that it vouches for
all of it and nothing rewrites it afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from emoaudit.export.manifest import write_manifest
from emoaudit.report.gating import junit_xml
from emoaudit.report.model_card import model_card_section
from emoaudit.report.pdf import require_browser, write_pdf
from emoaudit.report.policy import Policy
from emoaudit.report.render import write_report
from emoaudit.report.sarif import sarif_document
from emoaudit.results.common import FailLevel
from emoaudit.results.convert import to_dict
from emoaudit.results.document import Results
from emoaudit.results.identity import RunRecord
from emoaudit.spec import AuditSpec
from emoaudit.storage import check_writable, write_json, write_text


@dataclass(frozen=True)
class Outputs:
    """Files asked for beyond OUT's own; None for those not asked for."""

    sarif: Path | None = None
    model_card: Path | None = None
    pdf: Path | None = None
    junit: Path | None = None

    def paths(self) -> list[Path]:
        return [p for p in (self.sarif, self.model_card, self.pdf, self.junit) if p is not None]

    def check(self) -> None:
        """Before any work: every path writable, and a PDF renderer where a PDF is asked for (EmoauditError
        or OSError otherwise)."""
        for path in self.paths():
            check_writable(path)
        if self.pdf is not None:
            require_browser()


def write_outputs(
    out: Path,
    results: Results,
    spec: AuditSpec,
    policy: Policy,
    policy_sha256: str,
    outputs: Outputs,
    fail_on: FailLevel,
    run: RunRecord,
) -> None:
    """Write every output of a finished audit from its results (findings included), the manifest last."""
    write_json(out / "results.json", to_dict(results))
    write_report(out / "report.html", results, spec)
    write_requested(outputs, results, policy, out / "report.html", fail_on)
    write_manifest(out, run, policy_sha256)


def write_requested(outputs: Outputs, results: Results, policy: Policy, report_html: Path, fail_on: FailLevel) -> None:
    """The outputs asked for, from the results (findings included) and the HTML report already written
    (by the audit's final phase, or by `emoaudit report` without the model)."""
    checks = results.findings or []
    if outputs.sarif is not None:
        write_json(outputs.sarif, sarif_document(results, checks, policy))
    if outputs.model_card is not None:
        write_text(outputs.model_card, model_card_section(results, checks))
    if outputs.pdf is not None:
        write_pdf(report_html, outputs.pdf)
    if outputs.junit is not None:
        write_text(outputs.junit, junit_xml(checks, fail_on, results.model.reference))
