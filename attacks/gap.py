"""Test-versus-forget gap checks ("Ascent Fails to Forget"): no shadow models needed.

For a random forget set, a model retrained without it treats forget examples like test
examples, up to sampling error. So the audited model's forget-set metrics are compared
with its test-set metrics: accuracy (difference with a Newcombe interval built from
Wilson score intervals) and the loss and ``phi`` distributions (two-sample KS and
Mann-Whitney). Forget clearly better than test is residual memorization; clearly worse
is over-forgetting, itself detectable. Retain versus test is reported beside it as the
baseline generalization gap. Too few examples for a claim make the check inconclusive.

The verdict reads two tests (accuracy and the ``phi`` shift); each runs at ``alpha / 2``
(Bonferroni) so that a model that forgot exactly is called anything but "consistent" at
most ``alpha`` of the time. Each at ``alpha`` measured 8.9% against 5% nominal.

Also here: ``shift_direction`` (which way one distribution sits from another, with a
bootstrap interval, "undetermined" when the interval holds 0.5) and
``paired_accuracy_difference`` (two models on the same examples, e.g. the audited and the
retrained model on the test set), and ``expected_accuracy_difference`` (the same with many
reference models, each scored only on the examples it never trained on: the shadows).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.stats import ks_2samp, mannwhitneyu, norm

from attacks.metrics import Interval

Verdict = Literal["memorization", "over-forgetting", "consistent", "inconclusive"]
Direction = Literal["under-forgetting", "over-forgetting", "undetermined"]
MIN_EXAMPLES = 20


@dataclass(frozen=True)
class DistributionTest:
    """Two-sample comparison of one per-example quantity between sets A and B."""

    ks_statistic: float
    ks_pvalue: float
    prob_a_greater: float
    """Mann-Whitney effect: P(value from A > value from B), ties half; 0.5 = no shift."""
    mwu_pvalue: float


@dataclass(frozen=True)
class GapCheck:
    """Set A (forget, or retain) against set B (test) on one model."""

    name: str
    n_a: int
    n_b: int
    accuracy_a: float
    accuracy_b: float
    accuracy_diff: Interval
    """accuracy_a - accuracy_b with its 95% interval, for display. The verdict uses the wider
    ``1 - alpha / 2`` interval (Bonferroni over the accuracy and the phi test)."""
    loss: DistributionTest
    phi: DistributionTest
    verdict: Verdict
    reason: str


def wilson_interval(successes: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion."""
    if n == 0:
        return 0.0, 1.0
    z = norm.ppf(0.5 + level / 2)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(centre - half), float(centre + half)


def difference_interval(s_a: int, n_a: int, s_b: int, n_b: int, level: float = 0.95) -> Interval:
    """Newcombe's hybrid score interval for p_a - p_b (method 10), good at small n."""
    p_a, p_b = s_a / n_a, s_b / n_b
    l_a, u_a = wilson_interval(s_a, n_a, level)
    l_b, u_b = wilson_interval(s_b, n_b, level)
    d = p_a - p_b
    low = d - np.sqrt((p_a - l_a) ** 2 + (u_b - p_b) ** 2)
    high = d + np.sqrt((u_a - p_a) ** 2 + (p_b - l_b) ** 2)
    return Interval(float(d), float(low), float(high), level)


def compare_distributions(a: np.ndarray, b: np.ndarray) -> DistributionTest:
    """KS and Mann-Whitney between the values of ``a`` and ``b`` that exist: an example a
    model cannot score (NaN) is left out; with it scipy's p-values are NaN, and a NaN
    p-value read as "no shift"."""
    a, b = a[~np.isnan(a)], b[~np.isnan(b)]
    if len(a) == 0 or len(b) == 0:
        return DistributionTest(np.nan, np.nan, np.nan, np.nan)
    ks = ks_2samp(a, b)
    mwu = mannwhitneyu(a, b, alternative="two-sided")
    return DistributionTest(
        ks_statistic=float(ks.statistic),
        ks_pvalue=float(ks.pvalue),
        prob_a_greater=float(mwu.statistic / (len(a) * len(b))),
        mwu_pvalue=float(mwu.pvalue),
    )


