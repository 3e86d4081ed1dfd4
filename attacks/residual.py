"""Residual memorisation: the share of what training put into the forget set that the audited
model still shows, on a scale that means the same on every dataset: 0 is what exact
unlearning leaves, 1 is what training on the examples gives (a model that forgot nothing).

Per example j the shadows give its memorisation gap in logit-scaled confidence phi,
``d_j = in_j - out_j``: the mean over shadows that trained on it minus the mean over those
that did not, both read before unlearning (models trained on as many examples as the
original). And they give where exact unlearning leaves it, ``exact_j``: the mean over the
shadows that never saw it, read after their own unlearning (as the audited model was).
Examples are memorised unequally (a typical example's phi barely moves when it is trained
on), so each is weighted by its own gap: the share is the least-squares slope of the
forget set's residuals on its gaps,

    R = [ mean_F d_j (t_j - exact_j)  -  mean_T d_j (t_j - exact_j) ] / mean_F d_j^2,

where ``t_j`` is the audited model's phi and the test examples T, which it never trained
on, take out a shift the whole model shows against the shadows: a model trained on more
examples than the exact unlearner (the original: all of them; a retrain kept 943 of 1,347
on digits-30) is more confident on unseen examples too (+0.38 on digits-30, half the
forget set's gap), and that is not memorisation of the forget set. Every
phi is first divided by its example's seed-to-seed spread (pooled within the trained and
untrained shadows): logit-scaled confidences of confident examples swing by tens from
model to model, and unscaled they would dominate the sums with noise (on the digits
sample the interval of an exact retrain narrowed from [-1.73, 0.51] to [-0.83, 0.46]).

Cross-fitting. A gap and a centre estimated from the same shadows share their noise: the
numerator's product picks up their covariance and the denominator's square adds the gap's
variance, both of which shrink only as the bank grows (a finite-bank bias). Here each
example's gap comes from one half of the shadows and its centres from the other, then the
halves swap; with independent halves every product's expectation is the product of
expectations, so R is centred on 0 under exact unlearning and on 1 for a model that
forgot nothing, whatever the bank's size. The point estimate averages several random
splits.

Interval: a two-level bootstrap. Each draw resamples the shadows (with replacement, within
a fresh random split into halves) and the forget and test examples (separately); the
percentile interval covers both the examples' and the bank's share of the uncertainty.
When the recipe does not memorise (the denominator's interval reaches 0) no share is
defined: the report says so rather than dividing by noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from attacks.metrics import Interval

# Random splits of the bank averaged for the point estimate, and within each bootstrap draw
# (a draw with one split would add the split's own noise, which the estimate averages away).
POINT_SPLITS = 16
BOOTSTRAP_SPLITS = 8
# Degrees of freedom of the bank's pooled spread in each example's (attacks/residual.py
# _pooled_spread): an example's own spread counts fully only once it rests on many more.
PRIOR_DOF = 16
# Bootstrap draws computed at once (bounds the memory: draws x splits x examples float64).
DRAWS_PER_BLOCK = 32


@dataclass(frozen=True)
class ResidualReport:
    """The forget set's residual memorisation share, and what it rests on."""

    share: Interval
    """0: exact unlearning; 1: nothing forgotten (NaN when the recipe memorises nothing)."""
    memorisation: Interval
    """The denominator: the forget set's mean squared gap ``d_j^2`` (cross-fitted), in units
    of each example's spread squared."""
    n_forget: int
    n_test: int
    n_shadows: int
    sd: float = float("nan")
    """The share's bootstrap spread (half its central 68% range, a standard deviation robust to
    wild draws): the gate's bounds at any error and its power figures are read from it."""


