"""`emoaudit report` and `emoaudit compare`: findings and report again from results files."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from emoaudit.cli.audit import print_findings
from emoaudit.cli.common import FailOnOpt, JUnitOpt, ModelCardOpt, PdfOpt, PolicyOpt, SarifOpt, guard, terminal_text
from emoaudit.cli.paths import AUDIT_HELP, results_file
from emoaudit.errors import EmoauditError
from emoaudit.export.manifest import MANIFEST
from emoaudit.results.common import FailLevel

if TYPE_CHECKING:
    from emoaudit.results.document import Results
    from emoaudit.report.release import Comparison


def report(
    results: Annotated[Path, typer.Argument(help=f"{AUDIT_HELP} Only read.")],
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            "-o",
            help="Report file (default: report.html in the current directory). Never inside an audit's output "
            "directory (one with a manifest.json): its manifest vouches for what the audit wrote.",
        ),
    ] = Path("report.html"),
    out_results: Annotated[
        Path | None, typer.Option("--out-results", help="Write the results with the new findings to this file.")
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Write the results with the new findings into RESULTS itself.")
    ] = False,
    fail_on: FailOnOpt = FailLevel.high,
    junit: JUnitOpt = None,
    sarif: SarifOpt = None,
    model_card: ModelCardOpt = None,
    pdf: PdfOpt = None,
    policy: PolicyOpt = None,
) -> None:
    """Rebuild the report and findings from a results file, without running the model; write the SARIF,
    model-card and PDF exports asked for.

    RESULTS is never rewritten unless --overwrite is given, so an archived audit can be re-reported; no
    output is written into an audit's output directory (one holding a manifest.json), whose manifest is
    never re-signed: `emoaudit verify OUT` still vouches for the audit after a re-report.
    """
    from emoaudit.pipeline.outputs import Outputs, write_requested
    from emoaudit.report.policy import load_policy
    from emoaudit.report.rerender import rerender

    results = results_file(results)
    report_path = out
    requested = Outputs(sarif, model_card, pdf, junit)

    def run() -> Results:
        outputs = ((report_path, "--out"), (out_results, "--out-results"), (junit, "--junit"))
        for path, option in (*outputs, (sarif, "--sarif"), (model_card, "--model-card"), (pdf, "--pdf")):
            _refuse_input(path, option, results)
            _refuse_signed(path, option)
        if overwrite and out_results is not None:
            raise EmoauditError("give --out-results or --overwrite, not both")
        requested.check()
        loaded = load_policy(policy)
        document = rerender(results, report_path, loaded, results if overwrite else out_results, fail_on)
        write_requested(requested, document, loaded, report_path, fail_on)
        return document

    document = guard(run)
    raise typer.Exit(print_findings(document.findings or [], fail_on, report_path))


def compare(
    before: Annotated[Path, typer.Argument(help=f"The earlier release's audit: {AUDIT_HELP.lower()}")],
    after: Annotated[Path, typer.Argument(help=f"The later release's audit: {AUDIT_HELP.lower()}")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write the changes as JSON.")] = None,
    fail_on_regression: Annotated[bool, typer.Option(help="Exit 1 when anything regressed.")] = True,
    policy: PolicyOpt = None,
) -> None:
    """Show what changed between two audits of a model, and gate on regressions.

    Steering is compared by rates, so audits with different numbers of trials compare; audits whose
    specification, profile, seed or model differ are compared all the same, with a warning that says so.
    A rise in the steering success rate regresses only when significant at the policy's steerable alpha.
    """
    from emoaudit.results.reading import read_results
    from emoaudit.report.policy import load_policy
    from emoaudit.report.release import compare as compare_results
    from emoaudit.storage import write_json

    def read() -> Comparison:
        for source in (before, after):  # before anything is printed: an output must not be an input
            _refuse_input(out, "--out", source)
        earlier, later = read_results(results_file(before)), read_results(results_file(after))
        return compare_results(earlier, later, load_policy(policy).steerable.alpha)

    comparison = guard(read)
    console = Console()
    table = Table(title=terminal_text(f"{before} → {after}"))
    for column in ("what", "before", "after", "regression"):
        table.add_column(column, overflow="fold")  # a narrow terminal folds a finding id, never cuts it
    for change in comparison.changes:
        table.add_row(
            terminal_text(change.what),  # finding ids and conditions come from the files, as written
            terminal_text(_cell(change.before)),
            terminal_text(_cell(change.after)),
            "yes" if change.regression else "",
        )
    console.print(table)
    if not comparison.like_for_like:  # a warning, not a refusal: see release.Comparison
        console.print("not like for like, so rates may differ by more than the models do:")
        for difference in comparison.differences:
            console.print(terminal_text(f"  {difference}"), soft_wrap=True)  # hashes whole, to copy
    if out is not None:
        guard(lambda: write_json(out, comparison.to_dict()))
    raise typer.Exit(1 if comparison.regressions and fail_on_regression else 0)


def _refuse_input(path: Path | None, option: str, source: Path) -> None:
    """An output must never be the input it was made from."""
    if path is not None and path.exists() and source.exists() and os.path.samefile(path, source):
        raise EmoauditError(f"{option} {path} is the input {source}, which is only read")


def _refuse_signed(path: Path | None, option: str) -> None:
    """An output must never land in an audit's output directory: its manifest vouches for the files the audit
    wrote, and re-signing it would bless a tampered results.json, while not re-signing it makes `verify` fail."""
    if path is None:
        return
    for folder in path.absolute().parents:
        if (folder / MANIFEST).is_file():
            raise EmoauditError(
                f"{option} {path} is inside the audit output {folder}, whose {MANIFEST} vouches for what the audit "
                f"wrote: write it elsewhere (the default is report.html in the current directory)"
            )


def _cell(value: object) -> str:
    """A compared value as a table cell: a rate estimate as 'rate [ci] of n, control c', never a raw dict."""
    if not isinstance(value, dict):
        return "—" if value is None else str(value)
    if value.get("rate") is None:
        return "no trials"

    def pct(key: str) -> str:
        x = value.get(key)
        return "—" if x is None else f"{x:.0%}"

    text = f"{pct('rate')} [{pct('ci_low')}, {pct('ci_high')}] of {value.get('trials')}, control {pct('control_rate')}"
    return text + (f", p(rise) = {value['p_rise']:.3g}" if value.get("p_rise") is not None else "")
