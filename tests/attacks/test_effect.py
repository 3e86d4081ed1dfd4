"""The unlearning-effect check: how far the forget set moved, against exact unlearning."""

import numpy as np
import pytest
from scipy.stats import norm

from attacks.effect import excess_over_share, fieller_interval, unlearning_effect


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
        r = unlearning_effect(*simulate(rng, 1.0))
        hits += r.achieved.low <= 1.0 <= r.achieved.high
    assert hits >= 88  # a 95% interval covers the truth (binomial sd of 100 draws: 2.2)


def test_a_no_op_achieves_nothing_and_its_interval_says_so():
    zero = np.zeros(135)
    r = unlearning_effect(zero, np.zeros(450), np.full(135, 1.0), np.zeros(450))
    assert r.achieved.value == 0 and r.achieved.high == 0  # nothing moved at all
    rng = np.random.default_rng(2)
    r = unlearning_effect(*simulate(rng, 0.0, noise=0.01))
    assert abs(r.achieved.value) < 0.01 and r.achieved.high < 0.02
    assert r.observed.value == pytest.approx(r.achieved.value * r.expected.value)


def test_no_claim_when_exact_unlearning_would_not_move_the_forget_set():
    rng = np.random.default_rng(3)
    r = unlearning_effect(*simulate(rng, 1.0, expected=0.0))
    assert r.expected.low <= 0 and np.isnan([r.achieved.value, r.achieved.low, r.achieved.high]).all()


def test_class_forgetting_subtracts_what_the_test_examples_move_too():
    # Exact unlearning of a class moves its test examples as well (the twin never saw the
    # class); only the excess over them is the forget set's own effect.
    rng = np.random.default_rng(4)
    exp_f, exp_t = rng.normal(9.0, 1.0, 100), rng.normal(6.0, 1.0, 40)
    r = unlearning_effect(exp_f + rng.normal(0, 0.1, 100), exp_t + rng.normal(0, 0.1, 40), exp_f, exp_t)
    assert r.expected.value == pytest.approx(3.0, abs=0.5) and r.achieved.value == pytest.approx(1.0, abs=0.05)


def test_non_finite_examples_are_left_out_and_too_few_refused():
    r = unlearning_effect(np.r_[1.0, 1.0, np.nan], np.zeros(3), np.ones(3), np.zeros(3))
    assert r.n_forget == 2 and r.n_test == 3
    with pytest.raises(ValueError):
        unlearning_effect(np.ones(1), np.zeros(3), np.ones(1), np.zeros(3))


# Level at which z is exactly 2, so that a Fieller quadratic can be solved by hand.
Z2 = 2 * norm.cdf(2.0) - 1


def test_fieller_interval_is_the_hand_solved_quadratic():
    # n = 3, d = 2, Var n = 0.5, Cov = 0.25, Var d = 0.25, z = 2:
    # (3 - 2r)^2 <= 4 (0.5 - 0.5 r + 0.25 r^2)  <=>  3 r^2 - 10 r + 7 <= 0  <=>  r in [1, 7/3].
    r = fieller_interval(3.0, 2.0, 0.5, 0.25, 0.25, level=Z2)
    assert (r.value, r.low, r.high) == pytest.approx((1.5, 1.0, 7 / 3))
    # Both ends satisfy the defining equality (a sign slip in b or in the covariance breaks it).
    for end in (r.low, r.high):
        assert (3 - 2 * end) ** 2 == pytest.approx(4 * (0.5 - 2 * end * 0.25 + end**2 * 0.25))
    # A denominator without noise: the numerator's own interval, divided.
    r = fieller_interval(3.0, 2.0, 0.5, 0.0, 0.0, level=Z2)
    assert (r.low, r.high) == pytest.approx(((3 - 2 * 0.5**0.5) / 2, (3 + 2 * 0.5**0.5) / 2))
    # A numerator without noise: |3 - 2r| <= 2 * 0.5 r, so r in [3 / 3, 3 / 1].
    r = fieller_interval(3.0, 2.0, 0.0, 0.0, 0.25, level=Z2)
    assert (r.low, r.high) == pytest.approx((1.0, 3.0))


def test_the_excesses_covariance_sums_each_set_s_covariance_of_its_means():
    # Forget: drops 1, 2, 3, 6 (mean 3, ss 14), expected 0, 1, 1, 2 (mean 1, ss 2), cross 5.
    # Test: drops 0, 1, 2 (mean 1, ss 2), expected -1, -1, 2 (mean 0, ss 6), cross 3.
    # Var observed = 14/3/4 + 2/2/3 = 3/2; Cov = 5/3/4 + 3/2/3 = 11/12; Var expected = 2/3/4 + 6/2/3 = 7/6.
    r = unlearning_effect(np.r_[1.0, 2, 3, 6], np.r_[0.0, 1, 2], np.r_[0.0, 1, 1, 2], np.r_[-1.0, -1, 2], level=Z2)
    assert r.covariance == pytest.approx((3 / 2, 11 / 12, 7 / 6))
    assert (r.observed.value, r.observed.low, r.observed.high) == pytest.approx((2, 2 - 2 * 1.5**0.5, 2 + 2 * 1.5**0.5))
    assert (r.expected.low, r.expected.high) == pytest.approx((1 - 2 * (7 / 6) ** 0.5, 1 + 2 * (7 / 6) ** 0.5))
    margin = excess_over_share(r, 0.5)  # 2 - 0.5, Var = 3/2 - 11/12 + 7/24 = 7/8
    assert (margin.value, margin.low, margin.high) == pytest.approx((1.5, 1.5 - 2 * 0.875**0.5, 1.5 + 2 * 0.875**0.5))


