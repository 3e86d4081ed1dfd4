"""The gate: how a gated check's interval becomes pass, fail or inconclusive, and what the
forget and test counts alone let an audit decide.

Three outcomes (the default, ``decide``): fail when the interval's lower bound exceeds the
threshold (the data show leakage above it); pass only when the upper bound is at or below
it (the data show leakage below it); otherwise inconclusive, with what would decide it.
``evidence`` is the older reading, kept as an explicit option: pass unless the lower bound
exceeds the threshold, so an interval too wide to show anything passes. It answers "is
there evidence of leakage?", not "is leakage shown to be small?", and the report says so.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy.stats import norm

Gate = Literal["decide", "evidence"]
GATES = ("decide", "evidence")
Outcome = Literal["pass", "fail", "inconclusive"]
# Beyond this factor "how many more examples" is no practical advice.
MAX_FACTOR = 100
# Below this many forget or test examples no claim about separation is made.
MIN_EXAMPLES = 20
# An AUC interval wider than this says nothing useful (the evidence gate's floor).
MAX_AUC_WIDTH = 0.25
# The attack fits each example's Gaussians to a finite bank of shadows, so its reading
# depends on the bank: on a model that forgot nothing (digits, 30% forgotten, 256 shadows)
# random 32, 64 and 128 of them read leakage 0.120, 0.134 and 0.140 on average (sd 0.034,
# 0.026, 0.018) and all 256 read 0.159. The bootstrap over examples sees neither the spread
# nor the growth. Random halves of the bank measure both (a delete-half jackknife): the
# spread widens the pass bound in quadrature, and the growth from half the shadows to all
# of them is added times 1 / (sqrt(2) - 1), what an error shrinking as 1/sqrt(shadows)
# has left to gain.
HALF_BANK_DRAWS = 16
GROWTH_FACTOR = 1 / (2**0.5 - 1)
# More unscorable forget or test examples than this share make the leakage inconclusive:
# the scored ones may not represent the set.
MAX_UNSCORABLE = 0.1


def decide(low: float, high: float, threshold: float, gate: Gate = "decide") -> Outcome:
    """The verdict of one gated check from its interval (higher scores are worse)."""
    if gate not in GATES:
        raise ValueError(f"gate must be one of {', '.join(GATES)}, got {gate!r}")
    if not (np.isfinite(low) and np.isfinite(high)):
        return "inconclusive"
    if low > threshold:
        return "fail"
    if high <= threshold or gate == "evidence":
        return "pass"
    return "inconclusive"


def evidence_caveat(high: float, threshold: float) -> str:
    """What a pass under ``--gate evidence`` leaves open when the interval reaches above the
    threshold: said in the check's sentence, so that it never reads as a shown pass."""
    return f"; not shown at or below {threshold}: up to {high:.3f} is not ruled out (--gate evidence passes it)"


def closing_clause(verdict: str, value: float, low: float, high: float, threshold: float, *,
                   failed: str = "", floor: float = 0.0) -> str:  # fmt: skip
    """The end of a gated check's sentence, the same in every check: a fail names the
    threshold it crossed (and ``failed``, what that means for this check); an inconclusive
    result says what would decide it; a pass the interval does not show says what is left
    open (``--gate evidence``). A pass shown below the threshold needs no more words."""
    if verdict == "fail":
        return f" > {threshold}{failed}"
    if verdict == "inconclusive":
        return "; " + what_would_decide(value, low, high, threshold, floor=floor)
    if verdict == "pass" and high > threshold:
        return evidence_caveat(high, threshold)
    return ""


def what_would_decide(value: float, low: float, high: float, threshold: float, *, floor: float = 0.0) -> str:
    """For an interval that straddles the threshold: how much more data would settle it at
    this estimate (the interval narrows as one over the square root of the sample size).

    ``floor``: a half-width more examples cannot shrink below (the seed-to-seed spread of
    two retrained models, for utility); within it of the threshold, no amount decides."""
    if not np.isfinite(value) or value == threshold:
        return f"the estimate sits on the threshold {threshold}; more data would not move it off"
    if abs(threshold - value) <= floor:
        return (
            f"more examples would not decide it: models retrained with other seeds alone differ by up to "
            f"{floor:.3f} here, as much as the estimate's distance to {threshold}"
        )
    below = value < threshold
    factor = ((high - value) / (threshold - value)) ** 2 if below else ((value - low) / (value - threshold)) ** 2
    many = f"about {factor:.1f}x as many" if factor <= MAX_FACTOR else f"more than {MAX_FACTOR}x as many"
    if below:
        return (
            f"{many} examples would show it below {threshold} at this estimate (or a threshold of at least {high:.3f})"
        )
    return f"{many} examples would show it above {threshold} at this estimate"


def null_auc_sd(n_positive: int, n_negative: int) -> float:
    """Standard deviation of an AUC estimate at AUC 0.5 (Mann-Whitney under the null)."""
    return float(np.sqrt((n_positive + n_negative + 1) / (12.0 * n_positive * n_negative)))


def min_decidable_leakage(n_positive: int, n_negative: int, level: float = 0.95) -> float:
    """The smallest leakage threshold (``2|AUC - 0.5|``) at which a perfect unlearner passes
    the ``decide`` gate at least half the time, from the example counts alone.

    At AUC 0.5 the estimate's error is about N(0, sd); the leakage interval's upper bound is
    ``2(|error| + z sd)``, whose median is ``2(z_0.75 + z) sd``. Below that threshold most
    exact unlearners come out inconclusive, so the audit says so before training shadows.
    It is a floor: the leakage pass bound adds the bank's own noise, known only once the
    shadows exist, so at this threshold an exact unlearner passes somewhat less than half
    the time.
    """
    if min(n_positive, n_negative) < 1:
        return float("inf")
    z = norm.ppf(0.5 + level / 2)
    return float(2 * (norm.ppf(0.75) + z) * null_auc_sd(n_positive, n_negative))
