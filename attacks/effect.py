"""Did unlearning change anything? The forget set's move from the original to the audited model.

A model that forgot nothing (a no-op, or the original passed off as unlearned) can pass a
membership attack where the signal is weak: the attack cannot prove leakage, but nothing
moved either. This check needs no attack. Per example, the drop in logit-scaled
confidence from the original to the audited model, ``phi_original - phi_audited``; the
forget examples must drop more than examples exact unlearning leaves in place (test
examples, which neither model trained on) by about what exact unlearning makes them
drop. The shadows give that expectation: for each example, its mean phi in shadows
trained on it (before unlearning) minus its mean phi in models that never saw it (OUT
shadows; for a class, each shadow's twin retrained without it), and the same for the
examples compared against (about zero: test examples for a random forget set, the
retained classes' test examples for a class).

The score is the share of that expected excess drop the audited model achieved,
``observed / expected``: 1 is what exact unlearning achieves, 0 a no-op. Its interval is Fieller's,
from the two excesses' means, variances and covariance (each a difference of means over
the same forget and test examples, so the covariance is per example and analytic: no
resampling, no seed). Fieller's set answers, at every candidate ratio ``r``, whether
``observed - r * expected`` is within ``z`` standard errors of 0; that difference always
has a finite standard error, and the gate's decision (missing share above the threshold)
is exactly this test at ``r = 1 - threshold`` (``excess_over_share``). It is exact for
jointly normal means of known variance (here estimated; ``z``, not ``t``, as for the other
intervals). Why not the bootstrap of the ratio it replaces: where every resampled expected
excess is positive, percentiles of resampled ratios invert a bootstrap test of the same
difference and agree with Fieller's to within the examples' skew (docs/audit.md has both
on real models); but where the expected excess is small against its noise, some resamples
put it near 0 or below, their ratios run to either infinity, and the percentiles mix them
into a finite interval that tests nothing. Fieller's set is then unbounded (the line
outside an interval, or the whole line), and that is reported as no claim, never as a huge
finite interval. A wide finite interval is honest: a model that moved every example by
thousands of spreads (an ascent that wrecked it) loses the forget set's excess over the
test set in example-to-example noise, and the width is then the observed excess's own.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

from attacks.metrics import Interval


@dataclass(frozen=True)
class EffectReport:
    """How far the forget set moved, against how far exact unlearning moves it."""

    observed: Interval
    """Mean confidence drop of forget examples minus that of test examples (audited model)."""
    expected: Interval
    """The same excess drop under exact unlearning, from the shadows."""
    achieved: Interval
    """observed / expected with Fieller's interval; all NaN when the expected excess is not shown positive."""
    n_forget: int
    n_test: int
    covariance: tuple[float, float, float]
    """Variance of ``observed``, its covariance with ``expected``, variance of ``expected``."""


@dataclass(frozen=True)
class ExactDrops:
    """Per example, what exact unlearning does to ``phi``, from a shadow bank."""

    trained: np.ndarray
    """Expected drop of an example the original trained on (a forget example)."""
    unseen: np.ndarray
    """Expected drop of an example the original never saw (zero without twins)."""
    spread: np.ndarray
    """Seed-to-seed spread of the example's phi, pooled within the two states."""


def exact_unlearning_drops(
    phi_before: np.ndarray, trained: np.ndarray, phi_twins: np.ndarray | None = None
) -> ExactDrops:
    """What exact unlearning does to each example, from shadows before unlearning.

    ``phi_before`` (shadows x examples) and ``trained`` (where a shadow trained on the
    example). Random forgetting: a trained-on example drops to where shadows that never saw
    it sit, ``mean(trained) - mean(unseen)``; an unseen one does not move. Class forgetting
    (``phi_twins``, each shadow's twin retrained without the class): the drop from each
    shadow to its own twin, averaged where the example was trained on, or unseen.
    """
    before = np.asarray(phi_before, dtype=np.float64)
    trained = np.asarray(trained, dtype=bool)
    # A shadow that cannot score an example (NaN phi) is left out of that example's means
    # and spread, not allowed to turn them NaN.
    seen = np.isfinite(before)
    with np.errstate(all="ignore"):
        mu_trained = _mean_where(before, trained & seen)
        mu_unseen = _mean_where(before, ~trained & seen)
        ss = (np.where(trained & seen, before - mu_trained, 0) ** 2
              + np.where(~trained & seen, before - mu_unseen, 0) ** 2)  # fmt: skip
        spread = np.maximum(np.sqrt(ss.sum(0) / np.maximum(seen.sum(0) - 2, 1)), 1e-6)
        if phi_twins is None:
            return ExactDrops(mu_trained - mu_unseen, np.zeros(before.shape[1]), spread)
        change = before - np.asarray(phi_twins, dtype=np.float64)
        moved = np.isfinite(change)
        to_twin_trained = _mean_where(change, trained & moved)
        to_twin_unseen = _mean_where(change, ~trained & moved)
    return ExactDrops(to_twin_trained, to_twin_unseen, spread)


