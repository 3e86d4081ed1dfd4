"""Unlearning effect (gated): did unlearning change anything? The forget set's confidence
drop from the original model, beyond that of examples exact unlearning leaves in place,
as a share of what exact unlearning does on this recipe (attacks/effect.py). Scored as the
share missing: 1 is a no-op. Its interval is Fieller's for the ratio, and the verdict is
the test of ``observed - (1 - threshold) * expected`` against 0, which that interval
encodes exactly (reported as ``margin_at_threshold``): a difference whose interval is always
finite, so the gate never reads the tails of a ratio with a noisy denominator. When the
expected drop cannot be told from zero the Fieller set is unbounded and the check makes no
claim (inconclusive).

Without --original, a model audited as unlearned cannot be shown to have changed: a no-op
passes every attack where membership leakage is weak. Such an audit is refused before any
shadow trains (audit_cli/auditing/inputs.py check_original_given), whatever the checkpoint's
metadata says; without a declared method the audit is a membership test and this check
is skipped.
"""

from __future__ import annotations

import numpy as np

from attacks.effect import exact_unlearning_drops, excess_over_share, unlearning_effect
from attacks.metrics import Interval
from attacks.signals import OUT
from audit_cli.checks.base import Check, CheckName, Outcome, Skip
from audit_cli.checks.context import AuditContext
from audit_cli.checks.gate import MAX_UNSCORABLE, MIN_EXAMPLES, closing_clause, decide
from audit_cli.report import CheckResult

NAME = CheckName.UNLEARNING_EFFECT.value


def run(ctx: AuditContext) -> list[Outcome]:
    if ctx.original_phi is None:
        # A model audited as unlearned always has one (inputs.check_original_given refuses
        # the audit without it, before any shadow trains): this is a membership audit of a
        # model that claims no unlearning.
        return [Skip(NAME, "no --original model given")]
    # Against examples that exact unlearning leaves in place: the test set, or for a class
    # the retained classes' test examples (the class's own move is the twin's).
    return [effect(ctx)]


def effect(ctx: AuditContext) -> CheckResult:
    config, signals = ctx.config, ctx.signals
    f_rows = ctx.f_rows
    ref_rows = ctx.t_rows if ctx.forget_class is None else ctx.u_rows
    threshold = config.missing_effect_above
    # Drops in units of each example's seed-to-seed spread: examples whose confidence
    # swings from model to model count less (digits sample: lower bound 0.07 -> 0.14).
    twins = signals.phi_reference if ctx.forget_class is not None else None
    exact = exact_unlearning_drops(signals.phi_before, signals.states != OUT, twins)
    drop = (ctx.original_phi - ctx.target_phi) / exact.spread
    expected_f = exact.trained[f_rows] / exact.spread[f_rows]
    expected_t = exact.unseen[ref_rows] / exact.spread[ref_rows]
    try:
        report = unlearning_effect(drop[f_rows], drop[ref_rows], expected_f, expected_t)
    except ValueError as exc:  # too few finite examples: no claim, not a crash
        return CheckResult(NAME, "inconclusive", f"no claim: {exc}", threshold=threshold, gated=True)
    # As for leakage: the examples measured must be enough, and stand for the sets. An example
    # that no shadow of a small bank saw in one of the two states (one in ten at 8 shadows:
    # 0.75^8 with three in four trained) is left out at random, by the bank's plan, not for
    # what it is: only examples the bank observed and still could not score count against
    # the sets (a wrecked model's non-finite outputs).
    trained = signals.states != OUT
    observed = (trained.any(axis=0) & (~trained).any(axis=0)) if ctx.forget_class is None else np.ones(
        trained.shape[1], bool)  # fmt: skip
    unscored = max(1 - report.n_forget / max(int(observed[f_rows].sum()), 1),
                   1 - report.n_test / max(int(observed[ref_rows].sum()), 1))  # fmt: skip
    if min(report.n_forget, report.n_test) < MIN_EXAMPLES or unscored > MAX_UNSCORABLE:
        return CheckResult(NAME, "inconclusive", (
            f"the effect could be measured on {report.n_forget} of {len(f_rows)} forget and {report.n_test} of "
            f"{len(ref_rows)} reference examples (the rest have no finite confidence in the models or shadows); "
            f"a claim needs at least {MIN_EXAMPLES} of each and at most {MAX_UNSCORABLE:.0%} left out"),
            threshold=threshold, gated=True,
            details={"n_forget": report.n_forget, "n_test": report.n_test})  # fmt: skip
    got, exp = report.achieved, report.expected
    # The verdict's test: the observed excess minus the share of the expected one that the
    # threshold requires; below 0 exactly when the Fieller interval of the missing share lies
    # above the threshold (attacks/effect.py), and finite whatever the expected excess.
    margin = excess_over_share(report, 1 - threshold)
    details = {
        "achieved": [got.value, got.low, got.high],
        "observed_excess_drop": [report.observed.value, report.observed.low, report.observed.high],
        "expected_excess_drop": [exp.value, exp.low, exp.high],
        "margin_at_threshold": [margin.value, margin.low, margin.high],
        "interval": "fieller",
        "n_forget": report.n_forget,
        "n_test": report.n_test,
        "gate": config.gate,
    }
    if not np.isfinite(got.low):
        return CheckResult(
            NAME,
            "inconclusive",
            f"no claim: exact unlearning's expected drop cannot be told from zero on these shadows (expected excess "
            f"drop {exp.value:.3f} in [{exp.low:.3f}, {exp.high:.3f}] per-example spreads; the share of it this model "
            f"achieved has no bounded interval)",
            threshold=threshold,
            gated=True,
            details=details,
        )
    missing = Interval(1 - got.value, 1 - got.high, 1 - got.low)
    verdict = decide(missing.low, missing.high, threshold, config.gate)
    sentence = (
        f"from the original to this model the forget set's confidence dropped by {report.observed.value:.3f} "
        f"(per-example spreads) more than the test set's: {got.value:.0%} [{got.low:.0%}, {got.high:.0%}] "
        f"(Fieller) of the {exp.value:.3f} exact unlearning gives; missing share {missing.value:.3f}"
    )
    if verdict == "fail":
        sentence += f", at least {missing.low:.3f} > {threshold} (unlearning did not do what it claims)"
    elif verdict == "inconclusive" and missing.low <= 0 and missing.high >= 1:
        # Neither exact unlearning nor a no-op is ruled out: say where the width comes from
        # rather than how many times more examples (often past any practical count).
        obs = report.observed
        sentence += (
            f"; the interval holds both exact unlearning (0) and a no-op (1): the observed excess drop alone "
            f"is {obs.value:.3f} [{obs.low:.3f}, {obs.high:.3f}], against an expected {exp.value:.3f}"
        )
    else:
        sentence += closing_clause(verdict, missing.value, missing.low, missing.high, threshold)
    return CheckResult(NAME, verdict, sentence, score=missing.value, low=missing.low, high=missing.high,
                       threshold=threshold, gated=True, details=details)  # fmt: skip


CHECK = Check(CheckName.UNLEARNING_EFFECT, run, threshold="missing_effect_above")
