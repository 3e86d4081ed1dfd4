"""Test-versus-forget gap checks ("Ascent Fails to Forget"): no shadow models needed.

For a random forget set, a model retrained without it treats forget examples like test
examples, up to sampling error. So the audited model's forget-set metrics are compared
with its test-set metrics: accuracy (difference with a Newcombe interval built from
Wilson score intervals) and the loss and ``phi`` distributions (two-sample KS and
Mann-Whitney). Forget clearly better than test is residual memorization; clearly worse
is over-forgetting, itself detectable. Retain versus test is reported beside it as the
baseline generalization gap. Too few examples for a claim make the check inconclusive.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.stats import ks_2samp, mannwhitneyu, norm

from attacks.metrics import Interval

Verdict = Literal["memorization", "over-forgetting", "consistent", "inconclusive"]
MIN_EXAMPLES = 20


@dataclass(frozen=True)
class DistributionTest:
    """Two-sample comparison of one per-example quantity between sets A and B."""

    ks_statistic: float
    ks_pvalue: float
    prob_a_greater: float
    """Mann-Whitney effect: P(value from A > value from B), ties half; 0.5 = no shift."""
    mwu_pvalue: float


@dataclass(frozen=True)
class GapCheck:
    """Set A (forget, or retain) against set B (test) on one model."""

    name: str
    n_a: int
    n_b: int
    accuracy_a: float
    accuracy_b: float
    accuracy_diff: Interval
    """accuracy_a - accuracy_b with its interval."""
    loss: DistributionTest
    phi: DistributionTest
    verdict: Verdict
    reason: str


def wilson_interval(successes: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion."""
    if n == 0:
        return 0.0, 1.0
    z = norm.ppf(0.5 + level / 2)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(centre - half), float(centre + half)


def difference_interval(s_a: int, n_a: int, s_b: int, n_b: int, level: float = 0.95) -> Interval:
    """Newcombe's hybrid score interval for p_a - p_b (method 10), good at small n."""
    p_a, p_b = s_a / n_a, s_b / n_b
    l_a, u_a = wilson_interval(s_a, n_a, level)
    l_b, u_b = wilson_interval(s_b, n_b, level)
    d = p_a - p_b
    low = d - np.sqrt((p_a - l_a) ** 2 + (u_b - p_b) ** 2)
    high = d + np.sqrt((u_a - p_a) ** 2 + (p_b - l_b) ** 2)
    return Interval(float(d), float(low), float(high), level)


def compare_distributions(a: np.ndarray, b: np.ndarray) -> DistributionTest:
    ks = ks_2samp(a, b)
    mwu = mannwhitneyu(a, b, alternative="two-sided")
    return DistributionTest(
        ks_statistic=float(ks.statistic),
        ks_pvalue=float(ks.pvalue),
        prob_a_greater=float(mwu.statistic / (len(a) * len(b))),
        mwu_pvalue=float(mwu.pvalue),
    )


def gap_check(
    name: str,
    correct_a: np.ndarray,
    loss_a: np.ndarray,
    phi_a: np.ndarray,
    correct_b: np.ndarray,
    loss_b: np.ndarray,
    phi_b: np.ndarray,
    *,
    alpha: float = 0.05,
) -> GapCheck:
    """Compare set A with set B; the verdict reads A as the forget set."""
    correct_a, correct_b = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    n_a, n_b = len(correct_a), len(correct_b)
    if n_a == 0 or n_b == 0:
        raise ValueError("gap checks need examples in both sets")
    diff = difference_interval(int(correct_a.sum()), n_a, int(correct_b.sum()), n_b)
    loss = compare_distributions(np.asarray(loss_a, float), np.asarray(loss_b, float))
    phi = compare_distributions(np.asarray(phi_a, float), np.asarray(phi_b, float))
    if min(n_a, n_b) < MIN_EXAMPLES:
        verdict: Verdict = "inconclusive"
        reason = f"{min(n_a, n_b)} examples in the smaller set; at least {MIN_EXAMPLES} are needed"
    elif diff.low > 0 or (phi.mwu_pvalue < alpha and phi.prob_a_greater > 0.5):
        verdict = "memorization"
        reason = "forget examples are fitted better than test examples"
    elif diff.high < 0 or (phi.mwu_pvalue < alpha and phi.prob_a_greater < 0.5):
        verdict = "over-forgetting"
        reason = "forget examples are fitted worse than test examples"
    else:
        verdict = "consistent"
        reason = f"accuracy difference {diff.value:+.3f} within [{diff.low:+.3f}, {diff.high:+.3f}], no phi shift"
    return GapCheck(name, n_a, n_b, float(correct_a.mean()), float(correct_b.mean()), diff, loss, phi, verdict, reason)
