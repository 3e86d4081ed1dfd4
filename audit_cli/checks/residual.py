"""Residual memorisation, the headline gate of random forgetting: the share of what training
put into the forget set's confidence that the audited model still shows, 0 for exact
unlearning and 1 for a model that forgot nothing (attacks/residual.py: cross-fitted on the
bank's halves, with a bootstrap over the examples, the bank held fixed).

Unlike ``2|AUC - 0.5|``, whose value for a model that forgot nothing depends on how strongly
the recipe memorises (about 0.17 on digits, 0.75 on mnist1d), this share means the same on
every dataset, and it counts how far each example sits from where exact unlearning would
put it, not only the order of the scores: its numerator is, up to a constant, the summed
Gaussian log-likelihood ratio of "trained on" against "never seen" over the forget set.

The gate, at one look of a sequential audit (audit_cli/shadows/looks.py) spending ``alpha``:

- fail when the data reject exact unlearning (the share's one-sided bound at ``alpha / 2``
  excludes 0, so an exact unlearner is failed at most ``alpha`` of the time over the looks
  and both directions) and the estimate lies beyond the threshold: above it (memorisation
  kept), or below minus it (over-forgetting: the forget set pushed below where exact
  unlearning leaves it, the failure of ascent gone too far);
- pass when the share is shown to lie within the threshold of 0 (an equivalence test: both
  one-sided bounds at ``alpha`` inside ``[-threshold, threshold]``);
- otherwise inconclusive, with the thresholds at which an exact unlearner measured this
  precisely would pass half and nine-tenths of the time.

The fail side tests the exact-unlearning null rather than "share above the threshold"
because only it has power at the counts audits have: on digits (30% forgotten, 64 shadows)
the share's sd is about 0.1-0.2, so a model keeping 60% of its memorisation is shown above
0.3 in about half the draws but shown not exact in all of them. The price: a model whose
true share lies just under the threshold can be failed when its estimate lands above it
(a model keeping 30% at a threshold of 0.3 is failed in up to half of the draws); the
validity suite reports that rate (docs/validity.md).
"""

from __future__ import annotations

import math

from scipy.stats import norm

from attacks.residual import ResidualReport
from audit_cli.checks.base import RANDOM, Check, CheckName, Outcome
from audit_cli.checks.context import AuditContext
from audit_cli.checks.gate import MIN_EXAMPLES
from audit_cli.report import CheckResult

NAME = CheckName.RESIDUAL.value
# An exact unlearner's estimate is about N(0, sd) and it passes when |estimate| + z sd is at
# most the threshold: half the time where |estimate| <= 0.674 sd, nine-tenths where
# |estimate| <= 1.645 sd (both sides count).
Z_HALF, Z_NINE_TENTHS = float(norm.ppf(0.75)), float(norm.ppf(0.95))


def applies(ctx: AuditContext) -> str | None:
    return None if isinstance(ctx.residual, ResidualReport) else f"{ctx.residual}; use more shadows"


def bounds(report: ResidualReport, alpha: float) -> tuple[float, float]:
    """The share's one-sided bounds at error ``alpha`` each, from its bootstrap spread (a
    normal reading: at the small errors later looks spend, a percentile of a few hundred
    draws would rest on a handful of them)."""
    z = float(norm.ppf(1 - alpha))
    value, sd = report.share.value, report.sd
    return value - z * sd, value + z * sd


def power_thresholds(report: ResidualReport, alpha: float) -> tuple[float, float]:
    """The thresholds at which an exact unlearner measured as precisely as this model passes
    half and nine-tenths of the time: its estimate is about N(0, sd), and it passes when
    ``|estimate| + z sd`` is at most the threshold."""
    z = float(norm.ppf(1 - alpha))
    return (z + Z_HALF) * report.sd, (z + Z_NINE_TENTHS) * report.sd


