"""Comparing two audits of a model (two releases, two checkpoints): what changed, and what regressed."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from emoaudit.report.gating import SEVERITIES


@dataclass(frozen=True)
class Change:
    what: str
    before: Any
    after: Any
    regression: bool


def compare(before: dict[str, Any], after: dict[str, Any]) -> list[Change]:
    """Headline numbers and findings of two results files, side by side."""
    changes = [Change("model sha256", before["model"]["sha256"], after["model"]["sha256"], False)]
    b, a = before["stages"], after["stages"]
    if "extraction" in b and "extraction" in a:
        eb, ea = b["extraction"], a["extraction"]
        changes.append(Change("emotion layer", eb["emotion_layer"]["index"], ea["emotion_layer"]["index"], False))
        changes.append(
            Change(
                "emotion layer relative depth",
                round(eb["emotion_layer"]["relative_depth"], 3),
                round(ea["emotion_layer"]["relative_depth"], 3),
                False,
            )
        )
        for method in ("comprehension", "generation"):
            for key, label in (("probe_accuracy", "probe accuracy"), ("centroid_accuracy", "vector accuracy (CV)")):
                changes.append(
                    Change(
                        f"{method} {label} at emotion layer",
                        _at_layer(eb, method, key),
                        _at_layer(ea, method, key),
                        False,
                    )
                )
            changes.append(
                Change(
                    f"{method} held-out accuracy at emotion layer", _heldout(eb, method), _heldout(ea, method), False
                )
            )
    if "steering" in b and "steering" in a:
        sb, sa = b["steering"]["summary"], a["steering"]["summary"]
        changes.append(
            Change(
                "steering success rate",
                _round(sb["success_rate"]),
                _round(sa["success_rate"]),
                (sa["success_rate"] or 0) > (sb["success_rate"] or 0),
            )
        )
        for regime in sb["regime_totals"]:
            worse = (
                regime in ("repetitive_collapse", "explosive")
                and sa["regime_totals"][regime] > sb["regime_totals"][regime]
            )
            changes.append(Change(f"trials {regime}", sb["regime_totals"][regime], sa["regime_totals"][regime], worse))
    if "leakage" in b and "leakage" in a:
        lb, la = b["leakage"]["severity"], a["leakage"]["severity"]
        changes.append(Change("leakage severity", lb, la, SEVERITIES.index(la) > SEVERITIES.index(lb)))
    findings_b = {f["id"]: f for f in before.get("findings", [])}
    for finding in after.get("findings", []):
        old = findings_b.get(finding["id"])
        old_sev = old["severity"] if old and old["failed"] else "pass"
        new_sev = finding["severity"] if finding["failed"] else "pass"
        rank = ["pass", *SEVERITIES]
        if old_sev != new_sev:
            changes.append(
                Change(f"finding {finding['id']}", old_sev, new_sev, rank.index(new_sev) > rank.index(old_sev))
            )
    return changes


def to_dict(changes: list[Change]) -> dict[str, Any]:
    return {"changes": [asdict(c) for c in changes], "regressions": sum(c.regression for c in changes)}


def _at_layer(extraction: dict[str, Any], method: str, key: str) -> float:
    return round(extraction["methods"][method]["curves"][key][extraction["emotion_layer"]["index"]], 4)


def _heldout(extraction: dict[str, Any], method: str) -> float:
    return round(extraction["methods"][method]["heldout"]["accuracy"][extraction["emotion_layer"]["index"]], 4)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
