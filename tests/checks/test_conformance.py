"""Conformance of every registered check (audit_cli/checks/), on synthetic banks where the
forget and test examples are exchangeable: shadows, the audited model and the references
are all draws from one distribution per example, whatever each shadow did with it.

Every check must: say why it skips when an input is missing; return rows whose gated
verdicts follow their intervals and thresholds; give the same point scores when the
shadows come in another order; stay calm (no crash, no pass from a non-finite score) when
some signals are NaN; and never fail on exchangeable data.
"""

from __future__ import annotations

import importlib
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from attacks.signals import IN, OUT, UNLEARNED, augmented_confidence
from audit_cli.auditing.pipeline import build_context
from audit_cli.auditing.request import AuditConfig
from audit_cli.checks.base import Check, CheckName, Skip
from audit_cli.checks.context import ReferenceModel
from audit_cli.checks.gate import decide, min_decidable_leakage
from audit_cli.checks.registry import CHECKS, run_checks
from audit_cli.config import DEFAULTS, GATED_CHECKS
from audit_cli.report import CheckResult
from audit_cli.shadows import SignalBank

SHADOWS = 24
VERDICTS = {"pass", "fail", "inconclusive", "info"}


def synthetic_inputs(digits, seed, *, forget_class=None, method="neggrad", references=True, nan_share=0.0,
                     shadow_order=None):  # fmt: skip
    """AuditInputs-like inputs and a bank under exchangeability; ``shadow_order`` permutes
    the shadows, ``nan_share`` blanks that share of the shadows' signals."""
    rng = np.random.default_rng(seed)
    y, n, c = digits.y, len(digits.ids), digits.num_classes
    mu = rng.normal(0.0, 1.0, (n, c))
    mu[np.arange(n), y] += 3.0

    def draw(k):
        return (mu + rng.normal(0.0, 1.0, (k, n, c))).astype(np.float32)

    if forget_class is None:
        forget = np.sort(rng.choice(digits.train_ids, 135, replace=False))
        test = digits.test_ids
        states = rng.choice([OUT, IN, UNLEARNED], p=[0.5, 0.3, 0.2], size=(SHADOWS, n)).astype(np.int8)
    else:
        train_c = digits.train_ids[y[digits.rows(digits.train_ids)] == forget_class]
        forget = train_c
        test = digits.test_ids[y[digits.rows(digits.test_ids)] == forget_class]
        states = rng.choice([OUT, IN], p=[0.5, 0.5], size=(SHADOWS, n)).astype(np.int8)
        states[:, y == forget_class] = np.where(states[:, y == forget_class] == IN, UNLEARNED, OUT)
    if method is None:
        states[states == UNLEARNED] = IN
    before, after = draw(SHADOWS), draw(SHADOWS)
    twins = draw(SHADOWS) if forget_class is not None else None
    phi_before, phi_after = augmented_confidence(before[None], y), augmented_confidence(after[None], y)
    if nan_share:
        blank = rng.random((SHADOWS, n)) < nan_share
        phi_before[blank], phi_after[blank] = np.nan, np.nan
    order = np.arange(SHADOWS) if shadow_order is None else shadow_order
    signals = SignalBank(
        example_ids=digits.ids,
        states=states[order],
        phi_before=phi_before[order],
        phi_after=phi_after[order],
        logits_after=after[order],
        phi_reference=augmented_confidence(twins[None], y)[order] if twins is not None else None,
        logits_reference=twins[order] if twins is not None else None,
    )
    audited = draw(1)
    config = AuditConfig(model=Path("m.safetensors"), forget_class=forget_class, fail_above=0.2, seed=seed)
    inputs = SimpleNamespace(
        config=config,
        dataset=digits,
        method=method,
        model=SimpleNamespace(
            view_logits=lambda dataset, device: audited, meta=SimpleNamespace(kind="unlearned", excluded=None)
        ),  # fmt: skip
        output_filter=None,
        forget=forget,
        test=test,
        retain=np.setdiff1d(digits.train_ids, forget),
        device="cpu",
    )
    original = ReferenceModel(None, draw(1)) if references else None
    retrained = ReferenceModel(None, draw(1)) if references else None
    return inputs, signals, original, retrained


