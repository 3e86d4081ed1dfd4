"""The headline attack's strength as information: AUC, balanced accuracy and TPR at low
false-positive rates (where the counts allow one), forget against test."""

from __future__ import annotations

from attacks.metrics import SeparationReport
from audit_cli.checks.base import Check, CheckName
from audit_cli.checks.context import AuditContext
from audit_cli.report import CheckResult


def tpr_sentence(sep: SeparationReport) -> str:
    """TPR at each low false-positive rate, or why the counts cannot show one."""
    return "; ".join(f"TPR {t.tpr.value:.3f} at {t.fpr:.1%} FPR" if t.tpr else f"TPR at {t.fpr:.1%} FPR: inconclusive"
                     for t in sep.tpr_at_fpr)  # fmt: skip


def tpr_details(sep: SeparationReport) -> dict:
    """The same as report details: FPR -> [TPR, low, high], or None."""
    return {str(t.fpr): ([t.tpr.value, t.tpr.low, t.tpr.high] if t.tpr else None) for t in sep.tpr_at_fpr}


def run(ctx: AuditContext) -> list[CheckResult]:
    sep = ctx.separation
    acc = sep.balanced_accuracy
    return [
        CheckResult(
            f"{ctx.mode} attack",
            "info",
            f"AUC {sep.auc.value:.3f}, balanced accuracy {acc.value:.3f}; " + tpr_sentence(sep),
            score=sep.auc.value,
            low=sep.auc.low,
            high=sep.auc.high,
            details={
                "balanced_accuracy": [acc.value, acc.low, acc.high],
                "tpr_at_fpr": tpr_details(sep),
                "n_dropped": sep.n_dropped,
            },
        )
    ]


CHECK = Check(CheckName.ATTACK, run)
