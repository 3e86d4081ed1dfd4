import numpy as np
import pytest

from attacks.gap import difference_interval, gap_check, wilson_interval


def test_wilson_interval_matches_the_textbook_value():
    # 81 successes of 263 (Newcombe 1998, table I example): 0.2553 to 0.3662.
    low, high = wilson_interval(81, 263)
    assert low == pytest.approx(0.2553, abs=5e-4) and high == pytest.approx(0.3662, abs=5e-4)


def test_newcombe_difference_matches_the_published_example():
    # Newcombe 1998, method 10, example (56/70 vs 48/80): 0.0524 to 0.3339.
    iv = difference_interval(56, 70, 48, 80)
    assert iv.value == pytest.approx(0.2)
    assert iv.low == pytest.approx(0.0524, abs=5e-4) and iv.high == pytest.approx(0.3339, abs=5e-4)


def sets(rng, n_a, acc_a, shift_a, n_b=400, acc_b=0.9):
    def one(n, acc, shift):
        correct = rng.random(n) < acc
        phi = rng.normal(2 + shift, 1, n)
        return correct, -phi, phi  # loss falls as phi rises

    return one(n_a, acc_a, shift_a) + one(n_b, acc_b, 0.0)


def test_verdicts():
    rng = np.random.default_rng(0)
    assert gap_check("f", *sets(rng, 300, 1.0, 1.0)).verdict == "memorization"
    assert gap_check("f", *sets(rng, 300, 0.6, -1.0)).verdict == "over-forgetting"
    check = gap_check("f", *sets(rng, 300, 0.9, 0.0))
    assert check.verdict == "consistent" and check.accuracy_diff.contains(0.0)
    small = gap_check("f", *sets(rng, 10, 1.0, 1.0))
    assert small.verdict == "inconclusive" and "at least 20" in small.reason


def test_phi_shift_alone_is_detected_and_effect_direction_reported():
    rng = np.random.default_rng(1)
    check = gap_check("f", *sets(rng, 300, 0.9, 0.5))
    assert check.phi.prob_a_greater > 0.6 and check.phi.mwu_pvalue < 0.01
    assert check.loss.prob_a_greater < 0.4  # higher phi, lower loss
    assert check.verdict == "memorization"
