"""Retain-versus-test gap: the model's baseline generalization gap, the yardstick for the
forget-versus-test gap (information only)."""

from __future__ import annotations

from audit_cli.checks.base import RANDOM, Check, CheckName
from audit_cli.checks.context import AuditContext
from audit_cli.checks.forget_gap import split_gap
from audit_cli.report import CheckResult


def run(ctx: AuditContext) -> list[CheckResult]:
    baseline = split_gap(ctx, "retain-vs-test", ctx.r_rows, ctx.t_rows)
    return [
        CheckResult(
            CheckName.RETAIN_GAP.value,
            "info",
            f"baseline generalization gap: retain accuracy {baseline.accuracy_a:.3f}, test {baseline.accuracy_b:.3f}",
            score=baseline.accuracy_diff.value,
            low=baseline.accuracy_diff.low,
            high=baseline.accuracy_diff.high,
        )
    ]


CHECK = Check(CheckName.RETAIN_GAP, run, forgetting=RANDOM)
