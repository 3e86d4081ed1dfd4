import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from sklearn.metrics import roc_curve as sk_roc_curve

from attacks.metrics import MIN_FALSE_POSITIVES, auc_score, balanced_accuracy, roc_curve, separation, tpr_at


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
    assert at1.tpr is not None and at1.tpr.low <= at1.tpr.value <= at1.tpr.high  # 20 false positives
    # 0.1% of 2000 negatives is 2 false positives: too few, 10 000 negatives are needed.
    assert at01.tpr is None and "10000 negatives" in at01.reason and "have 2000" in at01.reason


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
    # 450 negatives: 4.5 above the 1% threshold, 0.45 above the 0.1% one; both need 10.
    assert at1.tpr is None and "1000 negatives" in at1.reason and "have 450" in at1.reason
    assert at01.tpr is None and "10000 negatives" in at01.reason
    assert report.n_dropped == 2 and report.n_positive == 100 and report.n_negative == 450


def test_tpr_needs_ten_false_positives_at_its_threshold():
    assert MIN_FALSE_POSITIVES == 10
    rng = np.random.default_rng(5)
    for n_neg, reported in ((999, False), (1000, True)):
        scores = np.r_[rng.normal(1, 1, 50), rng.normal(0, 1, n_neg)]
        labels = np.r_[np.ones(50, bool), np.zeros(n_neg, bool)]
        (at1,) = separation(scores, labels, fprs=(0.01,), n_bootstrap=20).tpr_at_fpr
        assert (at1.tpr is not None) == reported, n_neg
    # 100 negatives used to be enough for 1% FPR (one false positive); no longer.
    scores = np.r_[rng.normal(1, 1, 100), rng.normal(0, 1, 100)]
    labels = np.r_[np.ones(100, bool), np.zeros(100, bool)]
    (at1,) = separation(scores, labels, fprs=(0.01,), n_bootstrap=20).tpr_at_fpr
    assert at1.tpr is None and at1.reason == "needs at least 1000 negatives (10 false positives at 1.0% FPR), have 100"
    # 10% of 100 negatives is exactly 10: enough.
    (at10,) = separation(scores, labels, fprs=(0.1,), n_bootstrap=20).tpr_at_fpr
    assert at10.tpr is not None


def test_needs_both_classes():
    with pytest.raises(ValueError):
        separation(np.array([1.0, 2.0]), np.array([True, True]))
