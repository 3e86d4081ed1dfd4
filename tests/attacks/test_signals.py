import numpy as np
import pytest

from attacks.signals import augmented_confidence, logit_scaled_confidence


def test_phi_equals_log_odds_of_true_class():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, 50, 7))
    labels = rng.integers(0, 7, size=50)
    p = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    py = p[:, np.arange(50), labels]
    np.testing.assert_allclose(logit_scaled_confidence(logits, labels), np.log(py / (1 - py)), rtol=1e-10)


def test_phi_stays_exact_where_softmax_saturates():
    # p_y rounds to 1.0 in float64 here, so log(p/(1-p)) would be inf; phi must not be.
    logits = np.array([[60.0, 0.0, -5.0], [0.0, 0.0, 0.0], [-40.0, 0.0, 0.0]], dtype=np.float32)
    labels = np.array([0, 1, 0])
    phi = logit_scaled_confidence(logits, labels)
    expected_0 = 60.0 - np.log(np.exp(0.0) + np.exp(-5.0))
    np.testing.assert_allclose(phi, [expected_0, -np.log(2.0), -40.0 - np.log(2.0)], rtol=1e-12)
    assert phi.dtype == np.float64


def test_augmented_confidence_averages_views():
    logits = np.array([[[2.0, 0.0]], [[0.0, 0.0]]])  # 2 views, 1 example, 2 classes
    assert augmented_confidence(logits, np.array([0]))[0] == pytest.approx(1.0)


def test_phi_needs_two_classes():
    with pytest.raises(ValueError):
        logit_scaled_confidence(np.zeros((4, 1)), np.zeros(4, dtype=int))


def test_overflowed_logits_give_a_clipped_phi_not_infinity():
    from attacks.signals import PHI_LIMIT

    logits = np.array([[np.inf, 0.0], [0.0, np.inf], [np.inf, np.inf]])
    phi = logit_scaled_confidence(logits, np.array([0, 0, 0]))
    assert phi[0] == PHI_LIMIT and phi[1] == -PHI_LIMIT
    assert np.isnan(phi[2])  # inf - inf: not scorable
