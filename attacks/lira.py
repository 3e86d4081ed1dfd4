"""LiRA and U-LiRA: per-example Gaussian likelihood-ratio attacks on shadow-model signals.

Inputs are a signal matrix ``phi`` (shadow models x examples) and a state matrix of the
same shape saying, per shadow and example, whether the shadow never trained on it
(``OUT``), trained on it and kept it (``IN``), or trained on it and then unlearned it
(``UNLEARNED``). For each example a Gaussian is fitted to each state's observations;
a target model's signal is scored by how much more likely it is under one than the other.

- LiRA online (Carlini et al. 2022): ``log N(phi; mu_in, s) - log N(phi; mu_out, s)``.
- LiRA offline: only OUT shadows; ``log Pr[Z < phi]`` for ``Z ~ N(mu_out, s_out)``: the
  larger the target's confidence relative to models that never saw the example, the
  more likely a member.
- U-LiRA (Hayes et al. 2024): UNLEARNED against OUT, scored on the unlearned model. For
  class forgetting the negatives are twins retrained without the class (``ulira_class``).

Centres are medians (as in the LiRA code). The two Gaussians of an example share one
spread by default (``spread="shared"``): the log ratio is then linear in the target's
phi, so a target more confident than every shadow (trained on more data, or by a
different seed) is scored further along the same direction instead of overshooting the
narrower Gaussian and scoring low, as the quadratic ratio of two spreads does. Measured
in tests/attacks/test_lira.py and docs/audit.md. ``spread="separate"`` keeps LiRA's
original two spreads.

Spreads are per example, or one pooled within-example standard deviation ("global"),
which the LiRA paper finds better with few shadows. ``variance="auto"`` decides by the
observations an example has in each state (not by the shadow count): per example when
the median example observed in both states (every such column of the bank, not only the
scored ones) has at least ``PER_EXAMPLE_MIN_OBS`` in each. An example
without an observation in a state gets a NaN score (it cannot be scored, not "0").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.stats import norm

from attacks.metrics import SeparationReport, separation
from attacks.signals import IN, OUT, UNLEARNED

Variance = Literal["auto", "per-example", "global"]
VARIANCES = ("auto", "global", "per-example")
Spread = Literal["shared", "separate"]
# Per-example spreads need this many observations per state (LiRA's paper: 64 shadows,
# half IN and half OUT); below it a pooled spread is less noisy.
PER_EXAMPLE_MIN_OBS = 32
# Keeps a Gaussian proper when all observations of an example coincide.
MIN_SIGMA = 1e-6


@dataclass(frozen=True)
class GaussianFit:
    """Per-example centre and spread of one state's observations."""

    mu: np.ndarray
    sigma: np.ndarray
    count: np.ndarray
    """Observations per example (shadows in the state that could score it)."""


@dataclass(frozen=True)
class _Moments:
    median: np.ndarray
    mean: np.ndarray
    ss: np.ndarray
    """Sum of squared deviations from the mean, per example (0 where unobserved)."""
    count: np.ndarray


def _moments(phi: np.ndarray, states: np.ndarray, state: int) -> _Moments:
    phi = np.asarray(phi, dtype=np.float64)
    mask = np.asarray(states) == state
    if phi.shape != mask.shape:
        raise ValueError(f"phi {phi.shape} and states {mask.shape} differ in shape")
    # A shadow that cannot score an example (NaN phi) is no observation of it: counted, it
    # would add a degree of freedom and shrink the spread.
    mask &= ~np.isnan(phi)
    obs = np.where(mask, phi, np.nan)
    count = mask.sum(axis=0)
    with np.errstate(all="ignore"), _quiet_nan_warnings():
        median = np.nanmedian(obs, axis=0)
        mean = np.nanmean(obs, axis=0)
        ss = np.nansum((obs - mean) ** 2, axis=0)
    return _Moments(median, mean, np.where(count > 0, ss, 0.0), count)


def resolve_variance(variance: Variance, *counts: np.ndarray) -> Literal["per-example", "global"]:
    """``auto`` -> per-example when the median example observed in every state has at
    least ``PER_EXAMPLE_MIN_OBS`` observations in each; otherwise global."""
    if variance not in VARIANCES:
        raise ValueError(f"variance must be auto, global or per-example, got {variance!r}")
    if variance != "auto":
        return variance
    least = np.min(np.stack([np.asarray(c) for c in counts]), axis=0)
    observed = least[least > 0]
    return "per-example" if len(observed) and np.median(observed) >= PER_EXAMPLE_MIN_OBS else "global"


def _spread(moments: list[_Moments], variance: Literal["per-example", "global"]) -> np.ndarray:
    """Pooled within-state standard deviation of the given states, per example or global."""
    ss = sum(m.ss for m in moments)
    dof = sum(np.maximum(m.count - 1, 0) for m in moments)
    observed = np.all([m.count > 0 for m in moments], axis=0)
    with np.errstate(all="ignore"):
        if variance == "global":
            total = int(dof[observed].sum())
            pooled = np.sqrt(ss[observed].sum() / total) if total > 0 else np.nan
            sigma = np.where(observed, pooled, np.nan)
        else:
            sigma = np.where(observed & (dof >= 1), np.sqrt(ss / np.maximum(dof, 1)), np.nan)
    return np.maximum(sigma, MIN_SIGMA)


def fit_state(phi: np.ndarray, states: np.ndarray, state: int, variance: Variance) -> GaussianFit:
    """Median and spread of ``phi`` where ``states == state``, per example (column)."""
    m = _moments(phi, states, state)
    mode = resolve_variance(variance, m.count)
    return GaussianFit(mu=m.median, sigma=_spread([m], mode), count=m.count)


