"""LiRA / U-LiRA on synthetic signal banks whose truth is known."""

import numpy as np
import pytest
from scipy.stats import norm

from attacks.lira import IN, OUT, UNLEARNED, fit_state, leave_one_out, lira_offline, lira_online, ulira
from attacks.metrics import auc_score, separation

N_EXAMPLES, N_SHADOWS, NOISE = 600, 32, 0.5


def bank(rng, shift_in=1.0, unlearned_shift=None, n_shadows=N_SHADOWS):
    """Each example has its own difficulty; IN adds ``shift_in``; UNLEARNED adds its own shift."""
    base = rng.normal(0, 3, N_EXAMPLES)
    states = rng.integers(0, 2, (n_shadows, N_EXAMPLES))  # OUT or IN, about half each
    if unlearned_shift is not None:
        states[rng.random(states.shape) < 0.25] = UNLEARNED
    shift = np.select([states == IN, states == UNLEARNED], [shift_in, unlearned_shift or 0.0], 0.0)
    phi = base + shift + rng.normal(0, NOISE, states.shape)
    return base, phi, states


def test_online_lira_beats_a_global_threshold_by_using_per_example_difficulty():
    rng = np.random.default_rng(0)
    base, phi, states = bank(rng)
    member = rng.random(N_EXAMPLES) < 0.5
    target = base + member * 1.0 + rng.normal(0, NOISE, N_EXAMPLES)
    lira_auc = auc_score(lira_online(phi, states, target), member)
    raw_auc = auc_score(target, member)
    expected = norm.cdf(1.0 / (NOISE * np.sqrt(2)))  # about 0.92
    assert abs(lira_auc - expected) < 0.04
    assert raw_auc < 0.7 and lira_auc > raw_auc + 0.2
    offline_auc = auc_score(lira_offline(phi, states, target), member)
    assert offline_auc > 0.85


def test_ulira_detects_partial_forgetting_and_not_exact_unlearning():
    rng = np.random.default_rng(1)
    base, phi, states = bank(rng, unlearned_shift=0.5)
    forget = rng.random(N_EXAMPLES) < 0.3
    target = base + forget * 0.5 + rng.normal(0, NOISE, N_EXAMPLES)  # forgot half the shift
    report = separation(ulira(phi, states, target), forget, n_bootstrap=200)
    assert report.auc.value > 0.68 and report.auc.low > 0.6

    base, phi, states = bank(rng, unlearned_shift=0.0)  # exact unlearning: UNLEARNED == OUT
    target = base + rng.normal(0, NOISE, N_EXAMPLES)
    report = separation(ulira(phi, states, target), forget, n_bootstrap=200)
    assert report.auc.contains(0.5)


def test_global_variance_pools_within_example_spread():
    rng = np.random.default_rng(2)
    base, phi, states = bank(rng)
    pooled = fit_state(phi, states, OUT, "global").sigma
    per_example = fit_state(phi, states, OUT, "per-example").sigma
    assert np.allclose(pooled, pooled[0]) and abs(pooled[0] - NOISE) < 0.02  # not the 3.0 between examples
    assert abs(np.median(per_example) - NOISE) < 0.05 and per_example.std() > 0.01
    # auto: global below 32 observations per state for the median example (16 here), per
    # example from there on (128 shadows: about 64 per state)
    assert np.allclose(fit_state(phi, states, OUT, "auto").sigma, pooled)
    _, phi128, states128 = bank(rng, n_shadows=128)
    assert fit_state(phi128, states128, OUT, "auto").sigma.std() > 0.01


def test_auto_variance_counts_observations_per_state_not_shadows():
    from attacks.lira import resolve_variance

    # 200 shadows, but only 10 of them UNLEARNED per example: too few for per-example spreads.
    assert resolve_variance("auto", np.full(50, 10), np.full(50, 150)) == "global"
    assert resolve_variance("auto", np.full(50, 40), np.full(50, 40)) == "per-example"
    # Examples observed in only one state do not count towards the median.
    assert resolve_variance("auto", np.r_[np.zeros(60), np.full(40, 40)], np.full(100, 40)) == "per-example"
    assert resolve_variance("global", np.full(5, 100)) == "global"
    with pytest.raises(ValueError):
        resolve_variance("pooled", np.ones(3))


def test_examples_without_observations_are_not_scored():
    phi = np.array([[1.0, 2.0], [1.5, 2.5], [0.5, 2.2]])
    states = np.array([[IN, OUT], [OUT, OUT], [IN, OUT]])
    scores = lira_online(phi, states, np.array([1.0, 2.0]), variance="per-example")
    assert np.isnan(scores[1])  # example 1 has no IN shadow
    with pytest.raises(ValueError):
        fit_state(phi, states[:2], IN, "global")


