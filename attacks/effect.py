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

The score is the share of that expected excess drop the audited model achieved, with a
bootstrap interval that resamples forget and test examples (the observed and expected
drops of a resampled example travel together). 1 is what exact unlearning achieves; 0 is a
no-op. When the recipe does not memorise (the expected excess's interval reaches 0), no
claim is possible.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from attacks.metrics import Interval


@dataclass(frozen=True)
class EffectReport:
    """How far the forget set moved, against how far exact unlearning moves it."""

    observed: Interval
    """Mean confidence drop of forget examples minus that of test examples (audited model)."""
    expected: Interval
    """The same excess drop under exact unlearning, from the shadows."""
    achieved: Interval
    """observed / expected; NaN when the expected excess is not shown to be positive."""
    n_forget: int
    n_test: int


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
    n_bootstrap: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> EffectReport:
    """Share of the exact-unlearning excess drop achieved, with a stratified bootstrap interval.

    ``drop_*``: per example, phi of the original minus phi of the audited model;
    ``expected_*``: per example, the drop exact unlearning produces (from shadows). Examples
    with a non-finite value in either are left out.
    """
    f = np.c_[np.asarray(drop_forget, float), np.asarray(expected_forget, float)]
    t = np.c_[np.asarray(drop_test, float), np.asarray(expected_test, float)]
    f, t = f[np.isfinite(f).all(axis=1)], t[np.isfinite(t).all(axis=1)]
    if len(f) < 2 or len(t) < 2:
        raise ValueError("the unlearning effect needs at least two scorable forget and two test examples")
    rng = np.random.default_rng(seed)
    fi = rng.integers(0, len(f), (n_bootstrap, len(f)))
    ti = rng.integers(0, len(t), (n_bootstrap, len(t)))
    obs_b = f[fi, 0].mean(axis=1) - t[ti, 0].mean(axis=1)
    exp_b = f[fi, 1].mean(axis=1) - t[ti, 1].mean(axis=1)
    obs, exp = f[:, 0].mean() - t[:, 0].mean(), f[:, 1].mean() - t[:, 1].mean()
    alpha = (1 - level) / 2

    def interval(value: float, samples: np.ndarray) -> Interval:
        lo, hi = np.quantile(samples, [alpha, 1 - alpha])
        return Interval(float(value), float(lo), float(hi), level)

    expected = interval(exp, exp_b)
    if expected.low <= 0:
        achieved = Interval(float("nan"), float("nan"), float("nan"), level)
    else:
        achieved = interval(obs / exp, obs_b / exp_b)
    return EffectReport(interval(obs, obs_b), expected, achieved, len(f), len(t))
