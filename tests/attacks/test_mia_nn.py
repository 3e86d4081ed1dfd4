"""MIA-NN: neighbor classes, features, and the sample- and model-level attacks."""

import numpy as np
import pytest
from scipy.stats import norm

from attacks.mia_nn import (
    excess_over_null,
    forget_class_log_prob,
    model_features,
    model_level,
    neighbor_classes_from_reference,
    neighbor_classes_from_representations,
    neighbor_features,
    sample_level,
)


def test_neighbors_from_reference_rank_where_class_inputs_go():
    # Two reference models, class-0 inputs: most mass on class 3, then 1, then 2.
    probs = np.array([[0.0, 0.3, 0.1, 0.6], [0.0, 0.2, 0.2, 0.6]])
    logits = np.log(np.clip(probs, 1e-9, None))[:, None, :].repeat(5, axis=1)
    neighbors, share = neighbor_classes_from_reference(logits, 0, k=2)
    assert neighbors.tolist() == [3, 1]
    assert share[0] == 0
    np.testing.assert_allclose(share[1:], [0.25, 0.15, 0.6], atol=1e-6)


def test_neighbors_from_representations_by_cosine():
    w = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [-1.0, 0.0]])
    neighbors, cos = neighbor_classes_from_representations(w, 0, k=3)
    assert neighbors.tolist() == [1, 2, 3]
    assert cos[1] == pytest.approx(0.9 / np.hypot(0.9, 0.1))
    assert cos[3] == pytest.approx(-1.0)


def test_features_are_log_probabilities_renormalized_over_retained_classes():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(7, 5)) * 3
    p = np.exp(z) / np.exp(z).sum(-1, keepdims=True)
    feats = neighbor_features(z, 2, np.array([4, 0]))
    expected = np.log(p[:, [4, 0]] / (1 - p[:, [2]]))
    np.testing.assert_allclose(feats, expected, rtol=1e-10)
    # The forgotten class's own probability does not enter: scaling its logit changes nothing.
    z2 = z.copy()
    z2[:, 2] += 50
    np.testing.assert_allclose(neighbor_features(z2, 2, np.array([4, 0])), feats, rtol=1e-10)


def test_forget_class_log_prob_is_floored():
    z = np.array([[0.0, 0.0], [0.0, -1e4]])
    np.testing.assert_allclose(forget_class_log_prob(z, 0), [np.log(0.5), 0.0], atol=1e-12)
    assert forget_class_log_prob(z, 1)[1] == -30.0


def test_sample_level_auc_matches_the_gaussian_theory():
    # Members shifted by 1 in each of 2 independent unit-variance features: the optimal
    # linear score has AUC Phi(sqrt(2) / sqrt(2)) = Phi(1) = 0.841.
    rng = np.random.default_rng(1)
    members = rng.normal(1.0, 1.0, size=(600, 2))
    others = rng.normal(0.0, 1.0, size=(600, 2))
    x = np.r_[members, others]
    y = np.r_[np.ones(600, bool), np.zeros(600, bool)]
    result = sample_level(x, y, n_bootstrap=200)
    assert result.separation.auc.value == pytest.approx(norm.cdf(1.0), abs=0.03)
    assert result.separation.auc.low < norm.cdf(1.0) < result.separation.auc.high
    # The optimal boundary sits halfway: accuracy Phi(d / 2) with d = sqrt(2), 0.760.
    assert result.accuracy.value == pytest.approx(norm.cdf(np.sqrt(2) / 2), abs=0.04)
    assert result.scores.shape == (1200,)


def test_sample_level_at_chance_when_nothing_differs():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(300, 3))
    y = np.r_[np.ones(200, bool), np.zeros(100, bool)]
    result = sample_level(x, y, n_bootstrap=300)
    assert result.separation.auc.low < 0.5 < result.separation.auc.high
    assert abs(result.separation.auc.value - 0.5) < 0.1


