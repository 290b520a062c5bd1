"""A section for a Hugging Face model card (Markdown with a YAML block of the key figures).

Every text that comes from the audit (findings, references) is escaped for Markdown, so nothing an
audited model or a user wrote becomes markup, a link or a broken table; the YAML block double-quotes
every string (escaping what it must), so no line of it can close its code fence.
"""

from __future__ import annotations

from typing import Any

import yaml

from emoaudit import __version__
from emoaudit.escaping import markdown
from emoaudit.results.common import SEVERITIES, Check, FailLevel
from emoaudit.results.behaviour import Behaviour, Probe
from emoaudit.results.document import Results
from emoaudit.report.decision import decide
from emoaudit.report.reproduce import reproduce_command, weights_note
from emoaudit.report.power import power_words, result_words


class _QuotingDumper(yaml.SafeDumper):
    """Every string double-quoted (escapes included), numbers and booleans plain."""


_QuotingDumper.add_representer(
    str, lambda dumper, value: dumper.represent_scalar("tag:yaml.org,2002:str", value, style='"')
)


markdown_text = markdown  # `escaping.markdown`: no markup, link, mention or bidi override from the audit


def verdict(checks: list[Check]) -> str:
    failed = [c.severity for c in checks if c.failed]
    return max(failed, key=SEVERITIES.index) if failed else "no finding"


def model_card_section(results: Results, checks: list[Check], fail_on: FailLevel = FailLevel.high) -> str:
    """The section, Markdown, opening with the decision of the gate `--fail-on fail_on`; the figures it quotes
    are also in its YAML block."""
    model, audit = results.model, results.audit
    note = weights_note(results)
    lines = [
        "## Emotion-representation audit (emoaudit)",
        "",
        f"**{markdown_text(decide(checks, fail_on).sentence)}**",
        "",
        f"Highest finding: {verdict(checks)}. Audited with emoaudit {markdown_text(__version__)} on "
        f"{markdown_text(results.finished[:10])}, {markdown_text(audit.profile)} profile, seed {audit.seed}.",
        *(["", markdown_text(note)] if note else []),
        "",
        "| check | policy severity | result | n / min_n | evidence |",
        "| --- | --- | --- | --- | --- |",
    ]
    for check in checks:
        lines.append(
            f"| {markdown_text(check.title)} ({markdown_text(check.id)}) | {check.severity} | "
            f"{markdown_text(result_words(check))} | {power_words(check)} | {markdown_text(check.detail)} |"
        )
    lines += ["", *_summary_lines(results), ""]
    lines += [
        f"Audit identity: model {markdown_text(model.reference)}, weights sha256 `{model.sha256 or 'unknown'}`; "
        f"audit specification {markdown_text(audit.name)}, sha256 `{audit.sha256}`; emoaudit "
        f"{markdown_text(results.environment.emoaudit)}; finished {markdown_text(results.finished)}.",
        "",
        # Escaped, not a code span: the line holds the model reference and paths as the results wrote them.
        f"Reproduce and check: {markdown_text(reproduce_command(results))} --out OUT, then `emoaudit verify "
        "OUT` against the published outputs.",
        "",
        "```yaml",
        yaml.dump(
            {"emoaudit": key_figures(results, checks)},
            Dumper=_QuotingDumper,
            sort_keys=False,
            allow_unicode=False,
            width=1_000_000,
        ).rstrip("\n"),
        "```",
        "",
    ]
    return "\n".join(lines)


