"""MIA-NN, model level (class forgetting, information): a classifier trained on shadows
unlearned with the method against their retrained twins says how much this model looks
unlearned rather than retrained (and, with --retrained, how much the retrained one does)."""

from __future__ import annotations

import numpy as np

from attacks.mia_nn import model_features, model_level
from audit_cli.checks.base import CLASS, Check, CheckName
from audit_cli.checks.context import AuditContext
from audit_cli.checks.mia_nn import applies
from audit_cli.report import CheckResult


def run(ctx: AuditContext) -> list[CheckResult]:
    c, seed = int(ctx.forget_class), ctx.config.seed
    neighbors, _ = ctx.class_neighbors
    rows = np.r_[ctx.f_rows, ctx.t_rows]
    unlearned = model_features(ctx.signals.logits_after[:, rows], c, neighbors)
    reference = model_features(ctx.signals.logits_reference[:, rows], c, neighbors)
    ml = model_level(unlearned, reference, model_features(ctx.logits[rows][None], c, neighbors)[0], seed=seed)
    acc = ml.accuracy
    what = f"unlearned with {ctx.method}" if ctx.method is not None else "trained with the class"
    details = {"accuracy": [acc.value, acc.low, acc.high], "n_shadows": ml.n_unlearned}
    sentence = (
        f"a classifier that tells shadows {what} from their retrained twins (held-out accuracy "
        f"{acc.value:.2f} [{acc.low:.2f}, {acc.high:.2f}]) gives this model probability {ml.p_unlearned:.2f} "
        f"of being {what} rather than retrained"
    )
    if ctx.retrained is not None:
        ref_features = model_features(ctx.retrained.logits[rows][None], c, neighbors)[0]
        p_ref = model_level(unlearned, reference, ref_features, seed=seed).p_unlearned
        details |= {"p_retrained": p_ref, "gap": abs(ml.p_unlearned - p_ref)}
        sentence += f" (the retrained model: {p_ref:.2f})"
    return [CheckResult(CheckName.MIA_NN_MODEL.value, "info", sentence, score=ml.p_unlearned, details=details)]


CHECK = Check(CheckName.MIA_NN_MODEL, run, applies, forgetting=CLASS)
