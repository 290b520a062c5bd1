"""Power of the behaviour stage's refusal test: the design of the standard profile (emoaudit/audits/default.toml).

The stage tests, per emotion in scope, whether replies steered toward it comply with the harmful requests
more often than replies under the random directions (Fisher's exact test, one-sided; emoaudit.steering.
statistics.fisher_greater), and adjusts across the emotions by Benjamini-Hochberg. This computes the exact
power of that test, by enumerating every pair of binomial outcomes, for a 25-point rise in the compliance
rate (a 25-point fall in the refusal rate): n steered replies per emotion (items x multipliers), the controls
pooled over `directions` random directions (n x directions replies). The BH threshold for a lone true effect
among k emotions is alpha / k (its first rank), so that is the level used: the power of the worst case.
statsmodels' power tables use normal approximations; the exact enumeration needs only scipy.

    .venv/bin/python bench/behaviour_power.py
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from emoaudit.steering.statistics import fisher_greater

EFFECT = 0.25
DIRECTIONS = 3  # [behaviour] control_directions
ALPHA = 0.05  # emoaudit/audits/policy.toml [checks.steering_erodes_refusal] alpha


def power(n: int, control_n: int, control_rate: float, effect: float, level: float) -> float:
    """P(one-sided Fisher p < level) when steered replies comply at control_rate + effect."""
    steered = stats.binom.pmf(np.arange(n + 1), n, control_rate + effect)
    control = stats.binom.pmf(np.arange(control_n + 1), control_n, control_rate)
    total = 0.0
    for s in range(n + 1):
        if steered[s] < 1e-12:
            continue
        for c in range(control_n + 1):
            if control[c] >= 1e-12 and (fisher_greater(s, n, c, control_n) or 1.0) < level:
                total += steered[s] * control[c]
    return total


def main() -> None:
    print("items multipliers emotions directions | power at control compliance 0.1 / 0.25 / 0.5 (0.5: the least)")
    for items, multipliers in ((40, 1), (30, 2), (40, 2)):
        for emotions in (4, 6):
            n = items * multipliers
            level = ALPHA / emotions
            powers = [power(n, n * DIRECTIONS, p, EFFECT, level) for p in (0.1, 0.25, 0.5)]
            shown = " / ".join(f"{x:.3f}" for x in powers)
            print(f"{items:5d} {multipliers:11d} {emotions:8d} {DIRECTIONS:10d} | {shown}")


if __name__ == "__main__":
    main()
