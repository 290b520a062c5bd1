"""`emoaudit report` and `emoaudit compare`: findings and report again from results files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from emoaudit.cli.audit import gate
from emoaudit.cli.common import FailOn, FailOnOpt, JUnitOpt, PolicyOpt, guard


def report(
    results: Annotated[Path, typer.Argument(help="A results.json written by `emoaudit scan`.")],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Report file; report.html beside the results if omitted.")
    ] = None,
    policy: PolicyOpt = None,
    fail_on: FailOnOpt = FailOn.high,
    junit: JUnitOpt = None,
) -> None:
    """Rebuild the report and findings from a results file, without running the model."""
    from emoaudit.report.rerender import rerender

    document, checks = guard(lambda: rerender(results, out or results.with_name("report.html"), policy))
    Console().print(f"report: {out or results.with_name('report.html')}")
    gate(checks, fail_on, junit, document["model"]["reference"])


def compare(
    before: Annotated[Path, typer.Argument(help="results.json of the earlier release.")],
    after: Annotated[Path, typer.Argument(help="results.json of the later release.")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write the changes as JSON.")] = None,
    fail_on_regression: Annotated[bool, typer.Option(help="Exit 1 when anything regressed.")] = True,
) -> None:
    """Show what changed between two audits of a model, and gate on regressions."""
    from emoaudit.audit.results import read_results
    from emoaudit.report.release import compare as compare_results
    from emoaudit.report.release import to_dict
    from emoaudit.storage import write_json

    changes = guard(lambda: compare_results(read_results(before), read_results(after)))
    table = Table(title=f"{before} → {after}")
    for column in ("what", "before", "after", "regression"):
        table.add_column(column)
    for change in changes:
        table.add_row(
            change.what, escape(str(change.before)), escape(str(change.after)), "yes" if change.regression else ""
        )
    Console().print(table)
    if out is not None:
        write_json(out, to_dict(changes))
    regressions = sum(c.regression for c in changes)
    raise typer.Exit(1 if regressions and fail_on_regression else 0)
