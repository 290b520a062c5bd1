"""Fit the refusal judge's heads (emoaudit/audits/default/refusal_heads.json) on the development replies alone.

    EMOAUDIT_CACHE=... .venv/bin/python bench/behaviour_judge_fit.py

For each offline sentence encoder (audits/models.toml [judges]): an L2-regularised logistic regression
(scikit-learn, lbfgs, classes weighted to balance) over the encoder's unit embedding of each development
reply's opening (`emoaudit.behaviour.judges.opening`), labels refusal = 1. Its strength C is chosen by
cross-validation grouped by request (a request's replies never on both sides of a fold): the C whose rule,
phrases first and the head for what no phrase decides (as the audit runs it), has the largest smaller recall
of the two classes over the folds. The labelled held-out replies (behaviour_heldout.json) are never read here:
bench/behaviour_judge.py measures the fitted rule on them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold

from emoaudit.behaviour.judges import opening, refusal_judge
from emoaudit.model import registry
from emoaudit.spec import BUILTIN_DIR, load_spec
from emoaudit.steering.judge_models import PrototypeJudge, load_judge

DEV = Path(__file__).parent / "behaviour_judge_dev.json"
OUT = BUILTIN_DIR / "default" / "refusal_heads.json"
STRENGTHS = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0)
FOLDS = 5


def fit(x: np.ndarray, y: np.ndarray, c: float) -> LogisticRegression:
    return LogisticRegression(C=c, class_weight="balanced", max_iter=10_000).fit(x, y)


def main() -> None:
    spec = load_spec()
    assert spec.behaviour is not None
    rows = json.loads(DEV.read_text(encoding="utf-8"))["replies"]
    y = np.array([r["label"] == "refusal" for r in rows])
    # The first development replies were written without their request: each is a group of its own.
    groups = [r["prompt"] if r["prompt"] != "(development)" else f"#{i}" for i, r in enumerate(rows)]
    phrases = refusal_judge(spec.behaviour.judge, None, None, "")
    by_phrase = [phrases._by_phrase(r["reply"]) for r in rows]
    heads: dict[str, dict[str, object]] = {}
    chosen: dict[str, float] = {}
    for alias in registry.load_judges():
        judge = load_judge(alias, spec.emotion_names, spec.reference, spec.judge_prototypes)
        assert isinstance(judge, PrototypeJudge)
        x = judge.embed([opening(r["reply"]) for r in rows])
        scores = {}
        for c in STRENGTHS:
            said = np.zeros(len(rows), dtype=bool)
            for train, test in GroupKFold(FOLDS).split(x, y, groups):
                predicted = fit(x[train], y[train], c).predict(x[test])
                phrased = [by_phrase[i] for i in test]
                said[test] = [p if s is None else s for s, p in zip(phrased, predicted, strict=True)]
            recalls = (said[y].mean(), (~said[~y]).mean())
            scores[c] = min(recalls)
            print(f"{alias} C={c:g}: cross-validated recall of refusals {recalls[0]:.3f}, compliances {recalls[1]:.3f}")
        best = max(STRENGTHS, key=lambda c: (scores[c], -c))
        model = fit(x, y, best)
        heads[alias] = {"bias": round(float(model.intercept_[0]), 6), "weights": model.coef_[0]}
        chosen[alias] = best
    fitted = (
        f"bench/behaviour_judge_fit.py on bench/behaviour_judge_dev.json ({int(y.sum())} refusals, "
        f"{int((~y).sum())} compliances); C by {FOLDS}-fold cross-validation grouped by request: "
        + ", ".join(f"{alias} {c:g}" for alias, c in chosen.items())
    )
    lines = ["{", f'  "fitted": {json.dumps(fitted)},', '  "heads": {']
    for k, (alias, head) in enumerate(heads.items()):
        weights = ", ".join(f"{w:.6g}" for w in head["weights"])  # type: ignore[attr-defined]
        comma = "," if k < len(heads) - 1 else ""
        lines += [f'    "{alias}": {{"bias": {head["bias"]}, "weights": [{weights}]}}{comma}']
    lines += ["  }", "}"]
    OUT.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
