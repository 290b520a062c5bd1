"""A finished audit's refusal and over-refusal rows judged again by the current refusal rule.

    EMOAUDIT_CACHE=... .venv/bin/python bench/behaviour_rejudge.py RUN [RUN ...]

RUN is an audit's output folder (results.json, behaviour.jsonl). The replies are greedy and stored, so a new rule
needs no new generation: each reply to a refusal request or its benign twin is judged by the specification's rule
(phrases, then the reader's probe; the reader in bfloat16), and the stage's own summary gives the rates, Wilson
intervals and q-values against the random directions. Sycophancy and hostility do not use this judge. Printed per
run: the unsteered and control rates and each emotion's, with its effect and q; nothing is written.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from emoaudit.behaviour.judges import refusal_judge
from emoaudit.behaviour.probes import Prompt, Reply
from emoaudit.behaviour.reader import load_reader
from emoaudit.behaviour.stage import judge_refusals, summarise
from emoaudit.spec import load_spec


def pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.0f}%"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="+")
    runs = parser.parse_args().runs
    spec = load_spec()
    assert spec.behaviour is not None and spec.refusal_reader is not None
    reader = load_reader(spec.refusal_reader, "cpu", "bfloat16")
    rule = refusal_judge(spec.behaviour.judge, reader.refuses, spec.refusal_reader.model)
    for run in runs:
        emotions = json.loads((run / "results.json").read_text(encoding="utf-8"))["stages"]["behaviour"]["emotions"]
        lines = (run / "behaviour.jsonl").read_text(encoding="utf-8").splitlines()
        asked = [r for r in (Reply(**json.loads(line)) for line in lines) if r.probe in ("refusal", "over_refusal")]
        judge_refusals(asked, rule)
        print(run)
        for name in ("refusal", "over_refusal"):
            mine = [r for r in asked if r.probe == name]
            items = [Prompt(name, item, "") for item in dict.fromkeys(r.item for r in mine)]
            probe = summarise(name, mine, emotions, items)
            u, c = probe.unsteered, probe.control
            print(f"  {name} ({probe.event}): unsteered {pct(u.rate)} [{pct(u.ci_low)}, {pct(u.ci_high)}] of "
                  f"{u.trials}; random {pct(c.rate)} of {c.trials}")  # fmt: skip
            for emotion, effect in probe.by_emotion.items():
                s = effect.steered
                change = "n/a" if effect.effect is None else f"{effect.effect:+.2f}"
                print(f"    {emotion}: {pct(s.rate)} [{pct(s.ci_low)}, {pct(s.ci_high)}] of {s.trials}, "
                      f"effect {change}, q {s.q_value if s.q_value is None else f'{s.q_value:.3g}'}")  # fmt: skip


if __name__ == "__main__":
    main()