def residual_share(
    phi_before: np.ndarray,
    phi_after: np.ndarray,
    trained: np.ndarray,
    target_phi: np.ndarray,
    forget: np.ndarray,
    test: np.ndarray,
    *,
    n_bootstrap: int = 500,
    level: float = 0.95,
    seed: int = 0,
) -> ResidualReport:
    """The residual memorisation share of the ``forget`` columns against the ``test`` ones.

    ``phi_before`` and ``phi_after`` (shadows x examples): each shadow's phi before and
    after its own unlearning; ``trained`` (bool, same shape): whether it trained on the
    example. The gap is read before unlearning, between trained and untrained shadows (the
    memorisation training put in, at the original's training-set size); the centre an
    exact unlearner sits at, after unlearning, on the untrained ones. ``target_phi``: the
    audited model's phi per example. NaN phi is no observation. Needs at least 4 shadows.
    """
    cols = np.r_[np.asarray(forget, dtype=np.int64), np.asarray(test, dtype=np.int64)]
    n_f, k = len(forget), np.asarray(trained).shape[0]
    if k < 4:
        raise ValueError(f"the residual share needs at least 4 shadows (two per half), got {k}")
    if n_f < 2 or len(test) < 2:
        raise ValueError("the residual share needs at least two forget and two test examples")
    trained = np.asarray(trained, dtype=bool)[:, cols]
    before = np.asarray(phi_before, dtype=np.float64)[:, cols]
    after = np.asarray(phi_after, dtype=np.float64)[:, cols]
    t = np.asarray(target_phi, dtype=np.float64)[cols]
    masks = {"in": trained & np.isfinite(before), "out": ~trained & np.isfinite(before),
             "exact": ~trained & np.isfinite(after)}  # fmt: skip
    # Each example in units of its own seed-to-seed spread (pooled within the two states):
    # an example whose confidence swings from model to model says less, and logit-scaled
    # confidences of confident examples swing by tens.
    spread = _pooled_spread(np.where(masks["in"], before, np.nan), np.where(masks["out"], before, np.nan))
    before, after, t = before / spread, after / spread, t / spread
    values = {"in": before, "out": before, "exact": after}
    sums = {name: np.where(m, values[name], 0.0) for name, m in masks.items()}
    obs = {name: m.astype(np.float64) for name, m in masks.items()}
    rng = np.random.default_rng(seed)

    def centre(name: str, w: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return w @ sums[name] / (w @ obs[name])

    def estimate(counts: np.ndarray, rows_f: np.ndarray, rows_t: np.ndarray, splits: int) -> tuple[np.ndarray, ...]:
        """Numerator and denominator per draw, averaged over ``splits`` random splits of
        the bank into halves (each a->b and b->a). ``counts``: (draws, shadows) how often
        each shadow is in the draw (a shadow drawn twice stays in one half); ``rows_*``:
        (draws, m) example indices into the forget and test columns."""
        b = counts.shape[0]
        half_a = np.argsort(rng.random((b, splits, k)), axis=2) < k // 2  # (draws, splits, shadows)
        wa = (counts[:, None, :] * half_a).reshape(b * splits, k)
        wb = (counts[:, None, :] * ~half_a).reshape(b * splits, k)
        f_idx = np.repeat(rows_f, splits, axis=0)
        t_idx = np.repeat(rows_t, splits, axis=0)
        # Each half's three centres once; the halves then swap roles.
        halves = [{name: centre(name, w) for name in sums} for w in (wa, wb)]
        num = den = 0.0
        for gap_half, centre_half in ((halves[0], halves[1]), (halves[1], halves[0])):
            gap = gap_half["in"] - gap_half["out"]
            resid = gap * (t - centre_half["exact"])
            memorised = gap * (centre_half["in"] - centre_half["out"])
            f_resid = np.take_along_axis(resid[:, :n_f], f_idx, axis=1)
            t_resid = np.take_along_axis(resid[:, n_f:], t_idx, axis=1)
            num = num + _nanmean(f_resid) - _nanmean(t_resid)
            den = den + _nanmean(np.take_along_axis(memorised[:, :n_f], f_idx, axis=1))
        return _nanmean(num.reshape(b, splits)) / 2, _nanmean(den.reshape(b, splits)) / 2

    # Point estimate: every example once, every shadow once, over several random splits.
    num, den = estimate(np.ones((1, k)), np.arange(n_f)[None, :], np.arange(len(test))[None, :], POINT_SPLITS)
    num_hat, den_hat = float(num[0]), float(den[0])

    nums, dens = [], []
    for start in range(0, n_bootstrap, DRAWS_PER_BLOCK):
        b = min(DRAWS_PER_BLOCK, n_bootstrap - start)
        counts = np.zeros((b, k))
        np.add.at(counts, (np.arange(b)[:, None], rng.integers(0, k, (b, k))), 1.0)
        rows_f = rng.integers(0, n_f, (b, n_f))
        rows_t = rng.integers(0, len(test), (b, len(test)))
        n_b, d_b = estimate(counts, rows_f, rows_t, BOOTSTRAP_SPLITS)
        nums.append(n_b)
        dens.append(d_b)
    nums, dens = np.concatenate(nums), np.concatenate(dens)
    alpha = (1 - level) / 2

    def interval(value: float, samples: np.ndarray) -> Interval:
        samples = samples[np.isfinite(samples)]
        if not np.isfinite(value) or len(samples) < 0.9 * n_bootstrap:
            return Interval(float("nan"), float("nan"), float("nan"), level)
        lo, hi = np.quantile(samples, [alpha, 1 - alpha])
        return Interval(float(value), float(lo), float(hi), level)

    memorisation = interval(den_hat, dens)
    if not memorisation.low > 0:
        share, sd = Interval(float("nan"), float("nan"), float("nan"), level), float("nan")
    else:
        ratios = nums / dens
        share = interval(num_hat / den_hat, ratios)
        # Half the central 68% range, not the standard deviation: a draw whose denominator
        # comes out near 0 gives a wild ratio that would dominate a sum of squares.
        finite = ratios[np.isfinite(ratios)]
        sd = float(np.diff(np.quantile(finite, [0.15865, 0.84135]))[0] / 2) if len(finite) else np.nan
    return ResidualReport(share, memorisation, n_f, len(test), k, sd)


def _pooled_spread(inside: np.ndarray, outside: np.ndarray) -> np.ndarray:
    """Per example, the standard deviation within the trained and the untrained shadows,
    pooled, and shrunk toward the bank's pooled spread by ``PRIOR_DOF`` degrees of freedom:
    with a few shadows per state an example's own spread is noisy, and dividing by a spread
    that came out small would hand that example most of the weight (8 shadows: a no-op read
    0.90 instead of 1 without the shrinkage)."""
    ss = np.zeros(inside.shape[1])
    dof = np.zeros(inside.shape[1])
    for values in (inside, outside):
        finite = np.isfinite(values)
        count = finite.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(finite, values, 0.0).sum(axis=0) / count
        ss += (np.where(finite, values - mean, 0.0) ** 2).sum(axis=0)
        dof += np.maximum(count - 1, 0)
    pooled = ss.sum() / dof.sum() if dof.sum() > 0 else 1.0
    return np.maximum(np.sqrt((ss + PRIOR_DOF * pooled) / (dof + PRIOR_DOF)), 1e-3)


def _nanmean(values: np.ndarray) -> np.ndarray:
    """Row means over the finite entries (NaN for a row without one), without warnings."""
    finite = np.isfinite(values)
    count = finite.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(finite, values, 0.0).sum(axis=1) / count
