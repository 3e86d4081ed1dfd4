"""LiRA and U-LiRA: per-example Gaussian likelihood-ratio attacks on shadow-model signals.

Inputs are a signal matrix ``phi`` (shadow models x examples) and a state matrix of the
same shape saying, per shadow and example, whether the shadow never trained on it
(``OUT``), trained on it and kept it (``IN``), or trained on it and then unlearned it
(``UNLEARNED``). For each example a Gaussian is fitted to each state's observations;
a target model's signal is scored by how much more likely it is under one than the other.

- LiRA online (Carlini et al. 2022): ``log N(phi; mu_in, s_in) - log N(phi; mu_out, s_out)``.
- LiRA offline: only OUT shadows; ``log Pr[Z < phi]`` for ``Z ~ N(mu_out, s_out)``: the
  larger the target's confidence relative to models that never saw the example, the
  more likely a member.
- U-LiRA (Hayes et al. 2024): UNLEARNED against OUT, scored on the unlearned model. For
  class forgetting the negatives are twins retrained without the class (``ulira_class``).

Centres are medians (as in the LiRA code). Spreads are per example, or one pooled
within-example standard deviation ("global"), which the LiRA paper finds better with
few shadows; ``variance="auto"`` picks global below 64 shadows. An example without
enough observations in a state gets a NaN score (it cannot be scored, not "0").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.stats import norm

from attacks.metrics import SeparationReport, separation

OUT, IN, UNLEARNED = 0, 1, 2
Variance = Literal["auto", "per-example", "global"]
GLOBAL_BELOW_SHADOWS = 64
# Keeps a Gaussian proper when all observations of an example coincide.
MIN_SIGMA = 1e-6


@dataclass(frozen=True)
class GaussianFit:
    """Per-example centre and spread of one state's observations."""

    mu: np.ndarray
    sigma: np.ndarray
    count: np.ndarray
    """Observations per example."""


def fit_state(phi: np.ndarray, states: np.ndarray, state: int, variance: Variance) -> GaussianFit:
    """Median and spread of ``phi`` where ``states == state``, per example (column)."""
    phi = np.asarray(phi, dtype=np.float64)
    mask = np.asarray(states) == state
    if phi.shape != mask.shape:
        raise ValueError(f"phi {phi.shape} and states {mask.shape} differ in shape")
    obs = np.where(mask, phi, np.nan)
    count = mask.sum(axis=0)
    with np.errstate(all="ignore"), _quiet_nan_warnings():
        mu = np.nanmedian(obs, axis=0)
        if _use_global(variance, phi.shape[0]):
            centred = obs - np.nanmean(obs, axis=0)
            dof = max(1, int(count.sum() - (count > 0).sum()))
            pooled = np.sqrt(np.nansum(centred**2) / dof) if count.sum() > 0 else np.nan
            sigma = np.where(count >= 1, pooled, np.nan)
        else:
            sigma = np.where(count >= 2, np.nanstd(obs, axis=0, ddof=1), np.nan)
    return GaussianFit(mu=mu, sigma=np.maximum(sigma, MIN_SIGMA), count=count)


def _use_global(variance: Variance, n_shadows: int) -> bool:
    if variance == "auto":
        return n_shadows < GLOBAL_BELOW_SHADOWS
    if variance not in ("global", "per-example"):
        raise ValueError(f"variance must be auto, global or per-example, got {variance!r}")
    return variance == "global"


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


def lira_online(phi, states, target_phi, *, variance: Variance = "auto") -> np.ndarray:
    """LiRA membership score (higher = more likely trained on) for each example."""
    return likelihood_ratio(target_phi, fit_state(phi, states, IN, variance), fit_state(phi, states, OUT, variance))


def lira_offline(phi, states, target_phi, *, variance: Variance = "auto") -> np.ndarray:
    """Offline LiRA: ``log Pr[Z < phi]`` with Z from the OUT Gaussian (higher = member)."""
    out = fit_state(phi, states, OUT, variance)
    return norm.logcdf(np.asarray(target_phi, dtype=np.float64), out.mu, out.sigma)


def ulira(phi, states, target_phi, *, variance: Variance = "auto") -> np.ndarray:
    """U-LiRA score (higher = looks unlearned rather than never seen) for each example."""
    return likelihood_ratio(
        target_phi, fit_state(phi, states, UNLEARNED, variance), fit_state(phi, states, OUT, variance)
    )


def ulira_class(
    phi_forgotten,
    states,
    phi_reference,
    target_phi,
    in_class,
    *,
    state: int = UNLEARNED,
    variance: Variance = "auto",
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
    ref_states = np.where(in_class[None, :], np.int8(OUT), never)
    negative = fit_state(reference, np.broadcast_to(ref_states, reference.shape), OUT, variance)
    own_states = np.where(in_class[None, :], np.asarray(states), never)
    return likelihood_ratio(target_phi, fit_state(phi_forgotten, own_states, state, variance), negative)


def leave_one_out(
    phi: np.ndarray,
    states: np.ndarray,
    *,
    targets: int = 4,
    variance: Variance = "auto",
    n_bootstrap: int = 200,
    seed: int = 0,
) -> list[SeparationReport]:
    """How strong LiRA is on this recipe: each of the first ``targets`` shadows in turn is
    the target, scored by the others; members are its IN examples, non-members its OUT."""
    phi = np.asarray(phi, dtype=np.float64)
    states = np.asarray(states)
    if phi.shape[0] < 3:
        raise ValueError("leave-one-out evaluation needs at least 3 shadows")
    reports = []
    for m in range(min(targets, phi.shape[0])):
        rest = np.arange(phi.shape[0]) != m
        scorable = np.isin(states[m], (IN, OUT))
        scores = lira_online(phi[rest], states[rest], phi[m], variance=variance)[scorable]
        labels = (states[m] == IN)[scorable]
        reports.append(separation(scores, labels, n_bootstrap=n_bootstrap, seed=seed + m))
    return reports
