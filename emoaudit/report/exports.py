"""The audit's outputs for compliance work, written together: SARIF, a model-card section, a PDF.

Each is optional; the PDF is printed from the HTML report already written, so it shows the same report.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from emoaudit.results.document import Results
from emoaudit.report.model_card import model_card_section
from emoaudit.report.pdf import require_browser, write_pdf
from emoaudit.report.policy import Policy
from emoaudit.report.sarif import sarif_document
from emoaudit.storage import check_writable, write_json, write_text


@dataclass(frozen=True)
class Exports:
    """Where to write each export; None for those not asked for."""

    sarif: Path | None = None
    model_card: Path | None = None
    pdf: Path | None = None

    def paths(self) -> list[Path]:
        return [p for p in (self.sarif, self.model_card, self.pdf) if p is not None]

    def check(self) -> None:
        """Before any work: every path writable, and a PDF renderer where a PDF is asked for (EmoauditError
        or OSError otherwise)."""
        for path in self.paths():
            check_writable(path)
        if self.pdf is not None:
            require_browser()

    def write(self, results: Results, policy: Policy, report_html: Path, fail_on: str = "high") -> None:
        """Write every export asked for, from the results (findings included) and the HTML report; each states
        the decision of the gate `--fail-on fail_on`."""
        checks = results.findings or []
        if self.sarif is not None:
            write_json(self.sarif, sarif_document(results, checks, policy, fail_on))
        if self.model_card is not None:
            write_text(self.model_card, model_card_section(results, checks, fail_on))
        if self.pdf is not None:
            write_pdf(report_html, self.pdf)