def gap_check(
    name: str,
    correct_a: np.ndarray,
    loss_a: np.ndarray,
    phi_a: np.ndarray,
    correct_b: np.ndarray,
    loss_b: np.ndarray,
    phi_b: np.ndarray,
    *,
    alpha: float = 0.05,
) -> GapCheck:
    """Compare set A with set B; the verdict reads A as the forget set.

    The verdict is "consistent" unless the accuracy interval at level ``1 - alpha / 2``
    excludes 0 or the phi Mann-Whitney p-value is below ``alpha / 2``: two tests, each at
    half the level (Bonferroni), so a model that forgot exactly is flagged at most
    ``alpha`` of the time whatever the dependence between the two tests.
    """
    correct_a, correct_b = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    n_a, n_b = len(correct_a), len(correct_b)
    if n_a == 0 or n_b == 0:
        raise ValueError("gap checks need examples in both sets")
    s_a, s_b = int(correct_a.sum()), int(correct_b.sum())
    diff = difference_interval(s_a, n_a, s_b, n_b)
    each = alpha / 2  # Bonferroni: two tests share alpha
    test = difference_interval(s_a, n_a, s_b, n_b, level=1 - each)
    loss = compare_distributions(np.asarray(loss_a, float), np.asarray(loss_b, float))
    phi = compare_distributions(np.asarray(phi_a, float), np.asarray(phi_b, float))
    # Examples a model cannot score have no phi: too few left and phi says nothing.
    scored = min(int(np.count_nonzero(~np.isnan(np.asarray(v, float)))) for v in (phi_a, phi_b))
    shifted = scored >= MIN_EXAMPLES and phi.mwu_pvalue < each
    if min(n_a, n_b) < MIN_EXAMPLES:
        verdict: Verdict = "inconclusive"
        reason = f"{min(n_a, n_b)} examples in the smaller set; at least {MIN_EXAMPLES} are needed"
    elif test.low > 0 or (shifted and phi.prob_a_greater > 0.5):
        verdict = "memorization"
        reason = "forget examples are fitted better than test examples"
    elif test.high < 0 or (shifted and phi.prob_a_greater < 0.5):
        verdict = "over-forgetting"
        reason = "forget examples are fitted worse than test examples"
    elif scored < MIN_EXAMPLES:
        verdict = "inconclusive"
        reason = f"phi exists for {scored} examples of the smaller set; at least {MIN_EXAMPLES} are needed"
    else:
        verdict = "consistent"
        reason = (
            f"accuracy difference {test.value:+.3f} within [{test.low:+.3f}, {test.high:+.3f}] "
            f"({1 - each:.1%} interval), no phi shift (p >= {each:g})"
        )
    return GapCheck(name, n_a, n_b, s_a / n_a, s_b / n_b, diff, loss, phi, verdict, reason)


def _prob_a_greater(a: np.ndarray, b_sorted: np.ndarray, wa: np.ndarray, wb: np.ndarray) -> np.ndarray:
    """P(A > B), ties half, for each row of resample counts ``wa`` (r, n_a) and ``wb`` (r, n_b).

    Resampling only reweights the original values, so where each ``a_i`` falls among the
    sorted ``b`` is found once; a resample then costs a cumulative sum, not a sort.
    """
    below = np.searchsorted(b_sorted, a, side="left")  # b values < a_i
    not_above = np.searchsorted(b_sorted, a, side="right")  # b values <= a_i
    cum = np.concatenate([np.zeros((len(wb), 1)), np.cumsum(wb, axis=1)], axis=1)
    wins = cum[:, below] + 0.5 * (cum[:, not_above] - cum[:, below])
    return (wa * wins).sum(axis=1) / (wa.sum(axis=1) * wb.sum(axis=1))


def _resample_counts(rng: np.random.Generator, n: int, r: int) -> np.ndarray:
    """(r, n): how often each of n values is drawn in each of r resamples with replacement."""
    draws = rng.integers(0, n, size=(r, n)) + (np.arange(r) * n)[:, None]
    return np.bincount(draws.ravel(), minlength=r * n).reshape(r, n).astype(np.float64)


