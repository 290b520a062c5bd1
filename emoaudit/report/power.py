"""How many samples a check needs before its result says anything: `min_n`, and the underpowered mark.

A check's `min_n` is the smallest n at which its threshold can be reached at its alpha, in both directions:

* a rate check (steerable, hostile_steerable, fragile, unvalidated_vectors) reads a 95% Wilson interval
  against its threshold t. With n trials it can fail only when n of n gives ci_low >= t, and it can pass
  with confidence only when 0 of n gives ci_high < t; min_n is the smallest n where both can happen
  (0.3 -> 9, 0.5 -> 4, 0.2 -> 16);
* semantic_entanglement reads a one-sided exact Wilcoxon signed-rank test over the steered emotions, whose
  smallest p over n emotions is 2^-n: min_n is the smallest n with 2^-n < alpha (5 at alpha 0.05). A
  language column of that table rests on its own (emotion, language) pairs, marked against the same n.

A finding resting on fewer samples than min_n is marked underpowered and cannot fail a gate on its own; a
pass resting on fewer is marked too, since it cannot rule the threshold out. `emoaudit/audits/policy.toml` states
each check's min_n; tests/test_power.py checks that it is the computed one.
"""

from __future__ import annotations

import math

from emoaudit.results.common import UNDERPOWERED, Check
from emoaudit.steering.statistics import wilson


def rate_min_n(threshold: float, limit: int = 100_000) -> int:
    """The smallest n whose Wilson interval can lie wholly above (n of n) and wholly below (0 of n) `threshold`.

    Raises ValueError for a threshold of 0 or 1 (one side can never be reached)."""
    if not 0 < threshold < 1:
        raise ValueError(f"a rate threshold strictly between 0 and 1 has a min_n, not {threshold}")
    for n in range(1, limit):
        if wilson(n, n)[0] >= threshold and wilson(0, n)[1] < threshold:
            return n
    raise ValueError(f"no n below {limit} reaches {threshold}")


def signed_rank_min_n(alpha: float) -> int:
    """The smallest n over which the exact one-sided signed-rank test can give p < alpha (p >= 2^-n)."""
    return math.floor(math.log2(1 / alpha)) + 1


def mark(n: int, min_n: int) -> dict[str, object]:
    """The evidence keys every powered check carries: its n, the policy's min_n, and the mark."""
    return {"n": n, "min_n": min_n, UNDERPOWERED: n < min_n}


def power_note(n: int, min_n: int, unit: str) -> str:
    """The sentence a check's detail ends with when it rests on fewer samples than min_n."""
    if n >= min_n:
        return ""
    return f"; underpowered: {n} {unit}, fewer than the {min_n} its threshold needs (min_n), so it cannot gate alone"


def result_words(check: Check) -> str:
    """A check's result, apart from its policy severity: finding, pass or not measured, and whether it is
    underpowered."""
    if not check.measured:
        return "not measured"
    if check.failed:
        return "finding (underpowered: cannot fail a gate alone)" if check.underpowered else "finding"
    return "pass (underpowered: cannot rule the threshold out)" if check.underpowered else "pass"


def power_words(check: Check) -> str:
    """'n / min_n' of a check that has them, a dash otherwise."""
    evidence = check.evidence if isinstance(check.evidence, dict) else {}
    n, min_n = evidence.get("n"), evidence.get("min_n")
    return "—" if n is None or min_n is None else f"{n} / {min_n}"
