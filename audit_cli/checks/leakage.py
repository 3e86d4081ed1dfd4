"""Leakage: ``2 * |AUC - 0.5|`` of the per-example attack that tells the forget set from
test examples, with a bootstrap interval. Where the residual memorisation share gates
(random forgetting, a share measured: audit_cli/checks/residual.py) this row keeps only its
fail side and reads "info" otherwise; elsewhere (class forgetting, a recipe that memorises
nothing measurable) it is the headline gate, with both sides as below.

Three outcomes (audit_cli/checks/gate.py): fail when the interval lies above ``fail_above``, pass
only when it lies at or below it, inconclusive otherwise, with what would decide it.
Also inconclusive whatever the interval: too few examples, or too many the shadows could
not score (the scored ones may not represent the set).

The attack's reading depends on the bank: it varies with which shadows were drawn, and it
is weaker with fewer of them (each example's Gaussians rest on fewer values). A pass
therefore needs a bound that allows for both, measured on random halves of the bank
(audit_cli/checks/gate.py): the upper half-width widened in quadrature by the halves' spread, plus
what the attack gained from half the shadows to all of them, extrapolated. A bank that
cannot show the leakage below the threshold that way says "use more shadows" rather than
pass. Failing needs no such care: a weakened attack that still shows leakage above the
threshold understates it.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from attacks.gap import shift_direction
from attacks.metrics import Interval, SeparationReport, roc_curve
from audit_cli.checks import residual
from audit_cli.checks.base import Check, CheckName
from audit_cli.checks.context import AuditContext
from audit_cli.checks.gate import GROWTH_FACTOR, MAX_AUC_WIDTH, MAX_UNSCORABLE, MIN_EXAMPLES, decide, what_would_decide
from audit_cli.report import CheckResult

if TYPE_CHECKING:
    from audit_cli.auditing.request import AuditConfig


def leakage_interval(auc: Interval) -> Interval:
    """2 * |AUC - 0.5| with the interval mapped through the fold at 0.5."""
    value = 2 * abs(auc.value - 0.5)
    if auc.low > 0.5:
        low, high = 2 * (auc.low - 0.5), 2 * (auc.high - 0.5)
    elif auc.high < 0.5:
        low, high = 2 * (0.5 - auc.high), 2 * (0.5 - auc.low)
    else:
        low, high = 0.0, 2 * max(auc.high - 0.5, 0.5 - auc.low)
    return Interval(value, low, high, auc.level)


def run(ctx: AuditContext) -> list[CheckResult]:
    f_phi, t_phi = ctx.target_phi[ctx.f_rows], ctx.target_phi[ctx.t_rows]
    direction, _ = shift_direction(f_phi, t_phi, seed=ctx.config.seed)
    unscorable = (float(np.isnan(ctx.scores[ctx.f_rows]).mean()), float(np.isnan(ctx.scores[ctx.t_rows]).mean()))
    if residual.gates(ctx):
        # The residual share decides a pass; this row keeps only its fail side, which
        # needs no allowance for the bank (a weaker attack that still shows leakage above
        # the threshold understates it).
        result = leakage_result(ctx.separation, direction, unscorable, ctx.mode, ctx.config, ctx.min_leakage)
        return [fail_side_only(result)]
    return [leakage_result(ctx.separation, direction, unscorable, ctx.mode, ctx.config, ctx.min_leakage,
                           # Halves that cannot be fitted leave the bank's share unmeasured: no pass.
                           half=ctx.half_bank_leakage or (math.nan, math.nan),
                           # An imported bank's size is not --shadows': no flag to suggest.
                           shadows=None if ctx.config.shadows_from is not None else ctx.signals.n_shadows)]  # fmt: skip


def leakage_result(
    sep: SeparationReport,
    direction: str,
    unscorable: tuple[float, float],
    mode: str,
    config: AuditConfig,
    min_leakage: float,
    *,
    half: tuple[float, float] | None = None,
    shadows: int | None = None,
) -> CheckResult:
    """The gated leakage row from the headline attack's separation: ``direction`` says which
    way the forget set leans, ``unscorable`` the shares of forget and test examples the
    shadows could not score, ``half`` the mean and spread of the leakage read from random
    halves of the ``shadows`` (None: not asked for; NaN: the halves could not be fitted, so
    no pass)."""
    threshold = config.fail_above
    leak = leakage_interval(sep.auc)
    pass_bound = leak.high
    unmeasured = half is not None and not all(math.isfinite(v) for v in half)
    if half is not None and not unmeasured:
        growth = GROWTH_FACTOR * max(0.0, leak.value - half[0])
        width = math.hypot(leak.high - leak.value, 1.96 * half[1])
        pass_bound = min(1.0, max(leak.high, leak.value + width + growth))
    details = {
        "direction": direction,
        "auc": sep.auc.value,
        # 2|AUC - 0.5| is biased upward near 0.5 (its null mean is not 0); the signed
        # difference is not, and says which way the attack leans.
        "auc_minus_half": sep.auc.value - 0.5,
        "n_forget": sep.n_positive,
        "n_test": sep.n_negative,
        "unscorable": {"forget": unscorable[0], "test": unscorable[1]},
        "min_decidable": min_leakage,
        "gate": config.gate,
        "half_bank_leakage": None if half is None or unmeasured else {"mean": half[0], "sd": half[1]},
        "pass_bound": None if unmeasured else pass_bound,
    }
    common = dict(score=leak.value, low=leak.low, high=leak.high, threshold=threshold, gated=True, details=details)
    signed = f"AUC - 0.5 = {sep.auc.value - 0.5:+.3f}"
    name = CheckName.LEAKAGE.value
    if min(sep.n_positive, sep.n_negative) < MIN_EXAMPLES:
        return CheckResult(name, "inconclusive", f"{sep.n_positive} forget and {sep.n_negative} test examples are "
                           f"too few for a claim (at least {MIN_EXAMPLES} each)", **common)  # fmt: skip
    if config.gate == "evidence" and sep.auc.high - sep.auc.low > MAX_AUC_WIDTH:
        return CheckResult(name, "inconclusive", "the AUC interval is too wide to say anything; use more examples",
                           **common)  # fmt: skip
    if max(unscorable) > MAX_UNSCORABLE:
        return CheckResult(
            name,
            "inconclusive",
            f"{mode.upper()} could not score {unscorable[0]:.0%} of the forget and {unscorable[1]:.0%} of the "
            f"test examples (more than {MAX_UNSCORABLE:.0%}): the shadows observe too few of them; use more shadows",
            **common,
        )
    verdict = decide(leak.low, leak.high, threshold, config.gate)
    if verdict == "pass" and config.gate == "decide" and unmeasured:
        return CheckResult(name, "inconclusive", (
            f"leakage {leak.value:.3f} is at most {leak.high:.3f} on this bank's examples, but the bank has too few "
            f"shadows to measure how much the reading depends on them ({signed}); use more shadows"),
            **common)  # fmt: skip
    if verdict == "pass" and config.gate == "decide" and pass_bound > threshold:
        more = f" (--shadows {2 * shadows})" if shadows else ""
        return CheckResult(name, "inconclusive", (
            f"leakage {leak.value:.3f} is at most {leak.high:.3f} on this bank's examples, but halves of the bank read "
            f"{half[0]:.3f} (sd {half[1]:.3f}): allowing for other shadows and more of them, up to {pass_bound:.3f} "
            f"> {threshold} ({signed}); use more shadows{more}"), **common)  # fmt: skip
    if verdict == "fail":
        which = f" ({direction})" if direction != "undetermined" else ""
        sentence = (
            f"{mode.upper()} tells the forget set from unseen examples{which}: leakage "
            f"{leak.value:.3f}, at least {leak.low:.3f} > {threshold} ({signed})"
        )
    elif verdict == "pass" and leak.high <= threshold:
        gained = f", {pass_bound:.3f} allowing for other and more shadows" if pass_bound > leak.high else ""
        sentence = (f"leakage {leak.value:.3f} is shown to be at most {leak.high:.3f}{gained} <= {threshold} "
                    f"({signed})")
    elif verdict == "pass":
        sentence = (
            f"no leakage above {threshold} can be shown (--gate evidence): {leak.value:.3f} in "
            f"[{leak.low:.3f}, {leak.high:.3f}]; leakage up to {leak.high:.3f} is not ruled out ({signed})"
        )
    else:
        sentence = (
            f"leakage {leak.value:.3f} in [{leak.low:.3f}, {leak.high:.3f}] neither above nor below {threshold} "
            f"({signed}); " + what_would_decide(leak.value, leak.low, leak.high, threshold)
        )
    return CheckResult(name, verdict, sentence, **common)


def fail_side_only(result: CheckResult) -> CheckResult:
    """The leakage row of an audit whose pass the residual share decides: a fail stands; any
    other reading is information, said as such (never a pass of its own)."""
    if result.verdict == "fail":
        return result
    threshold, details = result.threshold, result.details
    unscorable = max(details["unscorable"].values())
    if min(details["n_forget"], details["n_test"]) < MIN_EXAMPLES or unscorable > MAX_UNSCORABLE:
        # No claim either way: keep the reason.
        return replace(result, verdict="info", gated=False, sentence=result.sentence + "; this check can only fail")
    sentence = (
        f"leakage {result.score:.3f} in [{result.low:.3f}, {result.high:.3f}]: not shown above {threshold} "
        f"(AUC - 0.5 = {result.details['auc_minus_half']:+.3f}); this check can only fail, the residual "
        "memorisation share decides a pass"
    )
    return replace(result, verdict="info", sentence=sentence, gated=False)


def curves(ctx: AuditContext, max_points: int = 400) -> dict:
    """The headline attack's ROC points (thinned to ``max_points``) and the scores of both
    sets, for plots."""
    scores = np.r_[ctx.scores[ctx.f_rows], ctx.scores[ctx.t_rows]]
    labels = ctx.labels
    keep = ~np.isnan(scores)
    fpr, tpr = roc_curve(scores[keep], labels[keep])
    if len(fpr) > max_points:
        idx = np.unique(np.r_[np.linspace(0, len(fpr) - 1, max_points).astype(int), len(fpr) - 1])
        fpr, tpr = fpr[idx], tpr[idx]
    finite = np.isfinite(scores)
    return {
        "roc": {"fpr": [round(float(v), 6) for v in fpr], "tpr": [round(float(v), 6) for v in tpr]},
        "scores": {
            "forget": [round(float(v), 4) for v in scores[labels & finite]],
            "test": [round(float(v), 4) for v in scores[~labels & finite]],
        },
    }


CHECK = Check(CheckName.LEAKAGE, run, threshold="fail_above")
