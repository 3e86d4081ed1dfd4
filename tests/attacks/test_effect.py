"""The unlearning-effect check: how far the forget set moved, against exact unlearning."""

import numpy as np
import pytest

from attacks.effect import unlearning_effect


def simulate(rng, moved, n_f=135, n_t=450, expected=1.0, noise=1.0):
    """Forget examples drop by ``moved * expected`` on average; test examples by nothing."""
    exp_f = rng.normal(expected, 0.5, n_f)  # per-example drop exact unlearning gives
    drop_f = moved * exp_f + rng.normal(0, noise, n_f)
    drop_t = rng.normal(0, noise, n_t)
    return drop_f, drop_t, exp_f, np.zeros(n_t)


def test_exact_unlearning_achieves_about_all_of_the_expected_effect():
    rng = np.random.default_rng(0)
    hits = 0
    for _ in range(100):
        r = unlearning_effect(*simulate(rng, 1.0), n_bootstrap=300, seed=1)
        hits += r.achieved.low <= 1.0 <= r.achieved.high
    assert hits >= 88  # a 95% interval covers the truth (binomial sd of 100 draws: 2.2)


def test_a_no_op_achieves_nothing_and_its_interval_says_so():
    zero = np.zeros(135)
    r = unlearning_effect(zero, np.zeros(450), np.full(135, 1.0), np.zeros(450), n_bootstrap=200)
    assert r.achieved.value == 0 and r.achieved.high == 0  # nothing moved at all
    rng = np.random.default_rng(2)
    r = unlearning_effect(*simulate(rng, 0.0, noise=0.01), n_bootstrap=200)
    assert abs(r.achieved.value) < 0.01 and r.achieved.high < 0.02
    assert r.observed.value == pytest.approx(r.achieved.value * r.expected.value)


def test_no_claim_when_exact_unlearning_would_not_move_the_forget_set():
    rng = np.random.default_rng(3)
    r = unlearning_effect(*simulate(rng, 1.0, expected=0.0), n_bootstrap=200)
    assert r.expected.low <= 0 and np.isnan(r.achieved.value)


def test_class_forgetting_subtracts_what_the_test_examples_move_too():
    # Exact unlearning of a class moves its test examples as well (the twin never saw the
    # class); only the excess over them is the forget set's own effect.
    rng = np.random.default_rng(4)
    exp_f, exp_t = rng.normal(9.0, 1.0, 100), rng.normal(6.0, 1.0, 40)
    r = unlearning_effect(exp_f + rng.normal(0, 0.1, 100), exp_t + rng.normal(0, 0.1, 40), exp_f, exp_t)
    assert r.expected.value == pytest.approx(3.0, abs=0.5) and r.achieved.value == pytest.approx(1.0, abs=0.05)


def test_non_finite_examples_are_left_out_and_too_few_refused():
    r = unlearning_effect(np.r_[1.0, 1.0, np.nan], np.zeros(3), np.ones(3), np.zeros(3), n_bootstrap=50)
    assert r.n_forget == 2 and r.n_test == 3
    with pytest.raises(ValueError):
        unlearning_effect(np.ones(1), np.zeros(3), np.ones(1), np.zeros(3))


def test_exact_unlearning_drops_from_a_bank():
    from attacks.effect import exact_unlearning_drops

    rng = np.random.default_rng(5)
    k, n = 4000, 6  # the mean difference's sd is then about 0.02
    trained = rng.random((k, n)) < 0.75
    base = np.arange(n, dtype=float)
    phi = base + 2.0 * trained + rng.normal(0, 0.5, (k, n))
    drops = exact_unlearning_drops(phi, trained)
    assert np.allclose(drops.trained, 2.0, atol=0.08) and (drops.unseen == 0).all()
    assert np.allclose(drops.spread, 0.5, atol=0.03)  # within-state, not the 2.0 between states
    # Class forgetting: each shadow against its own twin; unseen examples move too.
    twins = phi - 3.0 - 1.0 * trained
    drops = exact_unlearning_drops(phi, trained, twins)
    assert np.allclose(drops.trained, 4.0) and np.allclose(drops.unseen, 3.0)


def test_a_shadow_without_phi_is_left_out_of_the_expected_drop():
    """One NaN shadow value used to make the example's expected drop NaN (the example was
    then dropped from the effect); it is left out of that example's means and spread."""
    from attacks.effect import exact_unlearning_drops

    rng = np.random.default_rng(9)
    trained = rng.random((40, 5)) < 0.5
    phi = 1.5 * trained + rng.normal(0, 0.5, (40, 5))
    gappy = phi.copy()
    gappy[3, 0] = np.nan
    got = exact_unlearning_drops(gappy, trained)
    keep = np.arange(40) != 3
    alone = exact_unlearning_drops(phi[keep][:, :1], trained[keep][:, :1])
    assert np.isfinite(got.trained).all()
    assert got.trained[0] == pytest.approx(alone.trained[0]) and got.spread[0] == pytest.approx(alone.spread[0])
    assert np.allclose(got.trained[1:], exact_unlearning_drops(phi, trained).trained[1:])