def test_an_unbounded_fieller_set_is_no_claim():
    # d^2 = 0.09 < z^2 Var d = 0.16: the set is the line outside an interval, or all of it.
    r = fieller_interval(1.0, 0.3, 0.1, 0.0, 0.04, level=Z2)
    assert r.value == pytest.approx(1 / 0.3) and np.isnan(r.low) and np.isnan(r.high)
    # In the effect: an expected excess not told from zero gives no interval at all.
    rng = np.random.default_rng(6)
    f = rng.normal(0, 1, 100)
    f = (f - f.mean()) / f.std(ddof=1) + 1.9 / 100**0.5  # expected / its standard error = 1.9 exactly
    r = unlearning_effect(f + rng.normal(0, 0.1, 100), rng.normal(0, 0.1, 200), f, np.zeros(200))
    assert r.expected.low < 0 < r.expected.value
    assert np.isnan([r.achieved.value, r.achieved.low, r.achieved.high]).all()


def _ratio_bootstrap(drop_f, drop_t, exp_f, exp_t, n_bootstrap=1000, seed=0):
    """The interval this module used before: percentiles of the bootstrapped ratio, given
    when the bootstrapped expected excess's 2.5% percentile is above 0."""
    rng = np.random.default_rng(seed)
    fi = rng.integers(0, len(drop_f), (n_bootstrap, len(drop_f)))
    ti = rng.integers(0, len(drop_t), (n_bootstrap, len(drop_t)))
    obs_b = drop_f[fi].mean(axis=1) - drop_t[ti].mean(axis=1)
    exp_b = exp_f[fi].mean(axis=1) - exp_t[ti].mean(axis=1)
    if np.quantile(exp_b, 0.025) <= 0:
        return None
    return np.quantile(obs_b / exp_b, [0.025, 0.975])


def test_a_denominator_near_zero_gets_no_claim_where_the_ratio_bootstrap_gave_a_huge_interval():
    # An exact unlearner on a recipe that barely memorises: 40 forget examples whose expected
    # excess sits 1.95 standard errors above 0, noisy observed drops.
    rng = np.random.default_rng(0)
    z = rng.normal(size=40)
    exp_f = (z - z.mean()) / z.std(ddof=1) + 1.95 / 40**0.5
    drop_f, drop_t, exp_t = exp_f + rng.normal(0, 2.0, 40), rng.normal(0, 0.5, 450), np.zeros(450)
    low, high = _ratio_bootstrap(drop_f, drop_t, exp_f, exp_t)
    assert high - low > 10  # a finite interval 17.6 wide, read as if it were a measurement
    r = unlearning_effect(drop_f, drop_t, exp_f, exp_t)
    assert np.isnan([r.achieved.low, r.achieved.high]).all()  # Fieller: unbounded, so no claim
    # Just past significance the interval is finite, and as wide as the data make it, not
    # as wide as a resample's smallest denominator.
    shift = 0.15 / 40**0.5  # 2.1 standard errors
    r = unlearning_effect(drop_f + shift, drop_t, exp_f + shift, exp_t)
    assert np.isfinite([r.achieved.low, r.achieved.high]).all() and r.achieved.contains(r.achieved.value)


def test_fieller_covers_the_true_share_near_a_small_denominator():
    # Expected excess about 2.5 standard errors: where ratio intervals go wrong. Over 300
    # draws, bounded intervals cover the true share about 95% of the time.
    rng = np.random.default_rng(8)
    covered = bounded = 0
    for _ in range(300):
        r = unlearning_effect(*simulate(rng, 0.5, n_f=135, expected=0.2, noise=1.0)).achieved
        if np.isfinite(r.low):
            bounded += 1
            covered += r.low <= 0.5 <= r.high
    assert bounded > 100 and covered / bounded >= 0.9


def test_the_verdict_read_off_the_fieller_interval_is_the_difference_test():
    """Missing share above 1 - s for the whole interval  <=>  observed - s * expected is shown
    below 0; at or below it  <=>  shown at or above 0. The difference is always finite."""
    rng = np.random.default_rng(10)
    seen = set()
    for k in range(200):
        moved, expected = rng.uniform(-0.5, 1.5), rng.uniform(0.1, 1.0)
        r = unlearning_effect(*simulate(rng, moved, n_f=60, n_t=200, expected=expected, noise=1.0))
        if not np.isfinite(r.achieved.low):
            continue
        for share in (0.1, 0.5, 0.9):
            margin = excess_over_share(r, share)
            assert np.isfinite([margin.low, margin.high]).all()
            assert (r.achieved.high < share) == (margin.high < 0), k
            assert (r.achieved.low > share) == (margin.low > 0), k
            seen.add((margin.high < 0, margin.low > 0))
    assert seen == {(True, False), (False, False), (False, True)}  # every outcome was exercised


def test_a_destroyed_model_s_width_is_its_observed_excess_s():
    """Drops of thousands of spreads on every example (an ascent that wrecked the model): the
    forget set's excess over the test set is lost in the noise whatever the denominator, so
    the interval is wide but finite, and holds both 0 and 1."""
    rng = np.random.default_rng(11)
    exp_f = rng.normal(0.4, 1.0, 400)
    drop_f, drop_t = rng.normal(14000, 11000, 400), rng.normal(14000, 11000, 450)
    r = unlearning_effect(drop_f, drop_t, exp_f, np.zeros(450))
    assert r.expected.low > 0 and np.isfinite([r.achieved.low, r.achieved.high]).all()
    assert r.achieved.low < 0 and r.achieved.high > 1
    # Its width is the observed excess's over the expected one, to first order.
    width = (r.observed.high - r.observed.low) / r.expected.value
    assert r.achieved.high - r.achieved.low == pytest.approx(width, rel=0.1)


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
