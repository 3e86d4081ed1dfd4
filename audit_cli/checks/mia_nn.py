"""MIA-NN, sample level (class forgetting, gated): a classifier on the neighbor classes'
probabilities tells the forgotten class's training examples from never-seen ones. Scored
as ``2(AUC - chance)`` where chance is what retrained twins reach on the same examples,
with a prediction interval from the twins' spread (attacks/mia_nn.py)."""

from __future__ import annotations

import numpy as np

from attacks.metrics import Interval
from attacks.mia_nn import excess_over_null, neighbor_features, sample_level
from audit_cli.checks.base import CLASS, Check, CheckName
from audit_cli.checks.context import AuditContext
from audit_cli.checks.gate import MIN_EXAMPLES, closing_clause, decide
from audit_cli.report import CheckResult

# Retrained twins whose MIA-NN AUCs on the same examples give the attack's null
# distribution (its centre is the chance level, its spread the statistic's noise).
TWIN_BASELINE = 32


def applies(ctx: AuditContext) -> str | None:
    if ctx.dataset.num_classes < 3:
        # One retained class: renormalized over it, every input reads probability 1.
        return "two classes: the neighbor-class spread MIA-NN reads does not exist"
    return None


def run(ctx: AuditContext) -> list[CheckResult]:
    c, config = int(ctx.forget_class), ctx.config
    twins = ctx.signals.logits_reference
    neighbors, _ = ctx.class_neighbors
    class_rows = np.r_[ctx.f_rows, ctx.t_rows]
    member = ctx.labels
    sl = sample_level(neighbor_features(ctx.logits[class_rows], c, neighbors), member, seed=config.seed)
    auc = sl.separation.auc
    # Chance is what models that never saw the class reach on these same examples: the
    # forgotten and the test examples of c can differ by the draw of the split alone.
    # A cross-validated AUC below that is no leakage (the attack is one-sided).
    twin_aucs = [
        sample_level(
            neighbor_features(twins[k, class_rows], c, neighbors), member, n_bootstrap=0, seed=config.seed
        ).separation.auc.value
        for k in range(min(TWIN_BASELINE, twins.shape[0]))
    ]
    chance = float(np.mean(twin_aucs))
    finite = np.array([a for a in twin_aucs if np.isfinite(a)])
    excess = excess_over_null(auc.value, finite) if len(finite) >= 3 and np.isfinite(auc.value) else None
    score = (
        Interval(*(max(0.0, v) for v in (excess.value, excess.low, excess.high)), excess.level)
        if excess is not None
        else Interval(max(0.0, 2 * (auc.value - chance)), float("nan"), float("nan"))
    )
    details = {
        "auc": [auc.value, auc.low, auc.high],
        "chance_auc": chance,
        "chance_auc_sd": float(np.std(twin_aucs, ddof=1)) if len(twin_aucs) > 1 else None,
        "n_twins": len(twin_aucs),
        "gate": config.gate,
        "accuracy": [sl.accuracy.value, sl.accuracy.low, sl.accuracy.high],
        "neighbors": [int(j) for j in neighbors],
        "n_forget": int(member.sum()),
        "n_test": int((~member).sum()),
    }
    threshold = config.mia_nn_above
    common = dict(score=score.value, low=score.low, high=score.high, threshold=threshold, gated=True)
    auc_text = f"AUC {auc.value:.3f} [{auc.low:.3f}, {auc.high:.3f}] against {chance:.3f} for retrained twins"
    name = CheckName.MIA_NN.value
    if min(member.sum(), (~member).sum()) < MIN_EXAMPLES or excess is None:
        out = [CheckResult(name, "inconclusive", f"too few class examples or twins for a claim ({auc_text})",
                           details=details, **common)]  # fmt: skip
    else:
        verdict = decide(score.low, score.high, threshold, config.gate)
        sentence = (
            f"the neighbor-class probabilities tell forgotten from never-seen class-{c} examples with {auc_text}; "
            f"score 2(AUC - chance) {score.value:.3f} in [{score.low:.3f}, {score.high:.3f}] (the interval is the "
            f"spread of {len(twin_aucs)} twins' AUCs, refits included)"
        )
        sentence += closing_clause(verdict, score.value, score.low, score.high, threshold)
        out = [CheckResult(name, verdict, sentence, details=details, **common)]
    if ctx.retrained is not None:
        features = neighbor_features(ctx.retrained.logits[class_rows], c, neighbors)
        ref = sample_level(features, member, seed=config.seed).separation.auc
        gap = abs(auc.value - ref.value)
        out.append(
            CheckResult(
                "mia-nn gap to retrained",
                "info",
                f"|AUC(model) - AUC(retrained)| = {gap:.3f} (retrained {ref.value:.3f})",
                score=gap,
                details={"auc_retrained": [ref.value, ref.low, ref.high]},
            )
        )
    return out


CHECK = Check(CheckName.MIA_NN, run, applies, forgetting=CLASS, threshold="mia_nn_above")
