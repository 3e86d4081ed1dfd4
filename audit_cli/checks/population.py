"""Population attacks: single-threshold loss, confidence and entropy attacks on the audited
model alone, forget against test (weaker than the shadow attacks; information only)."""

from __future__ import annotations

import numpy as np

from attacks.metrics import separation
from audit_cli.checks.base import Check, CheckName
from audit_cli.checks.context import AuditContext
from audit_cli.report import CheckResult


def run(ctx: AuditContext) -> list[CheckResult]:
    out = []
    for name, values in ctx.population.items():
        s = separation(np.r_[values[ctx.f_rows], values[ctx.t_rows]], ctx.labels, n_bootstrap=200, seed=ctx.config.seed)
        out.append(
            CheckResult(
                f"population: {name}",
                "info",
                f"a single-threshold {name} attack (weaker than {ctx.mode.upper()}) separates forget from test "
                f"with AUC {s.auc.value:.3f}",
                score=s.auc.value,
                low=s.auc.low,
                high=s.auc.high,
            )
        )
    return out


CHECK = Check(CheckName.POPULATION, run)