def key_figures(results: Results, checks: list[Check]) -> dict[str, Any]:
    """The figures a reader compares across model cards, as plain values."""
    figures: dict[str, Any] = {
        "version": results.environment.emoaudit,
        "model_sha256": results.model.sha256,
        "specification_sha256": results.audit.sha256,
        "profile": results.audit.profile,
        "seed": results.audit.seed,
        "verdict": verdict(checks),
        "findings": {c.id: c.severity for c in checks if c.failed},
        "underpowered": sorted(c.id for c in checks if c.underpowered),
    }
    if results.model.gguf_type:
        figures["gguf_type"] = results.model.gguf_type
    extraction, steering, leakage = results.stages.extraction, results.stages.steering, results.stages.leakage
    if extraction is not None:
        layer = extraction.emotion_layer.index
        held = extraction.methods["comprehension"].heldout
        figures["emotion_layer"] = layer
        figures["relative_depth"] = round(extraction.emotion_layer.relative_depth, 3)
        figures["heldout_accuracy"] = round(held.accuracy[layer], 4)
        figures["heldout_chance"] = round(held.chance_accuracy, 4)
        figures["heldout_valence_auc"] = round(held.valence_auc[layer], 4)
    if steering is not None:
        figures["steering_trials"] = steering.summary.trials
        overall = steering.summary.statistics.overall  # within the calibrated range, against the controls
        figures["steering_calibrated_rate"] = _round(overall.rate)
        figures["steering_calibrated_ci"] = [_round(overall.ci_low), _round(overall.ci_high)]
        figures["steering_control_rate"] = _round(overall.control_rate)
    if leakage is not None:
        figures["leakage_severity"] = leakage.severity
    behaviour = results.stages.behaviour
    if behaviour is not None:
        complied = behaviour.refusal.unsteered.rate
        figures["unsteered_refusal_rate"] = None if complied is None else _round(1 - complied)
        figures["unsteered_sycophancy_rate"] = _round(behaviour.sycophancy.unsteered.rate)
        figures["unsteered_over_refusal_rate"] = _round(behaviour.over_refusal.unsteered.rate)
        figures["refusal_judge_recall"] = [
            _round(behaviour.refusal_judge.refusals.recall),
            _round(behaviour.refusal_judge.compliances.recall),
        ]
    return figures


def _summary_lines(results: Results) -> list[str]:
    lines = []
    extraction, steering, leakage = results.stages.extraction, results.stages.steering, results.stages.leakage
    if extraction is not None:
        layer = extraction.emotion_layer.index
        held = extraction.methods["comprehension"].heldout
        lines.append(
            f"- Emotion layer: {layer} of {extraction.n_layers} (relative depth "
            f"{extraction.emotion_layer.relative_depth:.2f}). Held-out generalisation: comprehension vectors "
            f"classify held-out sentences at {held.accuracy[layer]:.0%} (chance {held.chance_accuracy:.0%}), "
            f"valence AUC {held.valence_auc[layer]:.2f}."
        )
    if steering is not None:
        summary = steering.summary
        regimes = ", ".join(f"{markdown_text(k)} {v}" for k, v in summary.regime_totals.items())
        lines.append(
            f"- Steering: {summary.trials} steered continuations at layer {steering.layer}; within the calibrated "
            f"range (multiplier <= {summary.statistics.calibrated_range:g}), surgical "
            f"{markdown_text(summary.statistics.overall.quote())} against random-direction controls; "
            f"regimes: {regimes}."
        )
    if leakage is not None:
        lines.append(
            f"- Cross-lingual leakage: severity {markdown_text(leakage.severity)}; unsteered baseline "
            f"{leakage.baseline.output_rate:.0%} of texts, {leakage.baseline.lens_foreign_share:.0%} of logit-lens "
            "tokens in another script."
        )
    if results.stages.behaviour is not None:
        lines.append(_behaviour_line(results.stages.behaviour))
    return lines


def _behaviour_line(b: Behaviour) -> str:
    """Refusal (as refusal rates), over-refusal of the benign twins and sycophancy, unsteered and per emotion as the
    change in points, q in brackets."""

    def effects(probe: Probe, sign: int) -> str:
        return ", ".join(
            f"{markdown_text(e)} {round(sign * x.effect * 100):+d} (q {x.steered.q_value:.2g})"
            for e, x in probe.by_emotion.items()
            if x.effect is not None and x.steered.q_value is not None
        )

    refused = b.refusal.unsteered.rate
    judge = b.refusal_judge
    return (
        f"- Behaviour under steering ({b.refusal.unsteered.trials} requests to decline, layer {b.layer}): unsteered "
        f"refusal rate {'n/a' if refused is None else f'{1 - refused:.0%}'}, refusals of their benign twins "
        f"{_pct(b.over_refusal.unsteered.rate)}, sycophancy {_pct(b.sycophancy.unsteered.rate)}; change in refusal "
        f"rate by emotion, points: {effects(b.refusal, -1) or 'n/a'}; in refusals of the benign twins: "
        f"{effects(b.over_refusal, 1) or 'n/a'}; in sycophancy: {effects(b.sycophancy, 1) or 'n/a'}. Refusal judge "
        f"recall: refusals {_pct(judge.refusals.recall)}, compliances {_pct(judge.compliances.recall)}."
    )


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.0%}"


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
