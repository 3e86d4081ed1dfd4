import numpy as np
import pytest
from scipy.stats import norm

from attacks.gap import (
    compare_distributions,
    difference_interval,
    expected_accuracy_difference,
    gap_check,
    paired_accuracy_difference,
    shift_direction,
    wilson_interval,
)


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


def test_examples_a_model_cannot_score_are_left_out_not_read_as_no_shift():
    """A NaN phi made scipy's p-values NaN, and the verdict fell through to consistent."""
    rng = np.random.default_rng(7)
    correct_a, loss_a, phi_a, correct_b, loss_b, phi_b = sets(rng, 300, 0.9, 3.0)
    phi_a[0] = np.nan
    check = gap_check("f", correct_a, loss_a, phi_a, correct_b, loss_b, phi_b)
    assert check.verdict == "memorization" and check.phi.mwu_pvalue < 1e-20
    assert compare_distributions(phi_a, phi_b) == compare_distributions(phi_a[1:], phi_b)
    phi_a[:290] = np.nan  # ten left: too few for a claim about phi
    scarce = gap_check("f", correct_b[:300], loss_a, phi_a, correct_b, loss_b, phi_b)  # accuracy alike
    assert scarce.verdict == "inconclusive" and "phi exists for 10 examples" in scarce.reason


def test_phi_shift_alone_is_detected_and_effect_direction_reported():
    rng = np.random.default_rng(1)
    check = gap_check("f", *sets(rng, 300, 0.9, 0.5))
    assert check.phi.prob_a_greater > 0.6 and check.phi.mwu_pvalue < 0.01
    assert check.loss.prob_a_greater < 0.4  # higher phi, lower loss
    assert check.verdict == "memorization"


def test_an_exact_unlearner_is_flagged_at_most_alpha_of_the_time():
    # Null: forget and test drawn from one distribution (n as in a CIFAR-10 sample audit).
    # Accuracy and phi independent, the case where two tests at alpha each flag most often
    # (each at alpha: 10.7% measured here). Bonferroni, each at alpha / 2: at most 5%
    # (4.9% over 4000 draws). 600 draws: standard error sqrt(0.05 * 0.95 / 600) = 0.009,
    # so the bounds sit about 2 standard errors either side of 5%.
    rng = np.random.default_rng(7)
    flagged = 0
    for _ in range(600):
        a = rng.random(135) < 0.9, rng.normal(2, 1.5, 135)
        b = rng.random(450) < 0.9, rng.normal(2, 1.5, 450)
        flagged += gap_check("f", a[0], -a[1], a[1], b[0], -b[1], b[1]).verdict != "consistent"
    assert 0.03 <= flagged / 600 <= 0.068


def test_bonferroni_uses_the_wider_interval_but_keeps_the_95_percent_one_for_display():
    correct_a = np.r_[np.ones(128, bool), np.zeros(7, bool)]  # 0.948 against 0.889
    correct_b = np.r_[np.ones(400, bool), np.zeros(50, bool)]
    phi = np.zeros(135), np.zeros(450)  # no phi shift at all
    check = gap_check("f", correct_a, -phi[0], phi[0], correct_b, -phi[1], phi[1])
    shown = difference_interval(128, 135, 400, 450)
    tested = difference_interval(128, 135, 400, 450, level=0.975)
    assert check.accuracy_diff == shown and shown.level == 0.95
    # The 95% interval excludes 0 (each test at alpha would call it memorization); the
    # 97.5% one does not, so the check reads consistent.
    assert shown.low > 0 > tested.low
    assert check.verdict == "consistent" and "97.5%" in check.reason


def test_a_real_shift_is_detected_at_audit_sizes():
    rng = np.random.default_rng(8)
    for shift, verdict in ((0.5, "memorization"), (-0.5, "over-forgetting")):
        a, b = rng.normal(2 + shift, 1, 135), rng.normal(2, 1, 450)
        same = rng.random(135) < 0.9, rng.random(450) < 0.9
        assert gap_check("f", same[0], -a, a, same[1], -b, b).verdict == verdict
    # Accuracy alone: 0.99 against 0.90 (phi identical).
    phi_a, phi_b = rng.normal(2, 1, 135), rng.normal(2, 1, 450)
    check = gap_check("f", rng.random(135) < 0.99, -phi_a, phi_a, rng.random(450) < 0.9, -phi_b, phi_b)
    assert check.verdict == "memorization"


def test_shift_direction_effect_matches_the_pairwise_count():
    rng = np.random.default_rng(9)
    a, b = np.round(rng.normal(size=37), 1), np.round(rng.normal(size=53), 1)  # ties
    pairs = ((a[:, None] > b[None]).sum() + 0.5 * (a[:, None] == b[None]).sum()) / (37 * 53)
    label, effect = shift_direction(a, b, n_bootstrap=200)
    assert effect.value == pytest.approx(pairs, abs=1e-12)
    assert effect.value == pytest.approx(compare_distributions(a, b).prob_a_greater, abs=1e-12)
    assert effect.low <= effect.value <= effect.high and effect.level == 0.95
    # NaN (unscorable) values are left out, not compared.
    assert shift_direction(np.r_[a, np.nan], b, n_bootstrap=200)[1] == effect
    with pytest.raises(ValueError, match="at least one"):
        shift_direction(np.array([np.nan]), b)


