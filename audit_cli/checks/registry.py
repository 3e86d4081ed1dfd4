"""Every check of the audit, in report order, and what is derived from them: which checks
are gated and the setting holding each one's threshold.

To add a check: write a module in this package with a ``run(ctx)`` (and ``applies(ctx)``
when it needs an input the audit may lack) and a ``CHECK = Check(...)``, then list it here.
"""

from __future__ import annotations

from audit_cli.checks import (
    attack,
    class_accuracy,
    class_confusion,
    effect,
    forget_gap,
    klom,
    leakage,
    mia_nn,
    mia_nn_model,
    population,
    reference,
    residual,
    retain_gap,
    rmia,
    utility,
)
from audit_cli.checks.base import Check, Skip
from audit_cli.checks.context import AuditContext
from audit_cli.report import CheckResult

CHECKS: tuple[Check, ...] = (
    leakage.CHECK,
    residual.CHECK,
    attack.CHECK,
    rmia.CHECK,
    forget_gap.CHECK,
    retain_gap.CHECK,
    class_accuracy.CHECK,
    class_confusion.CHECK,
    mia_nn.CHECK,
    mia_nn_model.CHECK,
    population.CHECK,
    effect.CHECK,
    reference.CHECK,
    utility.CHECK,
    klom.CHECK,
)


def run_checks(ctx: AuditContext) -> tuple[list[CheckResult], list[tuple[str, str]]]:
    """The report rows of every check that belongs to this kind of forgetting, and the
    (check, reason) of every one that could not run."""
    results: list[CheckResult] = []
    skipped: list[tuple[str, str]] = []
    for check in CHECKS:
        if ctx.forgetting not in check.forgetting:
            continue
        reason = check.applies(ctx)
        if reason is not None:
            skipped.append((check.name.value, reason))
            continue
        for outcome in check.run(ctx):
            if isinstance(outcome, Skip):
                skipped.append((outcome.name, outcome.reason))
            else:
                results.append(outcome)
    return results, skipped
