"""How specific an audit's surgical steering trials are, recomputed from its samples.jsonl alone.

    python bench/steering_specificity.py OUT [--k 1 2 3 4 5]

For every steered trial, each emotion's judge-score rise over the unsteered text of the same scenario;
the target's 0-based rank among those rises (0: it rose most; chance (E - 1) / 2). Prints the mean rank
over the trials the audit labelled surgical (the figure docs/judging.md
quotes), per multiplier, and, to choose `specificity_top_k`, what the mean rank and the surgical rate
would be for other k (same control percentile, recomputed from the controls in the same file). Then
each steerability finding of results.json with its interval and control rate.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np


def rises(sample: dict[str, Any], base: dict[str, Any], emotions: list[str]) -> dict[str, float]:
    return {e: sample["judge"][e] - base["judge"][e] for e in emotions}


def rank(rise: dict[str, float], emotion: str) -> int:
    return sum(r > rise[emotion] for e, r in rise.items() if e != emotion)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="an audit's output directory")
    parser.add_argument("--k", type=int, nargs="*", default=[1, 2, 3, 4, 5])
    args = parser.parse_args()
    results = json.loads((args.out / "results.json").read_text(encoding="utf-8"))
    steering = results["stages"]["steering"]
    emotions = results["stages"]["extraction"]["emotions"]
    thresholds, percentile = steering["thresholds"], steering["controls"]["percentile"]
    samples = [json.loads(line) for line in (args.out / "samples.jsonl").read_text(encoding="utf-8").splitlines()]
    base = {s["scenario"]: s for s in samples if s["emotion"] is None and s.get("control") is None}
    steered = [s for s in samples if s["emotion"] is not None]
    controls = [s for s in samples if s.get("control") == "random"]
    rise = [rises(s, base[s["scenario"]], emotions) for s in steered]
    ranks = [rank(r, s["emotion"]) for r, s in zip(rise, steered, strict=True)]
    surgical = [i for i, s in enumerate(steered) if s["regime"] == "surgical"]
    print(f"{len(steered)} steered trials, {len(controls)} random-direction controls, {len(emotions)} emotions")
    mean = float(np.mean([ranks[i] for i in surgical])) if surgical else float("nan")
    print(f"surgical: {len(surgical)}; mean 0-based rank of the target's rise among them: {mean:.2f}")
    by_m: dict[float, list[int]] = defaultdict(list)
    for i in surgical:
        by_m[steered[i]["multiplier"]].append(ranks[i])
    for m in sorted(by_m):
        print(f"  x{m:g}: {len(by_m[m])} surgical, mean rank {np.mean(by_m[m]):.2f}")
    coherent = [s["regime"] in ("surgical", "no_effect") for s in steered]
    old = [i for i, s in enumerate(steered) if coherent[i] and s["judge_gain"] >= thresholds["judge_margin"]]
    print(
        f"before (coherent and gain >= {thresholds['judge_margin']}): {len(old)} trials, "
        f"mean rank {np.mean([ranks[i] for i in old]):.2f}"
    )
    null: dict[tuple[str, float], float] = {}
    control_rise = [(c["multiplier"], rises(c, base[c["scenario"]], emotions)) for c in controls]
    for e in emotions:
        for m in {m for m, _ in control_rise}:
            null[(e, m)] = float(np.percentile([r[e] for mm, r in control_rise if mm == m], percentile))
    for k in args.k:
        passing = [
            i
            for i, s in enumerate(steered)
            if coherent[i]
            and rise[i][s["emotion"]] >= thresholds["judge_margin"]
            and ranks[i] < k
            and rise[i][s["emotion"]] > null[(s["emotion"], s["multiplier"])]
        ]
        rate = len(passing) / len(steered)
        k_mean = np.mean([ranks[i] for i in passing]) if passing else float("nan")
        print(f"k = {k}: {len(passing)} surgical ({rate:.0%} of steered), mean rank {k_mean:.2f}")
    for check in results.get("findings", []):
        if check["id"] in ("steerable", "hostile_steerable"):
            status = check["severity"] if check["failed"] else "pass"
            print(f"[{status}] {check['id']}: {check['detail']}")


if __name__ == "__main__":
    main()