def context(digits, seed=0, **kwargs):
    inputs, signals, original, retrained = synthetic_inputs(digits, seed, **kwargs)
    return build_context(inputs, signals, original, retrained,
                         min_decidable_leakage(len(inputs.forget), len(inputs.test)))  # fmt: skip


@pytest.fixture(scope="module", params=["random", "class", "membership"])
def ctx(request, digits):
    kind = request.param
    return context(
        digits, forget_class=3 if kind == "class" else None, method=None if kind == "membership" else "neggrad"
    )


def test_the_registry_names_every_check_once_and_derives_the_gate():
    names = [c.name for c in CHECKS]
    assert sorted(names) == sorted(CheckName) and len(set(names)) == len(names)
    for check in CHECKS:
        module = importlib.import_module(check.run.__module__)
        assert module.__doc__ and module.CHECK is check, check.name  # one module per check, documented
        if check.gated:
            assert check.threshold in DEFAULTS and hasattr(AuditConfig, check.threshold)
    assert GATED_CHECKS["leakage"] == "fail_above"


def test_every_row_is_well_formed_and_gated_rows_follow_their_intervals(ctx):
    results, skipped = run_checks(ctx)
    assert results and all(isinstance(r, CheckResult) for r in results)
    assert all(isinstance(why, str) and why for _, why in skipped)
    for r in results:
        assert r.verdict in VERDICTS and r.sentence, r.name
        if r.low is not None and r.high is not None and np.isfinite([r.low, r.high]).all():
            assert r.low <= r.high + 1e-12, r.name
        if r.gated:
            setting = GATED_CHECKS[r.name]
            assert r.threshold == getattr(ctx.config, setting), r.name
            if r.verdict in ("pass", "fail"):
                # A decided verdict is exactly what the interval says against the threshold.
                assert decide(r.low, r.high, r.threshold, ctx.config.gate) == r.verdict, r.name


def test_no_gated_check_fails_on_exchangeable_data(digits):
    import audit_cli.checks.utility as utility_check

    for seed in range(3):
        for kind in ("random", "class", "membership"):
            c = context(digits, seed, forget_class=3 if kind == "class" else None,
                        method=None if kind == "membership" else "neggrad")  # fmt: skip
            results, _ = run_checks(c)
            failed = [r.name for r in results if r.gated and r.verdict == "fail"]
            assert not failed, (seed, kind, failed)
            leak = next(r for r in results if r.name == "leakage")
            assert leak.score < 0.2 and leak.details["auc_minus_half"] == pytest.approx(leak.details["auc"] - 0.5)
            # Nor utility against the bank's shadows (or twins) when no retrained model is given.
            without = context(digits, seed, forget_class=3 if kind == "class" else None,
                              method=None if kind == "membership" else "neggrad", references=False)  # fmt: skip
            (row,) = utility_check.run(without)
            assert row.details["reference"] in ("shadows", "twins") and row.verdict != "fail", (seed, kind)


def test_missing_inputs_are_skipped_with_a_reason(digits):
    c = context(digits, references=False)
    results, skipped = run_checks(c)
    reasons = dict(skipped)
    assert "--retrained" in reasons["reference metrics"] and "utility" not in reasons
    # Without a retrained model, utility compares with the bank (in class mode its retrained twins).
    assert next(r for r in results if r.name == "utility").details["reference"] == "shadows"
    in_class = run_checks(context(digits, forget_class=3, references=False))[0]
    assert next(r for r in in_class if r.name == "utility").details["reference"] == "twins"
    # An unlearned model without its original never gets this far (inputs.check_original_given
    # refuses the audit before any shadow trains; tests/test_pipeline.py): here it is skipped.
    assert reasons["unlearning-effect"] == "no --original model given"
    membership = context(digits, method=None, references=False)
    _, skipped = run_checks(membership)
    assert "no unlearning method" in dict(skipped)["klom"]
    assert dict(skipped)["unlearning-effect"] == "no --original model given"  # no unlearning claimed
    # Class-only checks are absent from a random audit, not skipped.
    names = {r.name for r in results} | {n for n, _ in skipped}
    assert not names & {"forget-class-accuracy", "mia-nn", "where the class goes"}


