"""Where the class goes (class forgetting, information): the forgotten class's row of the
confusion matrix for the model, the retrained twins and the --retrained model, and the
neighbor classes retrained models send it to."""

from __future__ import annotations

import numpy as np

from audit_cli.checks.base import CLASS, Check, CheckName
from audit_cli.checks.context import AuditContext
from audit_cli.report import CheckResult


def run(ctx: AuditContext) -> list[CheckResult]:
    c, f_rows, k = int(ctx.forget_class), ctx.f_rows, ctx.dataset.num_classes
    neighbors, share = ctx.class_neighbors

    def row(z: np.ndarray) -> list[float]:
        return [round(float(v), 4) for v in np.bincount(z.argmax(-1).reshape(-1), minlength=k) / z[..., 0].size]

    rows = {"model": row(ctx.logits[f_rows]), "retrained twins": row(ctx.signals.logits_reference[:, f_rows])}
    if ctx.retrained is not None:
        rows["retrained"] = row(ctx.retrained.logits[f_rows])
    names = ctx.dataset.class_names
    top = ", ".join(f"{names[j]} ({share[j]:.0%})" for j in neighbors)
    return [
        CheckResult(
            CheckName.CLASS_CONFUSION.value,
            "info",
            f"retrained models send class {names[c]} to {top}; the model sends its forgotten examples to "
            + ", ".join(f"{names[j]} ({rows['model'][j]:.0%})" for j in np.argsort(rows["model"])[::-1][:3]),
            details={
                "confusion_row": rows,
                "classes": list(names),
                "neighbors": [int(j) for j in neighbors],
                "neighbor_share": [round(float(share[j]), 4) for j in neighbors],
            },
        )
    ]


CHECK = Check(CheckName.CLASS_CONFUSION, run, forgetting=CLASS)
