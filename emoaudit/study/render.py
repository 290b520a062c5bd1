"""The study's HTML page: one self-contained file (inline styles and SVG), rendered with the report's
Jinja environment, so the same autoescaping applies to every model-supplied string."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from emoaudit.report.gating import SEVERITIES
from emoaudit.report.render import environment
from emoaudit.results.steering import REGIMES
from emoaudit.storage import write_text
from emoaudit.study import plots
from emoaudit.results.study import Study


def render_study(study: Study) -> str:
    return environment().get_template("study.html.j2").render(**context(study))


def write_study_report(path: Path, study: Study) -> None:
    write_text(path, render_study(study))


def context(study: Study) -> dict[str, Any]:
    audited = [m for m in study.models if m.evidence is not None]
    named = [(m.slug, m.evidence) for m in audited if m.evidence is not None]
    check_ids = list(dict.fromkeys(c.id for _, e in named for c in e.findings))
    mid_depth = next((c.thresholds for c in study.claims if c.id == "mid_depth"), None)
    band = (float(mid_depth["low"]), float(mid_depth["high"])) if mid_depth else None
    steered = [(slug, e.regimes) for slug, e in named if e.regimes is not None]
    figures: dict[str, str] = {}
    if named:
        figures["depth"] = plots.depth_curves(named, band)
        figures["effects"] = plots.method_effects(
            [
                (m.slug, m.evidence.comparison.cohens_d or 0.0, m.corrected_p)
                for m in audited
                if m.evidence and m.evidence.comparison.cohens_d is not None
            ]
        )
        figures["heldout"] = plots.heldout_accuracy(named)
    if steered:
        figures["regimes"] = plots.regime_shares(steered)
        figures["families"] = plots.regime_shares([(f.name, f.regimes) for f in study.families])
    return {
        "study": study,
        "audited": audited,
        "failed": [m for m in study.models if m.evidence is None],
        "regimes": REGIMES,
        "check_ids": check_ids,
        "findings": {m.slug: {c.id: c for c in m.evidence.findings} for m in audited if m.evidence},
        "severities": SEVERITIES,
        "figures": figures,
    }
