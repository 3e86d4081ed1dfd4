"""The gate's three outcomes, what would decide an inconclusive check, and power before cost."""

import numpy as np
import pytest
from scipy.stats import norm

from audit_cli.checks.gate import decide, min_decidable_leakage, null_auc_sd, what_would_decide


def test_three_outcomes_and_the_evidence_reading():
    assert decide(0.12, 0.3, 0.1) == "fail"
    assert decide(0.0, 0.1, 0.1) == "pass"  # at the threshold counts as below
    assert decide(0.0, 0.11, 0.1) == "inconclusive"
    assert decide(0.0, 0.11, 0.1, "evidence") == "pass"
    assert decide(0.12, 0.3, 0.1, "evidence") == "fail"
    assert decide(float("nan"), float("nan"), 0.1) == "inconclusive"
    with pytest.raises(ValueError):
        decide(0.0, 0.1, 0.1, "lenient")


def test_what_would_decide_scales_with_the_square_of_the_width():
    # Estimate 0.05, upper bound 0.15, threshold 0.1: the half-width must halve, so 4x.
    assert "about 4.0x as many examples would show it below 0.1" in what_would_decide(0.05, 0.0, 0.15, 0.1)
    assert "threshold of at least 0.150" in what_would_decide(0.05, 0.0, 0.15, 0.1)
    # Estimate 0.2, lower bound 0: (0.2 / 0.1)^2 = 4x to show it above.
    assert "about 4.0x as many examples would show it above 0.1" in what_would_decide(0.2, 0.0, 0.4, 0.1)
    assert "more than 100x" in what_would_decide(0.099, 0.0, 0.3, 0.1)


def test_null_auc_sd_is_the_mann_whitney_variance():
    # Hanley-McNeil at AUC 0.5: (n1 + n0 + 1) / (12 n1 n0)
    assert null_auc_sd(135, 450) == pytest.approx(np.sqrt(586 / (12 * 135 * 450)))
    # And it matches simulation: AUC of two samples from one distribution.
    rng = np.random.default_rng(0)
    from attacks.metrics import auc_score

    labels = np.r_[np.ones(135, bool), np.zeros(450, bool)]
    aucs = [auc_score(rng.normal(size=585), labels) for _ in range(2000)]
    assert np.std(aucs) == pytest.approx(null_auc_sd(135, 450), rel=0.06)


def test_min_decidable_leakage_is_where_half_of_exact_unlearners_pass():
    sd = null_auc_sd(135, 450)
    assert min_decidable_leakage(135, 450) == pytest.approx(2 * (norm.ppf(0.75) + 1.96) * sd, rel=1e-3)
    # The digits sample: 135 forget vs 450 test cannot decide 0.1; a 30% list nearly can.
    assert 0.14 < min_decidable_leakage(135, 450) < 0.16
    assert 0.1 < min_decidable_leakage(404, 450) < 0.105
    assert min_decidable_leakage(400, 1000) < 0.1
    assert min_decidable_leakage(0, 10) == float("inf")
    # Simulated exact unlearners at that threshold: about half pass (interval AUC +- 1.96 sd).
    rng = np.random.default_rng(1)
    t = min_decidable_leakage(135, 450)
    auc = 0.5 + rng.normal(0, sd, 4000)
    upper = 2 * (np.abs(auc - 0.5) + 1.96 * sd)
    assert (upper <= t).mean() == pytest.approx(0.5, abs=0.03)


def test_what_would_decide_knows_when_more_examples_cannot():
    # The seed-to-seed floor (0.03) is wider than the distance to the threshold (0.02).
    assert "would not decide it" in what_would_decide(0.03, -0.01, 0.07, 0.05, floor=0.03)
    assert "as many examples" in what_would_decide(0.03, -0.01, 0.07, 0.05, floor=0.01)
