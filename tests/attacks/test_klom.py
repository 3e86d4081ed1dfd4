"""KLoM: binned KL, and the 95th percentile with its floor."""

import numpy as np
import pytest

from attacks.klom import binned_kl, klom, klom_per_example


def test_binned_kl_known_values():
    same = np.linspace(0, 1, 50)
    assert binned_kl(same, same) == 0.0
    # P all in the lowest bin; Q half there, half in the highest bin: KL = log 2.
    p = np.zeros(10)
    q = np.r_[np.zeros(5), np.ones(5)]
    assert binned_kl(p, q) == pytest.approx(np.log(2))
    # Q empty where P has mass: the floor 1e-5 stands in, KL = log(1 / 1e-5).
    assert binned_kl(np.zeros(4), np.ones(4)) == pytest.approx(np.log(1e5))
    assert binned_kl(np.ones(3), np.ones(3)) == 0.0  # one value everywhere


def test_klom_small_for_the_same_distribution_large_for_a_shift():
    rng = np.random.default_rng(0)
    retrained = rng.normal(0, 1, size=(200, 30))
    same = klom(rng.normal(0, 1, size=(200, 30)), retrained)
    shifted = klom(rng.normal(3, 1, size=(200, 30)), retrained)
    assert same.p95.value < 0.4 and shifted.p95.value > 1.5
    assert shifted.p95.low > same.p95.high
    assert same.n_examples == 30
    # At matched sample sizes, no difference reads as the floor and a shift far above it.
    assert same.matched == pytest.approx(same.floor, abs=0.5)
    assert shifted.matched > same.floor + 3


def test_klom_skips_examples_with_too_few_models():
    u = np.full((10, 3), np.nan)
    u[:, 0] = 1.0
    u[:2, 1] = 1.0  # only two observations
    r = np.zeros((10, 3))
    per = klom_per_example(u, r)
    assert per[0] == pytest.approx(np.log(1e5)) and np.isnan(per[1]) and np.isnan(per[2])
    with pytest.raises(ValueError, match="no example"):
        klom(np.full((10, 2), np.nan), np.zeros((10, 2)))
