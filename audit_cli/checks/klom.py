"""KLoM (information): the method's quality on this recipe, from the bank alone. Per forget
example, KL between the margins of the shadows that unlearned it and those of models that
never saw it (shadows that did not train on it, before unlearning; in class mode the
twins); the report gives the 95th percentile (attacks/klom.py)."""

from __future__ import annotations

import numpy as np

from attacks.klom import klom
from attacks.signals import OUT, UNLEARNED
from audit_cli.checks.base import Check, CheckName, Outcome, Skip
from audit_cli.checks.context import AuditContext
from audit_cli.report import CheckResult


def applies(ctx: AuditContext) -> str | None:
    if ctx.method is None:
        return "the model declares no unlearning method: its shadows unlearned nothing"
    return None


def _finite_or_none(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def run(ctx: AuditContext) -> list[Outcome]:
    signals, f_rows = ctx.signals, ctx.f_rows
    unlearned = np.where(signals.states[:, f_rows] == UNLEARNED, signals.phi_after[:, f_rows], np.nan)
    if ctx.forget_class is not None:
        retrained = signals.phi_reference[:, f_rows]
    else:
        retrained = np.where(signals.states[:, f_rows] == OUT, signals.phi_before[:, f_rows], np.nan)
    try:
        report = klom(unlearned, retrained, seed=ctx.config.seed)
    except ValueError as exc:
        return [Skip(CheckName.KLOM.value, f"{exc}; use more shadows")]
    p = report.p95
    return [
        CheckResult(
            CheckName.KLOM.value,
            "info",
            f"95th percentile over {report.n_examples} forget examples of KL(unlearned || retrained) margin "
            f"histograms, shadows unlearned with {ctx.method}: {p.value:.3f} [{p.low:.3f}, {p.high:.3f}]; "
            f"at half sample sizes {report.matched:.3f} against {report.floor:.3f} for retrained vs retrained",
            score=p.value,
            low=p.low,
            high=p.high,
            details={
                "matched": _finite_or_none(report.matched),
                "floor": _finite_or_none(report.floor),
                "n_examples": report.n_examples,
            },
        )
    ]


CHECK = Check(CheckName.KLOM, run, applies)