def test_shift_direction_is_undetermined_for_identical_distributions():
    # A 95% interval should hold 0.5 in about 95% of null draws (the percentile bootstrap
    # of a Mann-Whitney effect at n = 135 runs a little short: 94-96% over 1000 draws).
    # 200 draws: standard error 0.015, so 0.90 is 3 below; a point-estimate label would
    # give "undetermined" never.
    rng = np.random.default_rng(10)
    labels = [
        shift_direction(rng.normal(size=135), rng.normal(size=450), n_bootstrap=400, seed=i)[0] for i in range(200)
    ]
    undetermined = labels.count("undetermined") / 200
    assert 0.90 <= undetermined <= 0.99
    assert labels.count("under-forgetting") > 0 and labels.count("over-forgetting") > 0  # both tails, no bias


def test_shift_direction_names_a_clear_shift():
    rng = np.random.default_rng(11)
    label, effect = shift_direction(rng.normal(0.5, 1, 135), rng.normal(0, 1, 450))
    # Two unit Gaussians 0.5 apart: P(A > B) = Phi(0.5 / sqrt(2)) = 0.638.
    assert label == "under-forgetting" and effect.contains(norm.cdf(0.5 / np.sqrt(2)))
    label, effect = shift_direction(rng.normal(-0.5, 1, 135), rng.normal(0, 1, 450))
    assert label == "over-forgetting" and effect.high < 0.5


def _paired(rng, n, only_ref, only_model, both=0.85):
    """Correctness of two models on the same n examples: P(only ref right) = only_ref, etc."""
    u = rng.random(n)
    ref = (u < only_ref) | ((u >= only_ref + only_model) & (u < only_ref + only_model + both))
    model = (u >= only_ref) & (u < only_ref + only_model + both)
    return ref, model


def test_paired_difference_covers_the_true_difference():
    # n = 450, 3% discordant each way (and 4% / 2%). Coverage measured over 4000 draws:
    # 0.959 and 0.949. 2000 draws: standard error 0.005.
    rng = np.random.default_rng(12)
    for only_ref, only_model in ((0.03, 0.03), (0.04, 0.02)):
        hits = sum(
            paired_accuracy_difference(*_paired(rng, 450, only_ref, only_model)).contains(only_ref - only_model)
            for _ in range(2000)
        )
        assert 0.93 <= hits / 2000 <= 0.97


def test_paired_difference_matches_the_agresti_min_formula():
    ref = np.r_[np.ones(400, bool), np.ones(12, bool), np.zeros(5, bool), np.zeros(33, bool)]
    model = np.r_[np.ones(400, bool), np.zeros(12, bool), np.ones(5, bool), np.zeros(33, bool)]
    iv = paired_accuracy_difference(ref, model)
    # b = 12, c = 5, n = 450; plus one half per cell: 12.5, 5.5, n 452.
    centre = 7 / 452
    half = 1.959964 * np.sqrt((18 - 49 / 452) / 452**2)
    assert iv.value == pytest.approx(7 / 450)
    assert iv.low == pytest.approx(centre - half, abs=1e-6) and iv.high == pytest.approx(centre + half, abs=1e-6)
    # No discordant example: still a width, not a point.
    same = paired_accuracy_difference(ref, ref)
    assert same.value == 0 and same.low < 0 < same.high


def test_paired_difference_is_narrower_than_unpaired_on_concordant_models():
    rng = np.random.default_rng(13)
    ref, model = _paired(rng, 450, 0.02, 0.02, both=0.88)
    paired = paired_accuracy_difference(ref, model)
    unpaired = difference_interval(int(ref.sum()), 450, int(model.sum()), 450)
    assert paired.value == pytest.approx(unpaired.value)
    assert paired.high - paired.low < 0.5 * (unpaired.high - unpaired.low)


def test_model_sd_widens_in_quadrature_for_two_models():
    rng = np.random.default_rng(14)
    ref, model = _paired(rng, 450, 0.03, 0.03)
    plain = paired_accuracy_difference(ref, model)
    wide = paired_accuracy_difference(ref, model, model_sd=0.01)
    z = norm.ppf(0.975)
    half_plain, half_wide = (plain.high - plain.low) / 2, (wide.high - wide.low) / 2
    assert half_wide**2 - half_plain**2 == pytest.approx(2 * z**2 * 0.01**2, rel=1e-9)
    assert (wide.low + wide.high) / 2 == pytest.approx((plain.low + plain.high) / 2)
    with pytest.raises(ValueError, match="paired"):
        paired_accuracy_difference(ref, model[:-1])


