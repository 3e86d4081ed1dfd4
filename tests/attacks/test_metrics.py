import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from sklearn.metrics import roc_curve as sk_roc_curve

from attacks.metrics import auc_score, balanced_accuracy, roc_curve, separation, tpr_at


@pytest.fixture
def gaussian_scores():
    rng = np.random.default_rng(0)
    pos = rng.normal(1.0, 1.0, 500)
    neg = rng.normal(0.0, 1.0, 2000)
    scores = np.r_[pos, neg]
    labels = np.r_[np.ones(500, bool), np.zeros(2000, bool)]
    return scores, labels


def test_auc_and_roc_match_scikit_learn(gaussian_scores):
    scores, labels = gaussian_scores
    scores = np.round(scores, 1)  # ties, so the half-credit rule matters
    assert auc_score(scores, labels) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    fpr, tpr = roc_curve(scores, labels)
    sk_fpr, sk_tpr, _ = sk_roc_curve(labels, scores, drop_intermediate=False)
    np.testing.assert_allclose(fpr, sk_fpr)
    np.testing.assert_allclose(tpr, sk_tpr)


def test_hand_computed_toy_example():
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    labels = np.array([1, 1, 0, 1, 0, 0], bool)
    # Pairs (pos, neg): 9, of which (0.6, 0.7) is the only misordered one.
    assert auc_score(scores, labels) == pytest.approx(8 / 9)
    # Best threshold admits the top two: TPR 2/3, FPR 0 -> 1 - (0 + 1/3) / 2.
    assert balanced_accuracy(scores, labels) == pytest.approx(1 - (1 / 3) / 2)
    assert tpr_at(scores, labels, 0.0) == pytest.approx(2 / 3)
    assert tpr_at(scores, labels, 1 / 3) == pytest.approx(1.0)


def test_known_separation_lands_inside_the_interval(gaussian_scores):
    scores, labels = gaussian_scores
    report = separation(scores, labels, n_bootstrap=300)
    from scipy.stats import norm

    true_auc = norm.cdf(1 / np.sqrt(2))  # two unit Gaussians one sigma apart: about 0.760
    assert report.auc.contains(true_auc)
    assert report.auc.high - report.auc.low < 0.06
    assert report.n_positive == 500 and report.n_negative == 2000
    at1, at01 = report.tpr_at_fpr
    assert at1.tpr is not None and at1.tpr.low <= at1.tpr.value <= at1.tpr.high
    assert at01.tpr is not None  # 2000 negatives measure 0.1% FPR


def test_chance_scores_have_an_interval_around_half():
    rng = np.random.default_rng(3)
    scores = rng.normal(size=900)
    labels = np.r_[np.ones(450, bool), np.zeros(450, bool)]
    report = separation(scores, labels, n_bootstrap=300)
    assert report.auc.contains(0.5)


def test_low_fpr_needs_enough_negatives_and_nan_scores_are_dropped():
    rng = np.random.default_rng(4)
    scores = np.r_[rng.normal(1, 1, 100), rng.normal(0, 1, 450), [np.nan, np.nan]]
    labels = np.r_[np.ones(100, bool), np.zeros(450, bool), [True, False]]
    report = separation(scores, labels, n_bootstrap=50)
    at1, at01 = report.tpr_at_fpr
    assert at1.tpr is not None
    assert at01.tpr is None and "1000 negatives" in at01.reason
    assert report.n_dropped == 2 and report.n_positive == 100 and report.n_negative == 450


def test_needs_both_classes():
    with pytest.raises(ValueError):
        separation(np.array([1.0, 2.0]), np.array([True, True]))