def shift_direction(
    a: np.ndarray,
    b: np.ndarray,
    *,
    level: float = 0.95,
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> tuple[Direction, Interval]:
    """Which way A sits from B: the Mann-Whitney effect P(A > B) (ties half) with a
    stratified bootstrap percentile interval (A and B resampled separately).

    Read A as the forget set and B as the test set, both scored so that higher means
    fitted better (``phi``, confidence; not loss). "under-forgetting" when the interval's
    low end is above 0.5 (forget examples are fitted better than unseen ones),
    "over-forgetting" when its high end is below 0.5, otherwise "undetermined". A label
    from the point estimate alone names a direction for pure noise every time (and,
    sending an exact 0.5 one way, leans that way); an exact unlearner should read
    "undetermined" about ``level`` of the time. NaN values (examples that could not be
    scored) are left out.
    """
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    a, b = a[~np.isnan(a)], b[~np.isnan(b)]
    if len(a) == 0 or len(b) == 0:
        raise ValueError("shift_direction needs at least one value in each set")
    b_sorted = np.sort(b)
    value = float(_prob_a_greater(a, b_sorted, np.ones((1, len(a))), np.ones((1, len(b))))[0])
    rng = np.random.default_rng(seed)
    stats = [np.empty(0)]
    block = max(1, 2_000_000 // (len(a) + len(b)))  # resamples at a time: bounds the memory
    for start in range(0, n_bootstrap, block):
        r = min(block, n_bootstrap - start)
        stats.append(_prob_a_greater(a, b_sorted, _resample_counts(rng, len(a), r), _resample_counts(rng, len(b), r)))
    tail = (1 - level) / 2
    if n_bootstrap > 0:
        low, high = np.quantile(np.concatenate(stats), [tail, 1 - tail])
    else:
        low, high = value, value
    interval = Interval(value, float(low), float(high), level)
    if interval.low > 0.5:
        return "under-forgetting", interval
    if interval.high < 0.5:
        return "over-forgetting", interval
    return "undetermined", interval


def paired_accuracy_difference(
    correct_ref: np.ndarray,
    correct_model: np.ndarray,
    *,
    model_sd: float = 0.0,
    level: float = 0.95,
) -> Interval:
    """accuracy(ref) - accuracy(model), both models scored on the SAME examples.

    Paired, not two independent samples: an example that both models get right (or both
    wrong) moves neither accuracy relative to the other, so only the discordant examples
    carry the difference. With ``b`` examples only ref gets right and ``c`` only the model
    gets right, out of ``n``, the difference is ``(b - c) / n`` with the McNemar-type
    variance ``(b + c - (b - c)^2 / n) / n^2``. On two similar models (most examples
    concordant) this is far narrower than the unpaired Newcombe interval of
    ``difference_interval``, which charges each accuracy its full binomial variance.

    Small counts: a plain Wald interval collapses to zero width when ``b = c = 0`` and
    undercovers when they are small, so the interval is the Agresti-Min (2005) adjusted
    Wald: one half added to each of the four cells of the paired 2x2 table (so ``b + 1/2``,
    ``c + 1/2``, ``n + 2``), the Wald interval computed on that table, clipped to [-1, 1].
    The point value is the raw ``(b - c) / n``.

    ``model_sd``: the seed-to-seed standard deviation of one model's accuracy (two runs of
    the same recipe with different seeds; the caller estimates it from shadow models).
    The paired variance treats both models as fixed and only the examples as random, but
    the reference is ONE retrain and an exact unlearner is, at best, ANOTHER retrain: two
    independently trained models, each off the recipe's mean accuracy by ``model_sd``, so
    their difference carries a further ``2 * model_sd**2``. Half-width:
    ``z * sqrt(var_paired + 2 * model_sd**2)``. ``model_sd`` should be the seed spread of
    the accuracy itself; an sd of shadow accuracies measured on these same examples also
    holds the per-example flips that ``var_paired`` already counts, so it makes the
    interval wider (conservative) than it needs to be.
    """
    ref = np.asarray(correct_ref, dtype=bool).ravel()
    model = np.asarray(correct_model, dtype=bool).ravel()
    if ref.shape != model.shape:
        raise ValueError(f"{ref.shape} reference results but {model.shape} model results: not paired")
    if len(ref) == 0:
        raise ValueError("paired_accuracy_difference needs at least one example")
    if not model_sd >= 0:
        raise ValueError(f"model_sd must be a non-negative number, got {model_sd}")
    n = len(ref)
    b = int((ref & ~model).sum())
    c = int((~ref & model).sum())
    # Agresti-Min: half a count in each cell of the 2x2 table.
    b_, c_, n_ = b + 0.5, c + 0.5, n + 2.0
    centre = (b_ - c_) / n_
    var_paired = (b_ + c_ - (b_ - c_) ** 2 / n_) / n_**2
    half = norm.ppf(0.5 + level / 2) * np.sqrt(var_paired + 2 * model_sd**2)
    return Interval((b - c) / n, float(max(-1.0, centre - half)), float(min(1.0, centre + half)), level)


def expected_accuracy_difference(
    correct_refs: np.ndarray,
    unseen: np.ndarray,
    correct_model: np.ndarray,
    *,
    model_sd: float = 0.0,
    level: float = 0.95,
) -> Interval:
    """Expected accuracy of a model trained with the recipe minus the model's accuracy, on the
    SAME examples, from K reference models each scored only where it never trained.

    ``correct_refs`` and ``unseen`` are (K, N) booleans, ``correct_model`` is (N,). Example
    i's reference is a rate, ``r_i``: the share of the models that never saw it that get it
    right (an unbiased estimate of the chance that a model trained without it does). The
    difference is the mean of ``d_i = r_i - m_i`` (``m_i``: the model got it right), paired
    as in ``paired_accuracy_difference``, whose Agresti-Min adjustment it extends: the same
    two pseudo-examples (``d = 0`` with weight 1, ``d = +1`` and ``d = -1`` with a half each)
    keep the interval from collapsing when every ``d_i`` is 0. With one reference model,
    unseen on every example, the interval is exactly that function's, seed term included.

    ``model_sd``: the seed-to-seed standard deviation of one model's accuracy. The reference
    is the recipe's average, not one retrain, so the audited model (at best one retrain) is
    off it by ``model_sd`` once, not twice; the average is itself off by its models' seeds,
    each model shifting every example it scores: with weight ``w_k`` (model k's share of the
    mean of the ``r_i``, summing to 1) that adds ``model_sd**2 * sum(w_k**2)``, about
    ``model_sd**2 / K``. Half-width: ``z * sqrt(var_paired + model_sd**2 * (1 + sum(w_k**2)))``.
    Every example needs at least one model that never saw it (leave the others out first).
    """
    correct_refs = np.asarray(correct_refs, dtype=bool)
    unseen = np.asarray(unseen, dtype=bool)
    model = np.asarray(correct_model, dtype=bool).ravel()
    if correct_refs.shape != unseen.shape or correct_refs.ndim != 2 or correct_refs.shape[1] != len(model):
        raise ValueError(
            f"correct_refs {correct_refs.shape} and unseen {unseen.shape} must be (models, examples) with one "
            f"column per model result ({model.shape}): not paired"
        )
    if len(model) == 0:
        raise ValueError("expected_accuracy_difference needs at least one example")
    if not model_sd >= 0:
        raise ValueError(f"model_sd must be a non-negative number, got {model_sd}")
    k = unseen.sum(axis=0)
    if (k == 0).any():
        raise ValueError(f"{int((k == 0).sum())} examples have no reference model that never saw them")
    n = len(model)
    d = (correct_refs & unseen).sum(axis=0) / k - model
    # Agresti-Min: half a count in each cell of the paired table, as in paired_accuracy_difference.
    n_ = n + 2.0
    centre = d.sum() / n_
    var_paired = (np.sum(d**2) + 1.0 - d.sum() ** 2 / n_) / n_**2
    weights = (unseen / k).sum(axis=1) / n  # each model's share of the expected accuracy
    var_seed = model_sd**2 * (1.0 + np.sum(weights**2))
    half = norm.ppf(0.5 + level / 2) * np.sqrt(var_paired + var_seed)
    return Interval(float(d.mean()), float(max(-1.0, centre - half)), float(min(1.0, centre + half)), level)


def retrain_accuracy_sd(correct: np.ndarray, unseen: np.ndarray, *, min_examples: int = 20) -> float:
    """Seed-to-seed standard deviation of a model's accuracy on a fixed set of N examples,
    from K models each scored only on the examples it never trained on.

    ``correct`` and ``unseen`` are (K, N) booleans. Model k's accuracy on its n_k unseen
    examples varies around its accuracy on all N by sampling alone, with variance
    ``p(1 - p) / n_k * (1 - n_k / N)`` (drawn without replacement from the N); what the
    spread across models exceeds that by is the models' own (method of moments, floored at
    0). Models with fewer than ``min_examples`` unseen examples are left out; fewer than 3
    usable models give NaN (no estimate: not a spread of zero)."""
    correct = np.asarray(correct, dtype=bool)
    unseen = np.asarray(unseen, dtype=bool)
    if correct.shape != unseen.shape or correct.ndim != 2:
        raise ValueError(f"correct {correct.shape} and unseen {unseen.shape} must be the same (models, examples)")
    big_n = correct.shape[1]
    n = unseen.sum(axis=1)
    usable = n >= min_examples
    if usable.sum() < 3:
        return float("nan")
    n = n[usable]
    acc = (correct & unseen).sum(axis=1)[usable] / n
    sampling = np.mean(acc * (1 - acc) / n * (1 - n / big_n))
    return float(np.sqrt(max(0.0, np.var(acc, ddof=1) - sampling)))