def _mean_where(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Column means over the rows ``mask`` selects (NaN for a column it selects none of)."""
    return np.where(mask, values, 0).sum(0) / mask.sum(0)


def unlearning_effect(
    drop_forget: np.ndarray,
    drop_test: np.ndarray,
    expected_forget: np.ndarray,
    expected_test: np.ndarray,
    *,
    level: float = 0.95,
) -> EffectReport:
    """Share of the exact-unlearning excess drop achieved, with Fieller's interval.

    ``drop_*``: per example, phi of the original minus phi of the audited model;
    ``expected_*``: per example, the drop exact unlearning produces (from shadows). Examples
    with a non-finite value in either are left out. The two excesses are differences of
    means over the same examples (forget minus test), so their variances and covariance are
    the per-example sample (co)variances over each set's size, summed over the two sets.
    """
    f = np.c_[np.asarray(drop_forget, float), np.asarray(expected_forget, float)]
    t = np.c_[np.asarray(drop_test, float), np.asarray(expected_test, float)]
    f, t = f[np.isfinite(f).all(axis=1)], t[np.isfinite(t).all(axis=1)]
    if len(f) < 2 or len(t) < 2:
        raise ValueError("the unlearning effect needs at least two scorable forget and two test examples")
    obs, exp = float(f[:, 0].mean() - t[:, 0].mean()), float(f[:, 1].mean() - t[:, 1].mean())
    # The forget and test examples are independent samples: the covariance matrix of the two
    # mean differences is the sum of each set's covariance of its means.
    cov = np.cov(f, rowvar=False) / len(f) + np.cov(t, rowvar=False) / len(t)
    v_obs, v_cov, v_exp = float(cov[0, 0]), float(cov[0, 1]), float(cov[1, 1])
    z = float(norm.ppf(0.5 + level / 2))
    observed = Interval(obs, obs - z * v_obs**0.5, obs + z * v_obs**0.5, level)
    expected = Interval(exp, exp - z * v_exp**0.5, exp + z * v_exp**0.5, level)
    if expected.low > 0:
        achieved = fieller_interval(obs, exp, v_obs, v_cov, v_exp, level)
    else:  # exact unlearning's drop not told from zero: no share of it can be claimed
        achieved = Interval(float("nan"), float("nan"), float("nan"), level)
    return EffectReport(observed, expected, achieved, len(f), len(t), (v_obs, v_cov, v_exp))


def fieller_interval(
    numerator: float, denominator: float, var_num: float, cov: float, var_den: float, level: float = 0.95
) -> Interval:
    """Fieller's interval for the ratio of two (jointly normal) means.

    The set of ``r`` for which ``numerator - r * denominator`` (mean 0 at the true ratio) is
    within ``z`` standard errors of 0: ``(n - r d)^2 <= z^2 (v_n - 2 r c + r^2 v_d)``, a
    quadratic ``a r^2 - 2 b r + k <= 0`` with ``a = d^2 - z^2 v_d``, ``b = n d - z^2 c``,
    ``k = n^2 - z^2 v_n``. When ``a > 0`` (the denominator is significantly non-zero) the set
    is the interval between the roots ``(b -+ sqrt(b^2 - a k)) / a``; it holds ``n / d``, so
    the roots are real. Otherwise it is unbounded (the line outside an interval, or the
    whole line): both ends are NaN and the value stays the point ratio.
    """
    z2 = float(norm.ppf(0.5 + level / 2)) ** 2
    a = denominator**2 - z2 * var_den
    ratio = numerator / denominator if denominator else float("nan")
    if not a > 0:
        return Interval(float(ratio), float("nan"), float("nan"), level)
    b = numerator * denominator - z2 * cov
    # b^2 - a k, written so that it does not cancel: z^2 (the quadratic form of (d, -n) in
    # the covariance, minus z^2 times its determinant); >= 0 whenever a > 0, up to rounding.
    half = z2 * (denominator**2 * var_num - 2 * numerator * denominator * cov + numerator**2 * var_den
                 - z2 * (var_num * var_den - cov**2))  # fmt: skip
    root = max(half, 0.0) ** 0.5
    return Interval(float(ratio), float((b - root) / a), float((b + root) / a), level)


def excess_over_share(report: EffectReport, share: float) -> Interval:
    """``observed - share * expected`` with its interval: what the gate on the missing share tests.

    "Missing share above ``1 - share``" is "this difference below 0" (the expected excess
    being positive). Its standard error is always finite, and the Fieller interval excludes
    ``share`` exactly when this interval excludes 0 (same variances, same ``z``), so a verdict
    read off the Fieller interval is this test's verdict.
    """
    v_obs, cov, v_exp = report.covariance
    value = report.observed.value - share * report.expected.value
    se = max(v_obs - 2 * share * cov + share**2 * v_exp, 0.0) ** 0.5
    z = float(norm.ppf(0.5 + report.observed.level / 2))
    return Interval(float(value), float(value - z * se), float(value + z * se), report.observed.level)
