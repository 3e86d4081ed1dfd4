"""Forget-versus-test gap without shadows: accuracy and confidence (phi) of the forget set
against test examples, each tested at half the level (attacks/gap.py, Bonferroni over the
two; the loss comparison is reported, not tested). A forget set the model still fits
better than unseen data is a warning even where the attack is weak."""

from __future__ import annotations

from attacks.gap import gap_check
from audit_cli.checks.base import Check, CheckName
from audit_cli.checks.context import AuditContext
from audit_cli.report import CheckResult


def applies(ctx: AuditContext) -> str | None:
    if ctx.forgetting == "class":
        return "class forgetting: forget-class accuracy and MIA-NN read where the class goes"
    return None


def split_gap(ctx: AuditContext, name: str, a_rows, b_rows):
    """attacks.gap.gap_check between two sets of rows of the audited model."""
    y, logits, loss, phi = ctx.dataset.y, ctx.logits, -ctx.population["loss"], ctx.target_phi
    return gap_check(
        name,
        logits[a_rows].argmax(-1) == y[a_rows],
        loss[a_rows],
        phi[a_rows],
        logits[b_rows].argmax(-1) == y[b_rows],
        loss[b_rows],
        phi[b_rows],
    )


def run(ctx: AuditContext) -> list[CheckResult]:
    gap = split_gap(ctx, "forget-vs-test", ctx.f_rows, ctx.t_rows)
    return [
        CheckResult(
            CheckName.FORGET_GAP.value,
            "inconclusive" if gap.verdict == "inconclusive" else "info",
            f"{gap.verdict}: {gap.reason} (forget accuracy {gap.accuracy_a:.3f}, test {gap.accuracy_b:.3f}; "
            f"phi Mann-Whitney p={gap.phi.mwu_pvalue:.3g})",
            score=gap.accuracy_diff.value,
            low=gap.accuracy_diff.low,
            high=gap.accuracy_diff.high,
            details={
                "verdict": gap.verdict,
                "ks_phi_p": gap.phi.ks_pvalue,
                "prob_forget_phi_higher": gap.phi.prob_a_greater,
            },
        )
    ]


CHECK = Check(CheckName.FORGET_GAP, run, applies)
