"""Reference metrics (with --retrained, information): the headline attack on the retrained
model (the score a perfect unlearner would get), the average gap over UA, MIA-efficacy, RA
and TA, output divergences per split, and with --original the detrimental-unlearning ratio
(attacks/reference.py)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from attacks.metrics import separation
from attacks.population import mia_efficacy, threshold_scores
from attacks.reference import UnlearningMetrics, average_gap, detrimental_ratio, output_divergence
from attacks.signals import augmented_confidence
from audit_cli.checks.base import Check, CheckName, Outcome, Skip
from audit_cli.checks.context import AuditContext, attack_scores
from audit_cli.report import CheckResult


def applies(ctx: AuditContext) -> str | None:
    return "no --retrained model given" if ctx.retrained is None else None


def unlearning_metrics(logits: np.ndarray, y: np.ndarray, f_rows, r_rows, t_rows) -> UnlearningMetrics:
    conf = threshold_scores(logits, y)["confidence"]
    correct = logits.argmax(-1) == y
    mia = mia_efficacy(conf[r_rows], conf[t_rows], conf[f_rows])
    return UnlearningMetrics(
        100 * correct[f_rows].mean(), 100 * correct[r_rows].mean(), 100 * correct[t_rows].mean(), 100 * mia
    )


def run(ctx: AuditContext) -> list[Outcome]:
    dataset, f_rows, r_rows, u_rows = ctx.dataset, ctx.f_rows, ctx.r_rows, ctx.u_rows
    logits, ref_logits, sep = ctx.logits, ctx.retrained.logits, ctx.separation
    ref_phi = augmented_confidence(ctx.retrained.view_logits, dataset.y)
    ref_scores, _ = attack_scores(ctx.signals, dataset, ref_phi, ctx.method, ctx.config)
    ref_sep = separation(np.r_[ref_scores[f_rows], ref_scores[ctx.t_rows]], ctx.labels, n_bootstrap=200,
                         seed=ctx.config.seed)  # fmt: skip
    gap = abs(sep.auc.value - ref_sep.auc.value)
    ref = ctx.retrained_label
    estimated = {"retrained_estimate": dict(ctx.retrained.estimated)} if ctx.retrained.estimated else {}
    out: list[Outcome] = [
        CheckResult(
            f"{ctx.mode} gap to {ref}",
            "info",
            f"|AUC(model) - AUC({ref})| = {gap:.3f} (model {sep.auc.value:.3f}, {ref} {ref_sep.auc.value:.3f})"
            + estimate_sentence(ctx.retrained.estimated),
            score=gap,
            details={"auc_model": sep.auc.value, "auc_retrained": ref_sep.auc.value,
                     "auc_retrained_interval": [ref_sep.auc.low, ref_sep.auc.high]} | estimated,
        )
    ]  # fmt: skip
    model_m = unlearning_metrics(logits, dataset.y, f_rows, r_rows, u_rows)
    ref_m = unlearning_metrics(ref_logits, dataset.y, f_rows, r_rows, u_rows)
    out.append(
        CheckResult(
            "average gap",
            "info",
            f"mean |difference| to the {ref} model over UA, MIA-efficacy, RA and TA: "
            f"{average_gap(model_m, ref_m):.2f} points",
            score=average_gap(model_m, ref_m),
            details={"model": model_m.__dict__, "retrained": ref_m.__dict__},
        )
    )
    for split, rows in (("forget", f_rows), ("retain", r_rows), ("test", u_rows)):
        d = output_divergence(logits[rows], ref_logits[rows])
        out.append(
            CheckResult(
                f"divergence to {ref} ({split})",
                "info",
                f"mean KL({ref} || model) {d.kl:.4f} nats, total variation {d.total_variation:.4f}",
                score=d.kl,
                details={"total_variation": d.total_variation},
            )
        )
    if ctx.original is None:
        out.append(Skip("detrimental-unlearning ratio", "no --original model given"))
        return out
    rows = np.r_[f_rows, u_rows]
    ratio = detrimental_ratio(
        output_divergence(logits[rows], ref_logits[rows]).kl,
        output_divergence(ctx.original.logits[rows], ref_logits[rows]).kl,
    )
    out.append(
        CheckResult(
            "detrimental-unlearning ratio",
            "info",
            "the unlearned model is "
            + ("further from" if ratio > 1 else "closer to")
            + f" the {ref} model than the original was (ratio {ratio:.2f}, output space)",
            score=ratio,
        )
    )
    return out


def estimate_sentence(estimated: Mapping[str, object] | None) -> str:
    """What the reader must know of an estimated retrained model: how it was made and how
    far from a converged retrain it can be."""
    if not estimated:
        return ""
    sentence = f"; the retrained model is estimated by {estimated['method']} ({estimated['form']} form)"
    bound = estimated.get("relative_error_bound")
    if bound is None:
        return sentence + ", its error not bounded for this model (docs/results.md measures it)"
    return sentence + f", within {bound:.1e} (relative) of the retained objective's minimiser"


CHECK = Check(CheckName.REFERENCE, run, applies)
