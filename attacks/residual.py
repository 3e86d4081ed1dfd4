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

An exact method (retrain): a shadow that trained on an example and then unlearned it
exactly sits where one that never saw it does, so both count toward ``exact_j``. In a
bank at the default rates three in four shadows of an example are trained on it, two of
them unlearn it: the centre rests on about three times as many shadows (measured on
digits-30 at 16 shadows: the share's draw-to-draw spread for an exact retrain 0.093 ->
0.078, its bootstrap spread 0.122 -> 0.091).

Interval: a bootstrap over the examples, the bank held fixed. Each example's residual and
memorisation are first averaged over the splits; a draw resamples the forget and the test
examples (separately). The bank's noise is in it: it enters through each example's own
gap and centres, which vary from example to example. What one shadow does to every
example alike (a model more confident everywhere) is taken out by the test term.
Resampling the shadows too, as an earlier version did, counted the bank's noise twice: a
resampled bank holds about 63% distinct shadows, and an estimator whose noise falls with
the bank's size reads as if from a bank a third smaller (measured on digits-30, 16 draws
of a fresh bank and exact retrain: at 16 shadows a bootstrap spread of 0.174 against a
draw-to-draw spread of 0.093; over the examples alone 0.122).
When the recipe does not memorise (the denominator's interval reaches 0) no share is
defined: the report says so rather than dividing by noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from attacks.metrics import Interval
from attacks.signals import OUT, UNLEARNED

# Random splits of the bank averaged for the estimate (each split's own noise averages away).
POINT_SPLITS = 16
# Degrees of freedom of the bank's pooled spread in each example's (attacks/residual.py
# _pooled_spread): an example's own spread counts fully only once it rests on many more.
PRIOR_DOF = 16


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
    states: np.ndarray,
    target_phi: np.ndarray,
    forget: np.ndarray,
    test: np.ndarray,
    *,
    exact_method: bool = False,
    n_bootstrap: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> ResidualReport:
    """The residual memorisation share of the ``forget`` columns against the ``test`` ones.

    ``phi_before`` and ``phi_after`` (shadows x examples): each shadow's phi before and
    after its own unlearning; ``states`` (same shape): OUT, IN or UNLEARNED (attacks/signals.py;
    a boolean array reads as trained on or not). The gap is read before unlearning, between
    trained and untrained shadows (the memorisation training put in, at the original's
    training-set size); the centre an exact unlearner sits at, after unlearning, on the
    untrained ones, and with ``exact_method`` (the shadows unlearned exactly) on the
    unlearned ones too. ``target_phi``: the audited model's phi per example. NaN phi is no
    observation. Needs at least 4 shadows.
    """
    cols = np.r_[np.asarray(forget, dtype=np.int64), np.asarray(test, dtype=np.int64)]
    states = np.asarray(states)
    n_f, k = len(forget), states.shape[0]
    if k < 4:
        raise ValueError(f"the residual share needs at least 4 shadows (two per half), got {k}")
    if n_f < 2 or len(test) < 2:
        raise ValueError("the residual share needs at least two forget and two test examples")
    states = states[:, cols].astype(np.int8)
    trained = states != OUT
    before = np.asarray(phi_before, dtype=np.float64)[:, cols]
    after = np.asarray(phi_after, dtype=np.float64)[:, cols]
    t = np.asarray(target_phi, dtype=np.float64)[cols]
    exact = (~trained | (states == UNLEARNED)) if exact_method else ~trained
    masks = {"in": trained & np.isfinite(before), "out": ~trained & np.isfinite(before),
             "exact": exact & np.isfinite(after)}  # fmt: skip
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

    # Per example, its residual d_j (t_j - exact_j) and memorisation d_j (in_j - out_j), each
    # over POINT_SPLITS random splits of the bank into halves (a -> b and b -> a).
    half_a = (np.argsort(rng.random((POINT_SPLITS, k)), axis=1) < k // 2).astype(np.float64)
    resid, memorised = [], []
    for wa, wb in ((half_a, 1 - half_a), (1 - half_a, half_a)):
        gap_half, centre_half = {n: centre(n, wa) for n in sums}, {n: centre(n, wb) for n in sums}
        gap = gap_half["in"] - gap_half["out"]
        resid.append(gap * (t - centre_half["exact"]))
        memorised.append(gap * (centre_half["in"] - centre_half["out"]))
    resid, memorised = _nanmean(np.concatenate(resid).T), _nanmean(np.concatenate(memorised).T)
    r_f, r_t, m_f = resid[:n_f], resid[n_f:], memorised[:n_f]
    keep_f = np.isfinite(r_f) & np.isfinite(m_f)
    r_f, m_f, r_t = r_f[keep_f], m_f[keep_f], r_t[np.isfinite(r_t)]
    if len(r_f) < 2 or len(r_t) < 2:
        raise ValueError("the residual share needs at least two forget and two test examples the shadows observe")
    num_hat, den_hat = float(r_f.mean() - r_t.mean()), float(m_f.mean())

    rows_f = rng.integers(0, len(r_f), (n_bootstrap, len(r_f)))
    rows_t = rng.integers(0, len(r_t), (n_bootstrap, len(r_t)))
    nums = r_f[rows_f].mean(axis=1) - r_t[rows_t].mean(axis=1)
    dens = m_f[rows_f].mean(axis=1)
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
        with np.errstate(invalid="ignore", divide="ignore"):
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
