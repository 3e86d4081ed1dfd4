"""Utility (gated, with --retrained): over-forgetting as lost accuracy, the retrained model's
test accuracy minus the model's.

Ascent-style methods with too large a step degrade forget, retain and test examples
together (the forget set is not pushed below the test set, so the leakage attack sees
nothing); this is where they fail. Both models answer the same test examples, so the
interval is paired; and two retrains with different seeds differ too, so it is widened by
the seed-to-seed spread of a retrained model's accuracy, measured on the shadows.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import norm

from attacks.gap import paired_accuracy_difference, retrain_accuracy_sd
from attacks.signals import OUT
from audit_cli.checks.base import Check, CheckName
from audit_cli.checks.context import AuditContext
from audit_cli.gate import MIN_EXAMPLES, decide, evidence_caveat, what_would_decide
from audit_cli.report import CheckResult


def applies(ctx: AuditContext) -> str | None:
    return "no --retrained model given" if ctx.retrained is None else None


def model_accuracy_sd(ctx: AuditContext, rows: np.ndarray) -> float:
    """Seed-to-seed spread of a retrained model's accuracy on these examples
    (attacks.gap.retrain_accuracy_sd), measured on models trained with the recipe and never
    unlearned (a method's own spread, e.g. ascent wrecking shadows to varying degrees, is
    not a retrain's): the twins in class mode (they are retrained models), otherwise the
    shadows before unlearning, counting ``phi > 0`` (true-class probability above one half)
    as correct, a close proxy of argmax-correct for confident models."""
    signals, y = ctx.signals, ctx.dataset.y
    if ctx.forget_class is not None and signals.logits_reference is not None:
        correct = signals.logits_reference[:, rows].argmax(-1) == y[rows]
    else:
        correct = signals.phi_before[:, rows] > 0
    return retrain_accuracy_sd(correct, signals.states[:, rows] == OUT, min_examples=MIN_EXAMPLES)


def run(ctx: AuditContext) -> list[CheckResult]:
    rows, config = ctx.u_rows, ctx.config
    y = ctx.dataset.y[rows]
    ours, theirs = ctx.logits[rows].argmax(-1) == y, ctx.retrained.logits[rows].argmax(-1) == y
    model_sd = model_accuracy_sd(ctx, rows)
    unsized = not np.isfinite(model_sd)
    drop = paired_accuracy_difference(theirs, ours, model_sd=0.0 if unsized else model_sd)
    threshold = config.utility_drop_above
    n = len(rows)
    # Without the seed-to-seed spread the interval is too narrow to claim anything.
    decidable = n >= MIN_EXAMPLES and not unsized
    verdict = decide(drop.low, drop.high, threshold, config.gate) if decidable else "inconclusive"
    sentence = (
        f"test accuracy {ours.mean():.3f} against {theirs.mean():.3f} for the {ctx.retrained_label} model: drop "
        f"{drop.value:.3f} in [{drop.low:.3f}, {drop.high:.3f}]"
    )
    details = {"accuracy": float(ours.mean()), "retrained_accuracy": float(theirs.mean()), "n_test": n,
               "model_sd": None if unsized else model_sd}  # fmt: skip
    if ctx.retrained.estimated:
        # An estimate informs; only a real retrained model may fail a CI job.
        sentence += f" (information only: an estimate does not gate; the utility threshold is {threshold})"
        details["retrained_estimate"] = dict(ctx.retrained.estimated)
        return [CheckResult(CheckName.UTILITY.value, "info", sentence, score=drop.value, low=drop.low, high=drop.high,
                            details=details)]  # fmt: skip
    if verdict == "fail":
        sentence += f" > {threshold} (over-forgetting: the model lost what it should keep)"
    elif unsized:
        sentence += ("; fewer than 3 shadows left enough of these test examples unseen to size how much two "
                     "retrains differ by their seeds; use more shadows")
    elif verdict == "inconclusive" and n >= MIN_EXAMPLES:
        # Two retrains differ by their seeds alone: more test examples do not narrow that.
        floor = float(norm.ppf(0.975) * np.sqrt(2) * model_sd)
        sentence += "; " + what_would_decide(drop.value, drop.low, drop.high, threshold, floor=floor)
    elif verdict == "pass" and drop.high > threshold:
        sentence += evidence_caveat(drop.high, threshold)
    return [CheckResult(CheckName.UTILITY.value, verdict, sentence, score=drop.value, low=drop.low, high=drop.high,
                        threshold=threshold, gated=True, details=details)]  # fmt: skip


CHECK = Check(CheckName.UTILITY, run, applies, threshold="utility_drop_above")