def test_model_sd_gives_coverage_when_the_model_is_another_retrain():
    # Null: the audited model and the reference are two retrains. Each has population
    # accuracy 0.85 + 0.01 Z (its own seed), and each flips 3% of examples on its own.
    # With the seed sd of the accuracy (0.01 * (1 - 2 * 0.03)) the interval holds 0 about
    # 95% of the time; ignoring it gives about 80%, counting it once (not twice) about 90%.
    rng = np.random.default_rng(15)
    flip, sd, n, draws = 0.03, 0.01, 450, 2000
    hits = {0.0: 0, 1.0: 0}
    for _ in range(draws):
        u = rng.random(n)
        ref = (u < 0.85 + sd * rng.normal()) ^ (rng.random(n) < flip)
        model = (u < 0.85 + sd * rng.normal()) ^ (rng.random(n) < flip)
        for k in hits:
            hits[k] += paired_accuracy_difference(ref, model, model_sd=k * sd * (1 - 2 * flip)).contains(0.0)
    assert 0.93 <= hits[1.0] / draws <= 0.97
    assert hits[0.0] / draws < 0.88


def test_expected_difference_averages_the_models_that_never_saw_each_example():
    # Example 0: 2 of the 3 models that never saw it get it right (the one that saw it is
    # ignored); example 1: 1 of 2; example 2: 0 of 1. The model gets only example 2 right.
    correct = np.array([[1, 1, 1], [1, 0, 0], [0, 1, 0], [1, 0, 0]], bool)
    unseen = np.array([[1, 1, 0], [1, 1, 0], [1, 0, 1], [0, 0, 0]], bool)
    iv = expected_accuracy_difference(correct, unseen, np.array([0, 0, 1], bool))
    assert iv.value == pytest.approx(((2 / 3 + 1 / 2 + 0) - 1) / 3)
    with pytest.raises(ValueError, match="no reference model"):
        expected_accuracy_difference(correct, unseen & [True, True, False], np.array([0, 0, 1], bool))
    with pytest.raises(ValueError, match="not paired"):
        expected_accuracy_difference(correct, unseen, np.array([0, 0], bool))


def test_expected_difference_with_one_reference_model_is_the_paired_one():
    rng = np.random.default_rng(16)
    ref, model = _paired(rng, 450, 0.04, 0.02)
    one = expected_accuracy_difference(ref[None], np.ones((1, 450), bool), model, model_sd=0.02)
    paired = paired_accuracy_difference(ref, model, model_sd=0.02)
    assert (one.value, one.low, one.high) == pytest.approx((paired.value, paired.low, paired.high), rel=1e-12)


def test_expected_difference_covers_a_retrain_against_the_shadows_average():
    # Null: the audited model is one more retrain, against 16 that each never saw a random
    # quarter of 450 examples (as in a bank); each has accuracy 0.85 + 0.01 Z (its seed) and
    # flips 3% of examples on its own. Coverage of 0 measured over 4000 draws: 0.959 with
    # the seed spread, 0.86 without it.
    rng = np.random.default_rng(17)
    flip, sd, n, k, draws = 0.03, 0.01, 450, 16, 1000
    hits = {0.0: 0, 1.0: 0}
    for _ in range(draws):
        u = rng.random(n)
        models = (u < 0.85 + sd * rng.normal(size=(k + 1, 1))) ^ (rng.random((k + 1, n)) < flip)
        unseen = rng.random((k, n)) < 0.25
        keep = unseen.any(axis=0)
        for f in hits:
            iv = expected_accuracy_difference(models[:k, keep], unseen[:, keep], models[k, keep],
                                              model_sd=f * sd * (1 - 2 * flip))  # fmt: skip
            hits[f] += iv.contains(0.0)
    assert 0.93 <= hits[1.0] / draws <= 0.975
    assert hits[0.0] / draws < 0.9


def test_retrain_accuracy_sd_recovers_the_seed_spread_from_partial_views():
    """64 models, each scored on the quarter of 450 examples it never saw: the spread of
    their accuracies is mostly sampling; what is left is the models' own (true sd 0.02)."""
    from attacks.gap import retrain_accuracy_sd

    rng = np.random.default_rng(0)
    estimates = []
    for _ in range(200):
        difficulty = rng.random(450)
        skill = 0.9 + rng.normal(0, 0.02, 64)  # each model's accuracy on all 450
        correct = difficulty[None, :] < skill[:, None]
        unseen = rng.random((64, 450)) < 0.25
        estimates.append(retrain_accuracy_sd(correct, unseen))
    # Without the finite-population correction the estimate is biased low (often 0).
    assert abs(np.mean(estimates) - 0.02) < 0.004 and np.mean(np.array(estimates) == 0) < 0.1
    assert np.isnan(retrain_accuracy_sd(np.ones((2, 50), bool), np.ones((2, 50), bool)))  # fewer than 3 models
    with pytest.raises(ValueError):
        retrain_accuracy_sd(np.ones((3, 5), bool), np.ones((3, 4), bool))
