"""The behaviour stage's refusal judge, measured on its labelled held-out replies (emoaudit/audits/default/
behaviour_heldout.json: replies written by hand, among them apologies that comply and harmful compliances, and
real greedy replies of a packaged model to the refusal requests and their benign twins, unsteered, steered and
along a random direction), which the rule's phrases and reader probe were not built from.

    EMOAUDIT_CACHE=... .venv/bin/python bench/behaviour_judge.py [--json bench/results/behaviour-judge.json]

Printed (and written): recall of refusals and of compliances with 95% Wilson intervals, for the rule as the
audit runs it (phrases, then the reader's probe, the reader in --dtype as an audit's model) and for the phrases
alone, by source; the seconds the reader took; every reply the rule misjudges; and (written) the sha256 of the
reader's probe file and of the held-out set it was measured with, so that a refitted probe or a changed set shows
as a stale measure. With --development, the
development replies the probe was fitted on (bench/behaviour_judge_dev.json: written for it, and each former
held-out set, folded in once its misses had been read) are measured too, apart: their figures say how well the rule
fits, not how well it judges (and the 1.5B reader takes about 20 minutes of a 2-core CPU over them).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

from emoaudit.behaviour.judges import refusal_judge, validate_refusal
from emoaudit.behaviour.reader import load_reader
from emoaudit.spec import BUILTIN_DIR, load_spec
from emoaudit.spec.behaviour import LabelledReplies, LabelledReply
from emoaudit.storage import sha256_file


def origin(reply: LabelledReply) -> str:
    """The model that wrote a labelled reply, or "hand" (its source's first word; the rest says how)."""
    return reply.source.split(" ")[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path)
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--development", action="store_true", help="also measure the development replies (a fit)")
    args = parser.parse_args()
    spec = load_spec()
    assert spec.behaviour is not None and spec.behaviour_heldout is not None and spec.refusal_reader is not None
    scratch = tempfile.TemporaryDirectory()
    # A memo of its own, not the cache's: the timing is of reading, and each exchange is still read once although
    # the rule is measured on the set, on each of its sources and on the development replies.
    reader = replace(load_reader(spec.refusal_reader, "cpu", args.dtype), memo=Path(scratch.name) / "logits.json")
    rules = {
        "phrases, then the reader": refusal_judge(spec.behaviour.judge, reader.refuses, spec.refusal_reader.model),
        "phrases alone": refusal_judge(spec.behaviour.judge, None),
    }
    dev = json.loads((Path(__file__).parent / "behaviour_judge_dev.json").read_text(encoding="utf-8"))["replies"]
    development = tuple(LabelledReply(r["prompt"], r["reply"], r["label"], "development") for r in dev)
    replies = spec.behaviour_heldout.replies
    out: dict[str, object] = {
        f"sha256 of {name}": sha256_file(BUILTIN_DIR / "default" / name)
        for name in ("refusal_reader.json", "behaviour_heldout.json")
    }
    start = time.monotonic()
    said = rules["phrases, then the reader"].refuses([(r.prompt, r.reply) for r in replies])
    out["seconds"] = round(time.monotonic() - start, 1)
    print(f"the rule judged the {len(replies)} held-out replies in {out['seconds']} s")
    for name, rule in rules.items():
        for source in ["all", *sorted({origin(r) for r in replies}), *(["development"] if args.development else [])]:
            pool = development if source == "development" else replies
            chosen = tuple(r for r in pool if source in ("all", origin(r)))
            info = validate_refusal(rule, LabelledReplies(chosen), "emoaudit/audits/default/behaviour_heldout.json")
            out[f"{name} / {source}"] = asdict(info)
            a, b = info.refusals, info.compliances
            print(
                f"{name:22s} {source:20s} refusals {a.hits}/{a.n} = {a.recall or 0:.3f} [{a.ci_low or 0:.3f}, "
                f"{a.ci_high or 0:.3f}]   compliances {b.hits}/{b.n} = {b.recall or 0:.3f} [{b.ci_low or 0:.3f}, "
                f"{b.ci_high or 0:.3f}]"
            )
    wrong = [r for r, s in zip(replies, said, strict=True) if s != (r.label == "refusal")]
    print(f"\nmisjudged by the rule ({len(wrong)}):")
    for r in wrong:
        print(f"  [{r.label}, {r.source}] {r.reply[:160]!r}")
    out["misjudged"] = [asdict(r) for r in wrong]
    if args.json:
        args.json.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
