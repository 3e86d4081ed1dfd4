import numpy as np
import pytest

from attacks.population import mia_efficacy
from attacks.reference import UnlearningMetrics, average_gap


def test_mia_efficacy_separates_confident_members_from_unsure_non_members():
    rng = np.random.default_rng(0)
    retain = rng.uniform(0.95, 1.0, 400)  # members: confident
    test = rng.uniform(0.2, 0.7, 200)  # non-members: unsure
    assert mia_efficacy(retain, test, rng.uniform(0.95, 1.0, 100)) < 0.05  # still look like members
    assert mia_efficacy(retain, test, rng.uniform(0.2, 0.7, 100)) > 0.95  # forgotten


def test_mia_efficacy_is_near_half_when_members_and_non_members_match():
    rng = np.random.default_rng(1)
    same = lambda n: rng.uniform(0, 1, n)  # noqa: E731
    assert 0.2 < mia_efficacy(same(500), same(500), same(2000)) < 0.8


def test_mia_efficacy_needs_data():
    with pytest.raises(ValueError):
        mia_efficacy(np.array([]), np.array([0.5]), np.array([0.5]))


def test_average_gap_is_mean_absolute_difference_in_points():
    retrained = UnlearningMetrics(forget_accuracy=90, retain_accuracy=100, test_accuracy=92, mia_efficacy=10)
    model = UnlearningMetrics(forget_accuracy=100, retain_accuracy=99, test_accuracy=92, mia_efficacy=2)
    # UA 0 vs 10, MIA 2 vs 10, RA 99 vs 100, TA 92 vs 92 -> (10 + 8 + 1 + 0) / 4
    assert average_gap(model, retrained) == pytest.approx(4.75)
    assert average_gap(retrained, retrained) == 0.0


def test_threshold_scores_match_hand_computation():
    from attacks.population import threshold_scores

    logits = np.array([[2.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    labels = np.array([0, 1])
    s = threshold_scores(logits, labels)
    p0 = np.exp(2) / (np.exp(2) + 2)
    assert s["confidence"] == pytest.approx([p0, 1 / 3])
    assert s["loss"] == pytest.approx([np.log(p0), np.log(1 / 3)])  # = -cross-entropy
    q = (1 - p0) / 2
    assert s["entropy"][0] == pytest.approx(p0 * np.log(p0) + 2 * q * np.log(q))
    mentr0 = -(1 - p0) * np.log(p0) - 2 * q * np.log(1 - q)
    assert s["modified-entropy"][0] == pytest.approx(-mentr0)
    # Uniform output: modified entropy -(2/3) log(1/3) - 2 * (1/3) log(2/3).
    assert s["modified-entropy"][1] == pytest.approx((2 / 3) * np.log(1 / 3) + (2 / 3) * np.log(2 / 3))


def test_modified_entropy_penalises_confident_wrong_predictions():
    from attacks.population import threshold_scores

    logits = np.array([[8.0, 0.0], [0.0, 8.0]])  # confident; right for label 0, wrong for label 0
    s = threshold_scores(logits, np.array([0, 0]))
    assert s["modified-entropy"][0] > s["modified-entropy"][1]
    assert s["entropy"][0] == pytest.approx(s["entropy"][1])  # plain entropy cannot tell them apart


def test_output_divergence_and_detrimental_ratio():
    from attacks.reference import detrimental_ratio, output_divergence

    same = np.array([[1.0, 0.0], [0.0, 2.0]])
    d0 = output_divergence(same, same)
    assert d0.kl == pytest.approx(0.0, abs=1e-12) and d0.total_variation == pytest.approx(0.0, abs=1e-12)
    # p = (0.5, 0.5), q = softmax(log 3, 0) = (0.75, 0.25): KL = 0.5 log(0.5/0.75) + 0.5 log(0.5/0.25), TV = 0.25
    d = output_divergence(np.array([[np.log(3.0), 0.0]]), np.array([[0.0, 0.0]]))
    assert d.kl == pytest.approx(0.5 * np.log(2 / 3) + 0.5 * np.log(2))
    assert d.total_variation == pytest.approx(0.25)
    assert detrimental_ratio(0.2, 0.1) == pytest.approx(2.0)
    assert detrimental_ratio(0.0, 0.0) == 1.0
