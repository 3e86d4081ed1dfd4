"""RMIA (Zarifzadeh et al., ICML 2024): the robust membership inference attack the peers
lead with, on the same bank signals LiRA reads.

For a target example x and a population point z (an example the target model never
trained on), the likelihood ratio of "x was trained on" against "z was" is

    LR(x, z) = [Pr(x | theta) / Pr(x)] / [Pr(z | theta) / Pr(z)],

where ``Pr(. | theta)`` is the audited model's probability of the true label and ``Pr(.)``
its average over reference models. The score of x is the share of population points it
dominates, ``Pr_z[LR(x, z) >= gamma]``: in [0, 1], higher for a member.

The bank stores each model's logit-scaled confidence ``phi = log(p / (1 - p))``, so
``p = sigmoid(phi)``. References are the shadows:

- online: ``Pr(x)`` is the average of the mean over shadows that trained on x and the mean
  over those that did not (the paper's balanced IN/OUT references, whatever share of the
  bank trained on x);
- offline (OUT shadows only): ``Pr(x) = ((1 + a) * mean_OUT + (1 - a)) / 2``, the paper's
  linear stand-in for the missing IN models, with ``a`` tuned on a paired model (Privacy
  Meter's default 0.3).

Population points are scored against the same references; an example that is itself a
population point is not compared with itself. An example without a reference observation
in a state it needs gets a NaN score (not scorable), as in attacks/lira.py.
"""

from __future__ import annotations

import numpy as np

from attacks.metrics import SeparationReport, separation
from attacks.signals import IN, OUT

# Privacy Meter's defaults: a from its offline grid search on CIFAR-10, gamma 1.
OFFLINE_A = 0.3
GAMMA = 1.0


def probability(phi: np.ndarray) -> np.ndarray:
    """The true label's probability from its logit-scaled confidence (NaN stays NaN)."""
    phi = np.asarray(phi, dtype=np.float64)
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-phi))


def reference_probability(phi: np.ndarray, states: np.ndarray, *, online: bool, a: float = OFFLINE_A) -> np.ndarray:
    """``Pr(x)`` per example from the shadows (shadows x examples): online the mean of the
    IN and OUT means, offline the OUT mean scaled by ``a``; NaN where a state it needs has
    no finite observation."""
    p = probability(phi)
    states = np.asarray(states)

    def mean(state: int) -> np.ndarray:
        seen = (states == state) & np.isfinite(p)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(seen, p, 0.0).sum(axis=0) / seen.sum(axis=0)

    if online:
        return (mean(IN) + mean(OUT)) / 2
    if not 0.0 <= a <= 1.0:
        raise ValueError(f"RMIA's offline a lies in [0, 1], got {a}")
    return ((1 + a) * mean(OUT) + (1 - a)) / 2


def rmia(
    phi: np.ndarray,
    states: np.ndarray,
    target_phi: np.ndarray,
    population: np.ndarray,
    *,
    online: bool = False,
    a: float = OFFLINE_A,
    gamma: float = GAMMA,
) -> np.ndarray:
    """RMIA score of every example (columns of ``phi``): the share of the ``population``
    columns z it dominates, ``LR(x, z) >= gamma``. ``phi``, ``states``: the bank (OUT and
    IN; unlearned shadows read as the caller maps them); ``target_phi``: the audited model's
    phi per example; ``population``: column indices of examples the target never trained on."""
    if gamma <= 0:
        raise ValueError(f"RMIA's gamma must be positive, got {gamma}")
    population = np.asarray(population, dtype=np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = probability(target_phi) / reference_probability(phi, states, online=online, a=a)
    z = ratio[population]
    z = np.sort(z[np.isfinite(z)])
    if len(z) < 2:
        raise ValueError("RMIA needs at least two population points the shadows observe")
    # LR(x, z) >= gamma  <=>  ratio_z <= ratio_x / gamma: count with one sorted pass.
    dominated = np.searchsorted(z, ratio / gamma, side="right").astype(np.float64)
    compared = np.full(len(ratio), float(len(z)))
    # A population point is not compared with itself (LR(x, x) = 1 counts when gamma <= 1).
    own = np.zeros(len(ratio), bool)
    own[population] = True
    own &= np.isfinite(ratio)
    dominated[own] -= float(gamma <= 1.0)
    compared[own] -= 1.0
    return np.where(np.isfinite(ratio), dominated / compared, np.nan)


def leave_one_out(
    phi: np.ndarray,
    states: np.ndarray,
    *,
    targets: int = 4,
    online: bool = False,
    a: float = OFFLINE_A,
    gamma: float = GAMMA,
    n_bootstrap: int = 200,
    seed: int = 0,
) -> list[SeparationReport]:
    """RMIA's strength on this recipe, as attacks.lira.leave_one_out measures LiRA's: each of
    the first ``targets`` shadows in turn is the target, the others its references; members
    are its IN examples, non-members its OUT ones, which are also its population."""
    phi = np.asarray(phi, dtype=np.float64)
    states = np.asarray(states)
    if phi.shape[0] < 3:
        raise ValueError("leave-one-out evaluation needs at least 3 shadows")
    reports = []
    for m in range(min(targets, phi.shape[0])):
        rest = np.arange(phi.shape[0]) != m
        scores = rmia(phi[rest], states[rest], phi[m], np.flatnonzero(states[m] == OUT), online=online, a=a,
                      gamma=gamma)  # fmt: skip
        scorable = np.isin(states[m], (IN, OUT))
        reports.append(separation(scores[scorable], (states[m] == IN)[scorable], n_bootstrap=n_bootstrap,
                                  seed=seed + m))  # fmt: skip
    return reports