def fit_pair(
    positive: tuple[np.ndarray, np.ndarray, int],
    negative: tuple[np.ndarray, np.ndarray, int],
    *,
    variance: Variance = "auto",
    spread: Spread = "shared",
) -> tuple[GaussianFit, GaussianFit]:
    """The two Gaussians of a likelihood ratio, each from ``(phi, states, state)``.

    With a shared spread both get the within-state standard deviation pooled over the two
    states (per example, or over every example observed in both)."""
    if spread not in ("shared", "separate"):
        raise ValueError(f"spread must be shared or separate, got {spread!r}")
    p, n = _moments(*positive), _moments(*negative)
    mode = resolve_variance(variance, p.count, n.count)
    if spread == "shared":
        sigma = _spread([p, n], mode)
        sigma_p = sigma_n = sigma
    else:
        sigma_p, sigma_n = _spread([p], mode), _spread([n], mode)
    return GaussianFit(p.median, sigma_p, p.count), GaussianFit(n.median, sigma_n, n.count)


class _quiet_nan_warnings:
    """Columns without observations are expected; their NaN is the answer, not a warning."""

    def __enter__(self):
        import warnings

        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc):
        return self._ctx.__exit__(*exc)


def likelihood_ratio(target_phi: np.ndarray, positive: GaussianFit, negative: GaussianFit) -> np.ndarray:
    """``log N(phi; positive) - log N(phi; negative)`` per example (NaN where unfit)."""
    x = np.asarray(target_phi, dtype=np.float64)
    return norm.logpdf(x, positive.mu, positive.sigma) - norm.logpdf(x, negative.mu, negative.sigma)


def lira_online(phi, states, target_phi, *, variance: Variance = "auto", spread: Spread = "shared") -> np.ndarray:
    """LiRA membership score (higher = more likely trained on) for each example."""
    pos, neg = fit_pair((phi, states, IN), (phi, states, OUT), variance=variance, spread=spread)
    return likelihood_ratio(target_phi, pos, neg)


def lira_offline(phi, states, target_phi, *, variance: Variance = "auto") -> np.ndarray:
    """Offline LiRA: ``log Pr[Z < phi]`` with Z from the OUT Gaussian (higher = member)."""
    out = fit_state(phi, states, OUT, variance)
    return norm.logcdf(np.asarray(target_phi, dtype=np.float64), out.mu, out.sigma)


def ulira(phi, states, target_phi, *, variance: Variance = "auto", spread: Spread = "shared") -> np.ndarray:
    """U-LiRA score (higher = looks unlearned rather than never seen) for each example."""
    pos, neg = fit_pair((phi, states, UNLEARNED), (phi, states, OUT), variance=variance, spread=spread)
    return likelihood_ratio(target_phi, pos, neg)


def ulira_class(
    phi_forgotten,
    states,
    phi_reference,
    target_phi,
    in_class,
    *,
    state: int = UNLEARNED,
    variance: Variance = "auto",
    spread: Spread = "shared",
) -> np.ndarray:
    """U-LiRA for class forgetting: trained-then-forgotten against retrained-without-the-class.

    Only the examples of the forgotten class (``in_class``, a boolean mask over columns)
    are fitted and scored; others get NaN. The positive Gaussian of an example comes from
    the shadows where it has ``state`` (UNLEARNED; IN when auditing a model that declares
    no method) in ``phi_forgotten``; the negative one from every reference twin retrained
    without the class (``phi_reference``, same shape), none of which saw the example or
    its class. Restricting both fits to the class matters for the pooled ("global")
    spread: the twins' other columns mix trained and unseen examples.
    """
    in_class = np.asarray(in_class, dtype=bool)
    reference = np.asarray(phi_reference, dtype=np.float64)
    never = np.int8(-1)  # a state no observation has: these columns stay unfit (NaN)
    ref_states = np.broadcast_to(np.where(in_class[None, :], np.int8(OUT), never), reference.shape)
    own_states = np.where(in_class[None, :], np.asarray(states), never)
    pos, neg = fit_pair(
        (phi_forgotten, own_states, state), (reference, ref_states, OUT), variance=variance, spread=spread
    )
    return likelihood_ratio(target_phi, pos, neg)


def leave_one_out(
    phi: np.ndarray,
    states: np.ndarray,
    *,
    targets: int = 4,
    variance: Variance = "auto",
    spread: Spread = "shared",
    n_bootstrap: int = 200,
    seed: int = 0,
) -> list[SeparationReport]:
    """How strong LiRA is on this recipe: each of the first ``targets`` shadows in turn is
    the target, scored by the others; members are its IN examples, non-members its OUT.

    ``auto`` variance is resolved once on the whole bank, so every turn (and an audit on
    the same bank) uses the same spread."""
    phi = np.asarray(phi, dtype=np.float64)
    states = np.asarray(states)
    if phi.shape[0] < 3:
        raise ValueError("leave-one-out evaluation needs at least 3 shadows")
    mode = resolve_variance(variance, (states == IN).sum(axis=0), (states == OUT).sum(axis=0))
    reports = []
    for m in range(min(targets, phi.shape[0])):
        rest = np.arange(phi.shape[0]) != m
        scorable = np.isin(states[m], (IN, OUT))
        scores = lira_online(phi[rest], states[rest], phi[m], variance=mode, spread=spread)[scorable]
        labels = (states[m] == IN)[scorable]
        reports.append(separation(scores, labels, n_bootstrap=n_bootstrap, seed=seed + m))
    return reports