def test_a_shadow_that_cannot_score_an_example_is_no_observation_of_it():
    """NaN phi (an overflowed logit, or an imported bank's gap) must not count as a degree
    of freedom: counted, it shrank the pooled spread from 1.03 to 0.68 here."""
    rng = np.random.default_rng(5)
    phi = rng.normal(0, 1, (16, 200))
    states = np.full(phi.shape, OUT)
    gappy = phi.copy()
    gappy[:8] = np.nan  # half the shadows scored nothing
    for variance in ("global", "per-example"):
        fit = fit_state(gappy, states, OUT, variance)
        naive = fit_state(phi[8:], states[8:], OUT, variance)
        assert np.allclose(fit.sigma, naive.sigma) and np.allclose(fit.mu, naive.mu) and (fit.count == 8).all()
    # One IN observation left: no spread to fit, so the example is unscorable (it scored -5e9).
    scores = lira_online(np.array([[1.0], [np.nan], [-1.0], [0.0]]), np.array([[IN], [IN], [OUT], [OUT]]),
                         np.array([0.5]), variance="per-example", spread="separate")
    assert np.isnan(scores[0])


def test_leave_one_out_measures_attack_strength():
    rng = np.random.default_rng(3)
    _, phi, states = bank(rng)
    reports = leave_one_out(phi, states, targets=3, n_bootstrap=50)
    assert len(reports) == 3
    assert all(0.85 < r.auc.value < 0.97 for r in reports)


def test_ulira_class_uses_every_reference_twin_as_the_negative():
    from attacks.lira import ulira_class

    rng = np.random.default_rng(5)
    k, n = 40, 6
    states = np.where(rng.random((k, n)) < 0.5, UNLEARNED, OUT).astype(np.int8)
    phi = np.where(states == UNLEARNED, rng.normal(3.0, 1.0, (k, n)), rng.normal(-9.0, 1.0, (k, n)))
    reference = rng.normal(0.0, 2.0, (k, n))
    target = np.zeros(n)
    got = ulira_class(phi, states, reference, target, np.ones(n, bool), variance="per-example", spread="separate")
    obs = np.where(states == UNLEARNED, phi, np.nan)
    mu_u, s_u = np.nanmedian(obs, 0), np.nanstd(obs, 0, ddof=1)
    mu_r, s_r = np.median(reference, 0), np.std(reference, 0, ddof=1)
    expected = norm.logpdf(0, mu_u, s_u) - norm.logpdf(0, mu_r, s_r)
    np.testing.assert_allclose(got, expected, rtol=1e-10)
    # Shared spread: both Gaussians get the within-state spread pooled over the two states.
    n_u = (~np.isnan(obs)).sum(0)
    ss = np.nansum((obs - np.nanmean(obs, 0)) ** 2, 0) + ((reference - reference.mean(0)) ** 2).sum(0)
    s = np.sqrt(ss / (n_u - 1 + k - 1))
    shared = ulira_class(phi, states, reference, target, np.ones(n, bool), variance="per-example")
    np.testing.assert_allclose(shared, norm.logpdf(0, mu_u, s) - norm.logpdf(0, mu_r, s), rtol=1e-10)
    # The shadows' own OUT observations (mean -9) are not the negative: a target at the
    # reference centre scores as "retrained", not as far from both.
    assert (got < -2).all()


def test_ulira_class_pools_spread_over_the_class_only():
    from attacks.lira import ulira_class

    rng = np.random.default_rng(6)
    k, n = 16, 8
    in_class = np.arange(n) < 4
    states = np.where(in_class & (rng.random((k, n)) < 0.5), UNLEARNED, OUT).astype(np.int8)
    phi = rng.normal(2.0, 1.0, (k, n))
    reference = rng.normal(0.0, 1.0, (k, n))
    # Outside the class the twins trained on the examples: a wide, two-humped spread.
    reference[:, ~in_class] = np.where(rng.random((k, 4)) < 0.5, -8.0, 8.0)
    got = ulira_class(phi, states, reference, np.zeros(n), in_class, variance="global", spread="separate")
    assert np.isnan(got[~in_class]).all()
    # Pooled within the class only, the negative spread is about 1, as generated.
    obs = reference[:, in_class]
    pooled = np.sqrt(((obs - obs.mean(0)) ** 2).sum() / (obs.size - 4))
    u = np.where(states[:, in_class] == UNLEARNED, phi[:, in_class], np.nan)
    pooled_u = np.sqrt(np.nansum((u - np.nanmean(u, 0)) ** 2) / ((~np.isnan(u)).sum() - 4))
    expected = norm.logpdf(0, np.nanmedian(u, 0), pooled_u) - norm.logpdf(0, np.median(obs, 0), pooled)
    np.testing.assert_allclose(got[in_class], expected, rtol=1e-10)
    assert 0.6 < pooled < 1.4
