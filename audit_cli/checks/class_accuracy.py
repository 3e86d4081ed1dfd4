"""Forget-class accuracy (class forgetting, gated): how often the model still names the
forgotten class for its training examples, beyond what models retrained without the class
(the bank's twins, about 0) do; a Wilson interval shifted by the twins' rate."""

from __future__ import annotations

from attacks.gap import wilson_interval
from attacks.metrics import Interval
from audit_cli.checks.base import CLASS, Check, CheckName
from audit_cli.checks.context import AuditContext
from audit_cli.checks.gate import MIN_EXAMPLES, closing_clause, decide
from audit_cli.report import CheckResult


def run(ctx: AuditContext) -> list[CheckResult]:
    c, f_rows, config = int(ctx.forget_class), ctx.f_rows, ctx.config
    twins = ctx.signals.logits_reference
    correct = ctx.logits[f_rows].argmax(-1) == c
    twin_acc = float((twins[:, f_rows].argmax(-1) == c).mean())
    low, high = wilson_interval(int(correct.sum()), len(correct))
    excess = Interval(float(correct.mean()) - twin_acc, low - twin_acc, high - twin_acc)
    threshold = config.forget_class_accuracy_above
    enough = len(correct) >= MIN_EXAMPLES
    verdict = decide(excess.low, excess.high, threshold, config.gate) if enough else "inconclusive"
    sentence = (
        f"the model classifies {correct.mean():.1%} of the forgotten class's training examples as class {c} "
        f"(retrained twins: {twin_acc:.1%}); excess {excess.value:.3f} in [{excess.low:.3f}, {excess.high:.3f}]"
    )
    if enough:
        sentence += closing_clause(verdict, excess.value, excess.low, excess.high, threshold)
    return [
        CheckResult(
            CheckName.FORGET_CLASS_ACCURACY.value,
            verdict,
            sentence,
            score=excess.value,
            low=excess.low,
            high=excess.high,
            threshold=threshold,
            gated=True,
            details={"accuracy": float(correct.mean()), "twin_accuracy": twin_acc, "n": len(correct)},
        )
    ]


CHECK = Check(CheckName.FORGET_CLASS_ACCURACY, run, forgetting=CLASS, threshold="forget_class_accuracy_above")
