"""RMIA against a pairwise reference written from the paper's definition, and against LiRA
on a bank with real membership signal."""

import numpy as np
import pytest

from attacks.lira import lira_online
from attacks.metrics import auc_score
from attacks.rmia import probability, reference_probability, rmia
from attacks.signals import IN, OUT


def pairwise(phi, states, target, population, online, a, gamma):
    """Score(x) = share of z in the population (z != x) with LR(x, z) >= gamma, one pair at a time."""
    p = 1 / (1 + np.exp(-phi))
    out = []
    for x in range(phi.shape[1]):
        def prior(j):
            p_out = p[states[:, j] == OUT, j].mean()
            if online:
                return (p[states[:, j] == IN, j].mean() + p_out) / 2
            return ((1 + a) * p_out + (1 - a)) / 2

        pt = 1 / (1 + np.exp(-target))
        ratios = [(pt[x] / prior(x)) / (pt[z] / prior(z)) for z in population if z != x]
        out.append(np.mean([r >= gamma for r in ratios]))
    return np.array(out)


@pytest.mark.parametrize("online,a,gamma", [(False, 0.3, 1.0), (True, 0.3, 1.0), (False, 1.0, 2.0),
                                            (False, 0.0, 0.5)])  # fmt: skip
def test_scores_match_the_pairwise_definition(online, a, gamma):
    rng = np.random.default_rng(0)
    states = rng.choice([IN, OUT], size=(6, 40)).astype(np.int8)
    states[0], states[1] = IN, OUT  # every example observed in both states
    phi = rng.normal(1, 2, (6, 40))
    target = rng.normal(1, 2, 40)
    population = np.arange(20, 40)
    got = rmia(phi, states, target, population, online=online, a=a, gamma=gamma)
    np.testing.assert_allclose(got, pairwise(phi, states, target, population, online, a, gamma), atol=1e-12)


def test_the_offline_prior_is_the_papers_linear_stand_in():
    phi = np.log(np.array([[0.6 / 0.4], [0.8 / 0.2]]))  # two OUT shadows: p = 0.6, 0.8
    states = np.full((2, 1), OUT, np.int8)
    assert probability(phi)[:, 0] == pytest.approx([0.6, 0.8])
    # a = 0.3: ((1.3)(0.7) + 0.7) / 2 = 0.805; a = 1: the OUT mean itself.
    assert reference_probability(phi, states, online=False, a=0.3)[0] == pytest.approx(0.805)
    assert reference_probability(phi, states, online=False, a=1.0)[0] == pytest.approx(0.7)
    assert np.isnan(reference_probability(phi, states, online=True)[0])  # no IN shadow: not scorable
    with pytest.raises(ValueError, match="a lies in"):
        reference_probability(phi, states, online=False, a=1.5)


def test_members_score_higher_and_rmia_tracks_lira_on_a_bank_with_signal():
    """Examples memorised unequally (an IN shadow is more confident by a per-example amount):
    both attacks tell the target's members from its non-members, RMIA offline on OUT shadows only."""
    rng = np.random.default_rng(1)
    n, k = 600, 32
    base, gain = rng.normal(1, 1.5, n), rng.exponential(1.0, n)
    states = rng.choice([IN, OUT], size=(k, n)).astype(np.int8)
    phi = base + gain * (states == IN) + rng.normal(0, 0.5, (k, n))
    member = rng.random(n) < 0.5
    member[:150] = False  # the population: never trained on
    target = base + gain * member + rng.normal(0, 0.5, n)
    population = np.arange(150)
    scored = np.arange(150, n)
    online = rmia(phi, states, target, population, online=True)
    offline = rmia(phi, states, target, population)
    lira = lira_online(phi, states, target)
    aucs = {name: auc_score(s[scored], member[scored]) for name, s in
            (("online", online), ("offline", offline), ("lira", lira))}  # fmt: skip
    assert aucs["lira"] > 0.75 and aucs["online"] > 0.75 and aucs["offline"] > 0.7, aucs
    assert abs(aucs["online"] - aucs["lira"]) < 0.08, aucs
    assert np.all((online[np.isfinite(online)] >= 0) & (online[np.isfinite(online)] <= 1))


def test_bad_parameters_and_too_small_a_population_are_refused():
    states = np.array([[IN, OUT, OUT], [OUT, IN, OUT]], np.int8)
    phi = np.zeros((2, 3))
    with pytest.raises(ValueError, match="gamma must be positive"):
        rmia(phi, states, np.zeros(3), np.array([2]), gamma=0)
    with pytest.raises(ValueError, match="at least two population points"):
        rmia(phi, states, np.zeros(3), np.array([2]))


def test_leave_one_out_is_at_chance_on_exchangeable_shadows_and_finds_members_otherwise():
    from attacks.rmia import leave_one_out

    rng = np.random.default_rng(3)
    k, n = 16, 400
    states = rng.choice([IN, OUT], size=(k, n)).astype(np.int8)
    mu = rng.normal(0, 2, n)
    flat = mu + rng.normal(0, 1, (k, n))
    chance = leave_one_out(flat, states, targets=4, n_bootstrap=50)
    assert all(abs(r.auc.value - 0.5) < 0.08 for r in chance), [r.auc.value for r in chance]
    memorised = flat + rng.exponential(1.5, n) * (states == IN)
    found = leave_one_out(memorised, states, targets=4, n_bootstrap=50)
    assert all(r.auc.value > 0.65 and r.auc.low > 0.5 for r in found), [r.auc.value for r in found]