def test_the_unlearning_effect_reads_past_unscored_shadows_and_needs_the_sets_measured(digits):
    """A shadow without phi for an example is left out of its expected drop (one such shadow
    used to drop the example); and an effect measured on a remnant of the forget set is no
    claim, as for leakage."""
    from audit_cli.checks.effect import effect

    c = context(digits, nan_share=0.05)
    result = effect(c)
    assert result.details["n_forget"] == len(c.f_rows) and result.details["n_test"] == len(c.t_rows)
    blank = c.original_phi.copy()
    blank[c.f_rows[: len(c.f_rows) // 2]] = np.nan  # half the forget set unmeasured
    c.__dict__["original_phi"] = blank
    remnant = effect(c)
    assert remnant.verdict == "inconclusive" and remnant.gated
    assert f"measured on {len(c.f_rows) - len(c.f_rows) // 2} of {len(c.f_rows)} forget" in remnant.sentence


def test_point_scores_do_not_depend_on_the_order_of_the_shadows(digits):
    order = np.random.default_rng(7).permutation(SHADOWS)
    for kind in ("random", "class"):
        fc = 3 if kind == "class" else None
        a, _ = run_checks(context(digits, forget_class=fc))
        b, _ = run_checks(context(digits, forget_class=fc, shadow_order=order))
        assert [r.name for r in a] == [r.name for r in b]
        for ra, rb in zip(a, b, strict=True):
            if ra.name == "mia-nn (model level)":
                continue  # a classifier over shadows: its cross-validation folds follow their order
            if ra.score is not None and np.isfinite(ra.score):
                assert rb.score == pytest.approx(ra.score, rel=1e-6, abs=1e-9), (kind, ra.name)


def test_nan_signals_never_crash_and_never_pass_a_non_finite_score(digits):
    for kind in ("random", "class"):
        c = context(digits, forget_class=3 if kind == "class" else None, nan_share=0.3)
        results, _ = run_checks(c)
        for r in results:
            if r.gated and not (np.isfinite(r.low if r.low is not None else np.nan)
                                and np.isfinite(r.high if r.high is not None else np.nan)):  # fmt: skip
                assert r.verdict == "inconclusive", r.name
        leak = next(r for r in results if r.name == "leakage")
        # 30% of the shadows' signals missing: examples stay scorable (other shadows observe them).
        assert leak.details["unscorable"]["forget"] < 0.1


def test_a_check_that_raises_skip_from_run_is_listed(digits):
    c = context(digits)
    probe = Check(CheckName.KLOM, lambda ctx: [Skip("probe", "because")])
    import audit_cli.checks.registry as registry

    saved = registry.CHECKS
    try:
        registry.CHECKS = (probe,)
        assert registry.run_checks(c) == ([], [("probe", "because")])
    finally:
        registry.CHECKS = saved


def test_the_unlearning_effect_sees_a_no_op_and_an_exact_unlearner(digits):
    """The effect check on synthetic data where exact unlearning moves the forget set by a
    known amount: a model equal to its original misses all of it (fail), a model that moved
    like the shadows that never saw the examples misses none (pass)."""
    inputs, signals, original, retrained = synthetic_inputs(digits, 0)
    y, n = digits.y, len(digits.ids)
    trained = signals.states != OUT
    # Trained-on examples sit 2 logits higher in a shadow than unseen ones do.
    boost = np.zeros_like(signals.logits_after)
    boost[..., np.arange(n), y] += 2.0 * trained
    before = signals.logits_after + boost
    signals = replace(signals, phi_before=augmented_confidence(before[None], y))
    base = np.asarray(inputs.model.view_logits(digits, "cpu"))
    orig = base.copy()
    orig[..., np.arange(n), y] += 2.0 * np.isin(digits.ids, digits.train_ids)
    original = ReferenceModel(None, orig)
    f_ids = set(inputs.forget.tolist())
    moved = orig.copy()
    moved[..., np.arange(n), y] -= 2.0 * np.array([i in f_ids for i in digits.ids])
    min_leak = min_decidable_leakage(len(inputs.forget), len(inputs.test))

    def effect(audited):
        inputs.model = SimpleNamespace(view_logits=lambda dataset, device: audited, meta=inputs.model.meta)
        results, _ = run_checks(build_context(inputs, signals, original, retrained, min_leak))
        return next(r for r in results if r.name == "unlearning-effect")

    no_op, exact = effect(orig), effect(moved)
    assert no_op.verdict == "fail" and no_op.low > 0.9
    assert exact.verdict == "pass" and exact.score == pytest.approx(0.0, abs=0.15)
    # The verdicts are the difference test at the threshold: observed - 0.1 x expected shown
    # below 0 for the no-op, at or above it for the exact unlearner.
    assert no_op.details["margin_at_threshold"][2] < 0 <= exact.details["margin_at_threshold"][1]
    # A model wrecked on every example (true-class logits thousands down, at random): the
    # forget set's excess over the test set is lost in the noise. Wide, finite, and said so.
    wrecked = orig.copy()
    wrecked[..., np.arange(n), y] -= np.random.default_rng(1).normal(3000, 2000, n).astype(np.float32)
    destroyed = effect(wrecked)
    assert destroyed.verdict == "inconclusive" and destroyed.low < 0 and destroyed.high > 1
    assert "holds both exact unlearning (0) and a no-op (1)" in destroyed.sentence


def test_the_unlearning_effect_makes_no_claim_when_exact_unlearning_would_not_move_the_forget_set(digits):
    """Exchangeable shadows: trained-on and unseen examples look alike, so exact unlearning's
    expected drop cannot be told from zero, Fieller's set is unbounded, and the check says
    so rather than give a huge finite interval."""
    from audit_cli.checks.effect import effect

    result = effect(context(digits))
    assert result.verdict == "inconclusive" and result.gated and result.score is None
    assert result.sentence.startswith(
        "no claim: exact unlearning's expected drop cannot be told from zero on these shadows"
    )
    assert result.details["expected_excess_drop"][1] <= 0


def test_an_estimated_retrained_model_is_labelled_and_never_gates(digits):
    inputs, signals, original, _ = synthetic_inputs(digits, 0)
    # The same outputs as an estimate and as a real retrained model: only the real one gates.
    perfect = np.zeros((1, len(digits.ids), digits.num_classes), np.float32)
    perfect[0, np.arange(len(digits.ids)), digits.y] = 10.0
    estimate = {"method": "influence", "form": "primal", "relative_error_bound": None}
    c = build_context(inputs, signals, original, ReferenceModel(None, perfect, estimated=estimate),
                      min_decidable_leakage(len(inputs.forget), len(inputs.test)))  # fmt: skip
    results, _ = run_checks(c)
    rows = {r.name: r for r in results}
    utility = rows["utility"]
    assert utility.verdict == "info" and not utility.gated and utility.threshold is None
    assert "estimated retrained" in utility.sentence and "does not gate" in utility.sentence
    assert utility.details["retrained_estimate"]["method"] == "influence"
    reference_rows = [r for r in results if "retrained" in r.name]
    assert len(reference_rows) >= 4 and all("estimated retrained" in r.name for r in reference_rows)
    assert "estimated by influence" in rows["u-lira gap to estimated retrained"].sentence
    real = build_context(inputs, signals, original, ReferenceModel(None, perfect),
                         min_decidable_leakage(len(inputs.forget), len(inputs.test)))  # fmt: skip
    real_utility = next(r for r in run_checks(real)[0] if r.name == "utility")
    assert real_utility.gated and real_utility.verdict in ("pass", "fail", "inconclusive")


def test_utility_without_a_measurable_seed_spread_claims_nothing(digits, monkeypatch):
    """When fewer than 3 shadows leave enough test examples unseen, how much two retrains
    differ by their seeds is unknown: the utility row is inconclusive (it used to take the
    spread as zero and could pass on a too-narrow interval)."""
    import audit_cli.checks.utility as utility_check

    inputs, signals, original, _ = synthetic_inputs(digits, 0)
    c = build_context(inputs, signals, original, ReferenceModel(None, np.asarray(inputs.model.view_logits(None, None))),
                      min_decidable_leakage(len(inputs.forget), len(inputs.test)))  # fmt: skip
    same = next(r for r in run_checks(c)[0] if r.name == "utility")
    assert same.verdict == "pass"  # the model is its own retrained reference
    monkeypatch.setattr(utility_check, "model_accuracy_sd", lambda ctx, rows: float("nan"))
    unsized = next(r for r in run_checks(c)[0] if r.name == "utility")
    assert unsized.gated and unsized.verdict == "inconclusive" and unsized.details["model_sd"] is None
    assert "use more shadows" in unsized.sentence
