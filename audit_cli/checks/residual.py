"""Residual memorisation (information, not gated yet): the share of what training put into the
forget set's confidence that the audited model still shows, 0 for exact unlearning and 1 for
a model that forgot nothing, cross-fitted on the bank's halves, with a two-level bootstrap
interval over examples and shadows (attacks/residual.py).

Unlike ``2|AUC - 0.5|``, whose value for a model that forgot nothing depends on how strongly
the recipe memorises (about 0.17 on digits, 0.75 on mnist1d), this share means the same on
every dataset, and it counts how far each example sits from where exact unlearning would
put it, not only the order of the scores. It is reported beside the leakage gate and
recorded by the validity suite (benchmarks/validity.py) so that its error rates are
measured before a gate rests on it.
"""

from __future__ import annotations

import numpy as np

from attacks.residual import residual_share
from attacks.signals import OUT
from audit_cli.checks.base import RANDOM, Check, CheckName, Outcome, Skip
from audit_cli.checks.context import AuditContext
from audit_cli.report import CheckResult

NAME = CheckName.RESIDUAL.value


def run(ctx: AuditContext) -> list[Outcome]:
    signals = ctx.signals
    # The gap is read before unlearning (what training put in, at the original's size); where
    # exact unlearning leaves an example, after it (unlearned as the audited model was).
    try:
        report = residual_share(signals.phi_before, signals.phi_after, signals.states != OUT, ctx.target_phi,
                                ctx.f_rows, ctx.t_rows, seed=ctx.config.seed)  # fmt: skip
    except ValueError as exc:
        return [Skip(NAME, f"{exc}; use more shadows")]
    share, memorised = report.share, report.memorisation
    details = {
        "memorisation": [memorised.value, memorised.low, memorised.high],
        "n_forget": report.n_forget,
        "n_test": report.n_test,
        "n_shadows": report.n_shadows,
        "level": share.level,
    }
    if not np.isfinite(share.value):
        sentence = (
            f"the shadows show no memorisation of the forget set to measure a share of (mean squared gap "
            f"{memorised.value:.3g} in [{memorised.low:.3g}, {memorised.high:.3g}])"
        )
        return [CheckResult(NAME, "info", sentence, details=details)]
    sentence = (
        f"the forget set keeps {share.value:.0%} [{share.low:.0%}, {share.high:.0%}] of the confidence training "
        "gave it (0: exact unlearning, 1: nothing forgotten); reported, not gated"
    )
    return [CheckResult(NAME, "info", sentence, score=share.value, low=share.low, high=share.high,
                        details=details)]  # fmt: skip


CHECK = Check(CheckName.RESIDUAL, run, forgetting=RANDOM)