def test_sample_level_refuses_degenerate_input():
    with pytest.raises(ValueError, match="two members"):
        sample_level(np.zeros((3, 1)), np.array([True, False, False]))
    with pytest.raises(ValueError, match="not finite"):
        sample_level(np.array([[np.nan]] * 4), np.array([True, True, False, False]))


def test_model_level_separates_kinds_and_scores_the_target():
    rng = np.random.default_rng(3)
    unlearned = rng.normal(2.0, 0.5, size=(12, 4))
    retrained = rng.normal(0.0, 0.5, size=(12, 4))
    looks_unlearned = model_level(unlearned, retrained, np.full(4, 2.0))
    looks_retrained = model_level(unlearned, retrained, np.zeros(4))
    assert looks_unlearned.accuracy.value == 1.0
    assert looks_unlearned.accuracy.low > 0.8
    assert looks_unlearned.p_unlearned > 0.9 and looks_retrained.p_unlearned < 0.1
    # Indistinguishable kinds: held-out accuracy near chance, interval containing 0.5.
    same = model_level(rng.normal(size=(20, 4)), rng.normal(size=(20, 4)), np.zeros(4))
    assert same.accuracy.low < 0.5 < same.accuracy.high


def test_model_features_shape_and_content():
    z = np.random.default_rng(4).normal(size=(3, 10, 4))
    f = model_features(z, 1, np.array([0, 2]))
    assert f.shape == (3, 6)  # mean and std of (2 neighbors + log p(c))
    np.testing.assert_allclose(f[:, 2], forget_class_log_prob(z, 1).mean(axis=1))


def test_excess_over_null_is_a_doubled_t_prediction_interval():
    iv = excess_over_null(0.6, np.array([0.50, 0.52, 0.54]))
    # mean 0.52, sd 0.02 (ddof 1), m = 3: t_{2, 0.975} = 4.302653.
    half = 2 * 4.302653 * 0.02 * np.sqrt(1 + 1 / 3)
    assert iv.value == pytest.approx(0.16)
    assert iv.low == pytest.approx(0.16 - half, abs=1e-6) and iv.high == pytest.approx(0.16 + half, abs=1e-6)
    assert iv.level == 0.95
    assert excess_over_null(0.3, np.array([0.50, 0.52, 0.54])).value == pytest.approx(-0.44)  # not clipped
    with pytest.raises(ValueError, match="at least 3"):
        excess_over_null(0.6, np.array([0.5, 0.52]))


def test_excess_over_null_has_its_nominal_error_rate_under_the_null():
    # The audited AUC and m = 3 twins' AUCs drawn from one normal: the audited model is one
    # more retrain. low > 0 (a false "leaks") should happen 2.5% of the time, each tail 2.5%.
    # 5000 draws: standard error 0.0022 one-sided, 0.0031 two-sided. On this seed: 2.4%
    # one-sided, 4.9% two-sided; a normal quantile in place of t gives 9.3% one-sided,
    # dropping sqrt(1 + 1/m) 6.2% two-sided; the AUC bootstrap shifted by an exact chance
    # level measured 5.7-7.0% in the pipeline.
    rng = np.random.default_rng(5)
    low_above = high_below = 0
    for _ in range(5000):
        iv = excess_over_null(rng.normal(0.55, 0.03), rng.normal(0.55, 0.03, 3))
        low_above += iv.low > 0
        high_below += iv.high < 0
    assert low_above / 5000 <= 0.025 + 0.0065
    assert 0.04 <= (low_above + high_below) / 5000 <= 0.06


def test_excess_over_null_detects_a_model_outside_the_twins():
    rng = np.random.default_rng(6)
    null = rng.normal(0.55, 0.02, 8)
    iv = excess_over_null(0.70, null)
    assert iv.low > 0 and iv.value == pytest.approx(2 * (0.70 - null.mean()))
    assert excess_over_null(0.56, null).low < 0  # within the twins' spread
