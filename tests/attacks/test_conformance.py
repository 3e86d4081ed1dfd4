"""Conformance of every public function in attacks/, like the one over methods: each is
listed in one of the tables below (or exempted with a reason), and each table states the
properties its functions must have.

- Two-sample statistics (set A against set B): chance on exchangeable data (A and B drawn
  from one distribution), and the same point value when each set is shuffled.
- Per-example attacks over shadows: chance AUC on exchangeable data, the same scores when
  the shadows come in another order, and finite scores when some shadows' signals are NaN.
- Per-example transforms: equivariant under a permutation of the examples, and a NaN in one
  example leaves the others alone.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import numpy as np
import pytest

import attacks.effect
import attacks.gap
import attacks.klom
import attacks.lira
import attacks.metrics
import attacks.mia_nn
import attacks.population
import attacks.reference
import attacks.rmia
import attacks.signals
from attacks.signals import IN, OUT, UNLEARNED

MODULES = (attacks.effect, attacks.gap, attacks.klom, attacks.lira, attacks.metrics, attacks.mia_nn,
           attacks.population, attacks.reference, attacks.rmia, attacks.signals)  # fmt: skip
N = 400  # examples per set


def _labels(n_a: int, n_b: int) -> np.ndarray:
    return np.r_[np.ones(n_a, bool), np.zeros(n_b, bool)]


def _mean_roc_area(s, lab):
    fpr, tpr = attacks.metrics.roc_curve(s, lab)
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))


def _features(rng, a, b):
    """Two-column features from the two samples (MIA-NN's classifiers read several)."""
    return np.c_[np.r_[a, b], rng.permutation(np.r_[a, b])]


# name -> (statistic of samples a and b, its value at chance, tolerance)
TWO_SAMPLE: dict[str, tuple[Callable[[np.ndarray, np.ndarray], float], float, float]] = {
    "auc_score": (lambda a, b: attacks.metrics.auc_score(np.r_[a, b], _labels(len(a), len(b))), 0.5, 0.06),
    "roc_curve": (lambda a, b: _mean_roc_area(np.r_[a, b], _labels(len(a), len(b))), 0.5, 0.06),
    "balanced_accuracy": (
        lambda a, b: attacks.metrics.balanced_accuracy(np.r_[a, b], _labels(len(a), len(b))), 0.5, 0.08),
    "tpr_at": (lambda a, b: attacks.metrics.tpr_at(np.r_[a, b], _labels(len(a), len(b)), 0.1), 0.1, 0.06),
    "separation": (
        lambda a, b: attacks.metrics.separation(np.r_[a, b], _labels(len(a), len(b)), n_bootstrap=50).auc.value,
        0.5, 0.06),
    "compare_distributions": (lambda a, b: attacks.gap.compare_distributions(a, b).prob_a_greater, 0.5, 0.06),
    "shift_direction": (lambda a, b: attacks.gap.shift_direction(a, b, n_bootstrap=50)[1].value, 0.5, 0.06),
    "gap_check": (
        lambda a, b: attacks.gap.gap_check("a-vs-b", a > 0, -np.abs(a), a, b > 0, -np.abs(b), b).phi.prob_a_greater,
        0.5, 0.06),
    "mia_efficacy": (lambda a, b: attacks.population.mia_efficacy(a[: N // 2], b, a[N // 2 :]), 0.5, 0.2),
    "sample_level": (
        lambda a, b: attacks.mia_nn.sample_level(_features(np.random.default_rng(0), a, b), _labels(len(a), len(b)),
                                                 n_bootstrap=0).separation.auc.value, 0.5, 0.08),
    "binned_kl": (lambda a, b: attacks.klom.binned_kl(a, b), 0.0, 0.15),
    "unlearning_effect": (
        lambda a, b: attacks.effect.unlearning_effect(a, b, a + 1.0, b).observed.value, 0.0, 0.2),
    "paired_accuracy_difference": (lambda a, b: attacks.gap.paired_accuracy_difference(a > 0, b > 0).value, 0.0, 0.1),
    "expected_accuracy_difference": (
        lambda a, b: attacks.gap.expected_accuracy_difference((a > 0)[None], np.ones((1, len(a)), bool), b > 0).value,
        0.0, 0.1),
    "difference_interval": (
        lambda a, b: attacks.gap.difference_interval(int((a > 0).sum()), len(a), int((b > 0).sum()), len(b)).value,
        0.0, 0.1),
    "wilson_interval": (lambda a, b: float(np.mean(attacks.gap.wilson_interval(int((a > 0).sum()), len(a)))) - 0.5,
                        0.0, 0.1),
    "excess_over_null": (lambda a, b: attacks.mia_nn.excess_over_null(0.5 + a[0] / 100, 0.5 + b[:50] / 100).value,
                         0.0, 0.1),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(TWO_SAMPLE))
def test_two_sample_statistics_read_chance_on_exchangeable_data_and_ignore_order(name):
    stat, chance, tol = TWO_SAMPLE[name]
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=N), rng.normal(size=N)
    value = stat(a, b)
    assert abs(value - chance) < tol, (name, value)
    if name not in ("mia_efficacy", "sample_level", "excess_over_null"):
        # (those split or subsample by position; their order-free property is the chance level)
        assert stat(rng.permutation(a), rng.permutation(b)) == pytest.approx(value, abs=1e-12), name


def _bank(rng, shadows=32, n=2 * N, unlearned=True):
    states = rng.choice([OUT, IN, UNLEARNED] if unlearned else [OUT, IN], size=(shadows, n)).astype(np.int8)
    mu = rng.normal(0, 2, n)
    phi = mu + rng.normal(0, 1, (shadows, n))
    target = mu + rng.normal(0, 1, n)
    return states, phi, target


# name -> per-example scores from (states, phi, target) over exchangeable shadows
ATTACKS: dict[str, Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]] = {
    "lira_online": lambda s, p, t: attacks.lira.lira_online(p, np.where(s == UNLEARNED, IN, s), t),
    "lira_offline": lambda s, p, t: attacks.lira.lira_offline(p, np.where(s == UNLEARNED, IN, s), t),
    "ulira": lambda s, p, t: attacks.lira.ulira(p, s, t),
    # RMIA against the first half of the examples as its population (online; offline below).
    "rmia": lambda s, p, t: attacks.rmia.rmia(p, np.where(s == UNLEARNED, IN, s), t, np.arange(p.shape[1] // 2),
                                              online=True),
    "reference_probability": lambda s, p, t: attacks.rmia.rmia(p, np.where(s == UNLEARNED, IN, s), t,
                                                               np.arange(p.shape[1] // 2)),
    "ulira_class": lambda s, p, t: attacks.lira.ulira_class(p, s, p[::-1].copy(), t, np.ones(p.shape[1], bool)),
    "fit_state": lambda s, p, t: attacks.lira.likelihood_ratio(
        t, attacks.lira.fit_state(p, s, UNLEARNED, "global"), attacks.lira.fit_state(p, s, OUT, "global")),
    "likelihood_ratio": lambda s, p, t: attacks.lira.likelihood_ratio(
        t, attacks.lira.fit_state(p, s, UNLEARNED, "per-example"), attacks.lira.fit_state(p, s, OUT, "per-example")),
}  # fmt: skip
# fit_pair is what ulira and lira_online call; leave_one_out is tested at chance below.
COVERED_THROUGH = {"fit_pair": "ulira", "resolve_variance": "lira_online"}


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_shadow_attacks_are_at_chance_order_free_and_survive_nan_shadows(name):
    rng = np.random.default_rng(2)
    states, phi, target = _bank(rng)
    scores = ATTACKS[name](states, phi, target)
    labels = rng.random(phi.shape[1]) < 0.5  # any split of exchangeable examples
    auc = attacks.metrics.auc_score(scores, labels)
    assert abs(auc - 0.5) < 0.08, (name, auc)
    order = rng.permutation(phi.shape[0])
    again = ATTACKS[name](states[order], phi[order], target)
    np.testing.assert_allclose(again, scores, rtol=1e-9, atol=1e-9, err_msg=name)
    holes = phi.copy()
    holes[rng.random(phi.shape) < 0.2] = np.nan
    assert np.isfinite(ATTACKS[name](states, holes, target)).mean() > 0.95, name


def test_leave_one_out_lira_is_at_chance_on_exchangeable_shadows():
    rng = np.random.default_rng(3)
    states, phi, _ = _bank(rng, shadows=24, unlearned=False)
    reports = attacks.lira.leave_one_out(phi, states, targets=4, n_bootstrap=20)
    assert abs(np.mean([r.auc.value for r in reports]) - 0.5) < 0.05


def _logits(rng, n=60, c=5):
    return rng.normal(0, 2, (n, c)), rng.integers(0, c, n)


NEIGHBORS = np.array([1, 2, 3])
# name -> per-example transform of (logits, labels); output's first axis follows the examples
TRANSFORMS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "true_class_logits": attacks.signals.true_class_logits,
    "logit_scaled_confidence": attacks.signals.logit_scaled_confidence,
    "augmented_confidence": lambda z, y: attacks.signals.augmented_confidence(np.stack([z, z + 0.5]), y),
    "softmax": lambda z, y: attacks.reference.softmax(z),
    "probability": lambda z, y: attacks.rmia.probability(z),
    "threshold_scores": lambda z, y: np.c_[tuple(attacks.population.threshold_scores(z, y).values())],
    "neighbor_features": lambda z, y: attacks.mia_nn.neighbor_features(z, 0, NEIGHBORS),
    "forget_class_log_prob": lambda z, y: attacks.mia_nn.forget_class_log_prob(z, 0),
}
# Functions of a whole set (invariant, not equivariant, under a permutation of the examples).
SET_FUNCTIONS: dict[str, Callable[[np.ndarray, np.ndarray], object]] = {
    "output_divergence": lambda z, y: attacks.reference.output_divergence(z, z + (y[:, None] == 0)).kl,
    "model_features": lambda z, y: attacks.mia_nn.model_features(z[None], 0, NEIGHBORS),
    "model_summary": lambda z, y: attacks.mia_nn.model_summary(attacks.mia_nn.model_features(z, 0, NEIGHBORS)[None]),
    "neighbor_classes_from_reference": lambda z, y: attacks.mia_nn.neighbor_classes_from_reference(z[None], 0, 3)[0],
    "neighbor_classes_from_representations": lambda z, y: attacks.mia_nn.neighbor_classes_from_representations(
        z.T, 0, 3)[0],  # class representations: the examples are their dimensions
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(TRANSFORMS))
def test_transforms_follow_the_examples_and_keep_a_nan_to_its_example(name):
    rng = np.random.default_rng(4)
    z, y = _logits(rng)
    out = np.asarray(TRANSFORMS[name](z, y))
    p = rng.permutation(len(y))
    np.testing.assert_allclose(np.asarray(TRANSFORMS[name](z[p], y[p])), out[p], rtol=1e-9, err_msg=name)
    broken = z.copy()
    broken[5] = np.nan
    with np.errstate(invalid="ignore"):
        again = np.asarray(TRANSFORMS[name](broken, y))
    keep = np.arange(len(y)) != 5
    np.testing.assert_allclose(again[keep], out[keep], rtol=1e-9, err_msg=name)


@pytest.mark.parametrize("name", sorted(SET_FUNCTIONS))
def test_set_functions_do_not_depend_on_the_order_of_the_examples(name):
    rng = np.random.default_rng(5)
    z, y = _logits(rng)
    p = rng.permutation(len(y))
    a, b = SET_FUNCTIONS[name](z, y), SET_FUNCTIONS[name](z[p], y[p])
    np.testing.assert_allclose(np.asarray(a, dtype=float), np.asarray(b, dtype=float), rtol=1e-9, err_msg=name)


def test_shadow_summaries_do_not_depend_on_the_order_of_the_shadows():
    rng = np.random.default_rng(6)
    states, phi, _ = _bank(rng, unlearned=False)
    twins = phi + rng.normal(0, 1, phi.shape)
    order = rng.permutation(phi.shape[0])
    a = attacks.effect.exact_unlearning_drops(phi, states != OUT, None)
    b = attacks.effect.exact_unlearning_drops(phi[order], states[order] != OUT, None)
    np.testing.assert_allclose(a.trained, b.trained, rtol=1e-9)
    np.testing.assert_allclose(a.spread, b.spread, rtol=1e-9)
    c = attacks.effect.exact_unlearning_drops(phi, states != OUT, twins)
    assert np.isfinite(c.trained).all()
    correct = phi > 0
    sd = attacks.gap.retrain_accuracy_sd(correct, states == OUT)
    assert sd == pytest.approx(attacks.gap.retrain_accuracy_sd(correct[order], states[order] == OUT), rel=1e-9)
    u = np.where(states == IN, phi, np.nan)[:, :50]
    r = np.where(states == OUT, phi, np.nan)[:, :50]
    per = attacks.klom.klom_per_example(u, r)
    np.testing.assert_allclose(attacks.klom.klom_per_example(u[order], r[order]), per, rtol=1e-9)
    # KLoM needs many models per example to say anything: 400 unlearned and 400 retrained.
    u, r = rng.normal(size=(400, 30)), rng.normal(size=(400, 30))
    report = attacks.klom.klom(u, r, n_bootstrap=50)
    assert report.matched < 1.5 * report.floor  # exchangeable: near the noise floor
    shifted = attacks.klom.klom(u + 1.0, r, n_bootstrap=50)
    assert shifted.matched > 2 * shifted.floor  # and far above it when the unlearned models differ
    ml = attacks.mia_nn.model_level(twins[:16, :20], phi[:16, :20], phi[20, :20])
    assert abs(ml.accuracy.value - 0.5) < 0.3  # shadows and twins are exchangeable


EXEMPT = {
    "average_gap": "arithmetic on four reported metrics; exact values in test_population_reference.py",
    "detrimental_ratio": "a ratio of two numbers; exact values in test_population_reference.py",
    "fieller_interval": "an interval from five numbers; a hand-solved case in test_effect.py",
    "excess_over_share": "arithmetic on an EffectReport; checked against fieller_interval in test_effect.py",
}
COVERED_ELSEWHERE = {"leave_one_out", "exact_unlearning_drops", "retrain_accuracy_sd", "klom_per_example", "klom",
                     "model_level"}  # fmt: skip


def test_every_public_function_in_attacks_is_covered():
    public = {
        name
        for module in MODULES
        for name, obj in vars(module).items()
        if inspect.isfunction(obj) and obj.__module__ == module.__name__ and not name.startswith("_")
    }
    covered = set(TWO_SAMPLE) | set(ATTACKS) | set(TRANSFORMS) | set(SET_FUNCTIONS) | set(COVERED_THROUGH)
    covered |= COVERED_ELSEWHERE | set(EXEMPT)
    assert public - covered == set(), "add the new function to a conformance table"
    assert covered - public == set(), "a table names a function that no longer exists"
