"""RMIA beside the headline attack, as information: how well the peers' attack tells the
forget set from test examples on the same bank (attacks/rmia.py), for comparison with other
tools. The test examples are its population; online RMIA reads both states of the
shadows (trained-on, or unlearned with a declared method, and never seen), offline only
the shadows that never saw an example."""

from __future__ import annotations

import numpy as np

from attacks.metrics import separation
from attacks.rmia import GAMMA, OFFLINE_A, rmia
from attacks.signals import IN, OUT, UNLEARNED
from audit_cli.checks.attack import tpr_details, tpr_sentence
from audit_cli.checks.base import RANDOM, Check, CheckName
from audit_cli.checks.context import AuditContext
from audit_cli.report import CheckResult

NEITHER = -1


def run(ctx: AuditContext) -> list[CheckResult]:
    signals = ctx.signals
    # The positive state is the headline attack's: unlearned with a method (U-LiRA's), else trained on.
    phi, states = signals.phi_before, signals.states
    if ctx.method is not None:
        # An unlearned model's references: shadows that unlearned the example (as IN) and
        # shadows that never saw it; one that trained on it and kept it is neither.
        phi = signals.phi_after
        states = np.select([states == UNLEARNED, states == OUT], [IN, OUT], NEITHER).astype(states.dtype)
    rows = np.r_[ctx.f_rows, ctx.t_rows]
    labels = np.r_[np.ones(len(ctx.f_rows), bool), np.zeros(len(ctx.t_rows), bool)]
    reports = {}
    for online in (True, False):
        scores = rmia(phi, states, ctx.target_phi, ctx.t_rows, online=online)[rows]
        reports[online] = separation(scores, labels, seed=ctx.config.seed)
    sep, offline = reports[True], reports[False]
    return [CheckResult(
        CheckName.RMIA.value, "info",
        f"AUC {sep.auc.value:.3f} online, {offline.auc.value:.3f} offline (a = {OFFLINE_A}, gamma = {GAMMA}); "
        + tpr_sentence(sep),
        score=sep.auc.value, low=sep.auc.low, high=sep.auc.high,
        details={"offline_auc": [offline.auc.value, offline.auc.low, offline.auc.high], "a": OFFLINE_A,
                 "gamma": GAMMA, "population": "test examples",
                 "tpr_at_fpr": tpr_details(sep),
                 "n_dropped": sep.n_dropped},
    )]  # fmt: skip


CHECK = Check(CheckName.RMIA, run, forgetting=RANDOM)