def run(ctx: AuditContext) -> list[Outcome]:
    report, look, config = ctx.residual, ctx.look, ctx.config
    share, memorised = report.share, report.memorisation
    threshold = config.residual_above
    details = {
        "memorisation": [memorised.value, memorised.low, memorised.high],
        "n_forget": report.n_forget,
        "n_test": report.n_test,
        "n_shadows": report.n_shadows,
        "look": look.index + 1,
        "looks": look.count,
        "alpha": look.alpha,
    }
    if not (math.isfinite(share.value) and math.isfinite(report.sd)):
        sentence = (
            f"the shadows show no memorisation of the forget set to measure a share of (mean squared gap "
            f"{memorised.value:.3g} in [{memorised.low:.3g}, {memorised.high:.3g}]); the leakage gate decides"
        )
        return [CheckResult(NAME, "info", sentence, details=details)]
    low, high = bounds(report, look.alpha)
    fail_low, fail_high = bounds(report, look.alpha / 2)
    half, nine_tenths = power_thresholds(report, look.alpha)
    details |= {"sd": report.sd, "fail_bounds": [fail_low, fail_high], "exact_passes_half_from": half,
                "exact_passes_nine_tenths_from": nine_tenths, "interval95": [share.low, share.high]}  # fmt: skip
    common = dict(score=share.value, low=low, high=high, threshold=threshold, gated=True, details=details)
    kept = (f"the forget set keeps {_percent(share.value)} [{_percent(low)}, {_percent(high)}] of the memorisation "
            "training gave it")  # fmt: skip
    bank = f"{report.n_shadows} shadows, look {look.index + 1} of {look.count}"
    if fail_low > 0 and share.value > threshold:
        return [CheckResult(NAME, "fail", (
            f"{kept}, more than {threshold:.0%}; not exact unlearning (at least {_percent(fail_low)} > 0; {bank})"),
            **common)]  # fmt: skip
    if fail_high < 0 and share.value < -threshold:
        return [CheckResult(NAME, "fail", (
            f"over-forgetting: {kept}; the forget set is pushed below where exact unlearning leaves it, by more "
            f"than {threshold:.0%} of that memorisation (at most {_percent(fail_high)} < 0; {bank})"),
            **common)]  # fmt: skip
    if min(report.n_forget, report.n_test) < MIN_EXAMPLES:
        return [CheckResult(NAME, "inconclusive", (
            f"{kept}; {report.n_forget} forget and {report.n_test} test examples are too few to show it within "
            f"{threshold:.0%} of exact unlearning (at least {MIN_EXAMPLES} each)"), **common)]  # fmt: skip
    if -threshold <= low and high <= threshold:
        return [CheckResult(NAME, "pass", f"{kept}: within {threshold:.0%} of exact unlearning ({bank})", **common)]
    if config.gate == "evidence":
        return [CheckResult(NAME, "pass", (
            f"{kept}; not shown within {threshold:.0%} of exact unlearning, but not shown beyond it either "
            f"(--gate evidence passes it; {bank})"), **common)]  # fmt: skip
    more = "" if look.last else "; the next look adds shadows"
    power = (f"an exact unlearner measured this precisely passes half the time at a threshold of {half:.2f} "
             f"and nine-tenths at {nine_tenths:.2f}")  # fmt: skip
    return [CheckResult(NAME, "inconclusive", (
        f"{kept}: neither shown within {threshold:.0%} of exact unlearning nor shown beyond it ({bank}); "
        f"{power}{more}"), **common)]  # fmt: skip


def _percent(share: float) -> str:
    """A share as a whole percentage; a share that rounds to 0 reads 0%, never -0%."""
    text = f"{share:.0%}"
    return "0%" if text == "-0%" else text


def decided(ctx: AuditContext) -> bool:
    """Whether this look settles the residual gate (a sequential audit stops here)."""
    if not isinstance(ctx.residual, ResidualReport):
        return False
    rows = [r for r in run(ctx) if isinstance(r, CheckResult)]
    return bool(rows) and rows[0].gated and rows[0].verdict in ("pass", "fail")


def gates(ctx: AuditContext) -> bool:
    """Whether the residual share gates this audit (else the leakage check keeps its pass side)."""
    return (ctx.forgetting == "random" and isinstance(ctx.residual, ResidualReport)
            and math.isfinite(ctx.residual.share.value) and math.isfinite(ctx.residual.sd))  # fmt: skip


CHECK = Check(CheckName.RESIDUAL, run, applies, forgetting=RANDOM, threshold="residual_above")
