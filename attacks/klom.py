"""KLoM: how far a method's unlearned models are from retrained ones, example by example.

From the benchmark of "Ascent Fails to Forget" (and Georgiev et al.'s data-unlearning
bench): for each example, collect its margin under many models unlearned with the method
and under many models retrained without it; bin both sets into the same 20 equal-width
bins over their joint range (margins clipped to [-100, 100]); KL(unlearned || retrained),
the retrained probability floored at 1e-5 where the unlearned one is positive. The score
is the 95th percentile over the examples: a method is as good as its worst-treated ones.

The margin is the datamodels' correct-class margin ``z_y - logsumexp_{j != y} z_j``, the
bank's ``phi``. The shadow bank supplies both sets: for an example, the shadows that
trained on it and unlearned it, and the shadows that never saw it, before any unlearning
(for class forgetting: the twins retrained without the class). With tens of models per
set the histograms are coarse and the KL is biased upwards, and the bias depends on the
sample sizes; so beside the score come a retrained-against-retrained floor (two halves
of the retrained set) and the score recomputed at those same sample sizes, which is the
number to hold against the floor.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from attacks.metrics import Interval

BINS = 20
FLOOR = 1e-5
CLIP = 100.0
# Fewer observations than this in either set: the example is not scored.
MIN_MODELS = 4


def binned_kl(p_samples: np.ndarray, q_samples: np.ndarray, bins: int = BINS, floor: float = FLOOR) -> float:
    """KL(P || Q) between two 1-D sample sets binned on shared equal-width bins."""
    p = np.clip(np.asarray(p_samples, dtype=np.float64), -CLIP, CLIP)
    q = np.clip(np.asarray(q_samples, dtype=np.float64), -CLIP, CLIP)
    lo, hi = min(p.min(), q.min()), max(p.max(), q.max())
    if hi <= lo:
        return 0.0  # every margin identical in both sets
    edges = np.linspace(lo, hi, bins + 1)
    p_hist = np.histogram(p, edges)[0] / len(p)
    q_hist = np.histogram(q, edges)[0] / len(q)
    support = p_hist > 0
    return float(np.sum(p_hist[support] * np.log(p_hist[support] / np.maximum(q_hist[support], floor))))


def klom_per_example(unlearned: np.ndarray, retrained: np.ndarray) -> np.ndarray:
    """Per-example KLoM from (models, n) margin matrices; NaN marks "not in this set".

    Returns (n,) with NaN where either set has fewer than ``MIN_MODELS`` observations.
    """
    u = np.asarray(unlearned, dtype=np.float64)
    r = np.asarray(retrained, dtype=np.float64)
    if u.shape[1] != r.shape[1]:
        raise ValueError(f"{u.shape[1]} and {r.shape[1]} examples")
    out = np.full(u.shape[1], np.nan)
    for i in range(u.shape[1]):
        a, b = u[:, i][~np.isnan(u[:, i])], r[:, i][~np.isnan(r[:, i])]
        if len(a) >= MIN_MODELS and len(b) >= MIN_MODELS:
            out[i] = binned_kl(a, b)
    return out


@dataclass(frozen=True)
class KLoMReport:
    """95th percentile of per-example KLoM, with a bootstrap interval and a noise floor."""

    p95: Interval
    matched: float
    """The score recomputed at the floor's sample sizes: unlearned models (subsampled)
    against one random half of the retrained models."""
    floor: float
    """The other half of the retrained models against that same half: what KLoM reads when
    nothing differs. ``matched`` near ``floor`` means the method is indistinguishable."""
    n_examples: int


def _matched_and_floor(u: np.ndarray, r: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Per example: KL(U' || A) and KL(B || A) with the retrained set split into halves A
    and B and U' a subsample of the unlearned set as large as B (same sample sizes, so
    the binning bias is the same on both sides)."""
    matched = np.full(u.shape[1], np.nan)
    floor = np.full(u.shape[1], np.nan)
    for i in range(u.shape[1]):
        a_all, b_all = u[:, i][~np.isnan(u[:, i])], r[:, i][~np.isnan(r[:, i])]
        order = rng.permutation(len(b_all))
        ref, other = b_all[order[: len(b_all) // 2]], b_all[order[len(b_all) // 2 :]]
        if min(len(ref), len(other), len(a_all)) < MIN_MODELS:
            continue
        sub = rng.choice(a_all, min(len(other), len(a_all)), replace=False)
        matched[i] = binned_kl(sub, ref)
        floor[i] = binned_kl(other[: len(sub)], ref)
    return matched, floor


def klom(
    unlearned: np.ndarray, retrained: np.ndarray, *, n_bootstrap: int = 500, seed: int = 0, level: float = 0.95
) -> KLoMReport:
    """KLoM of a method from (models, n) margins of unlearned and retrained models (NaN = absent)."""
    u = np.asarray(unlearned, dtype=np.float64)
    r = np.asarray(retrained, dtype=np.float64)
    per_example = klom_per_example(u, r)
    scored = per_example[~np.isnan(per_example)]
    if len(scored) == 0:
        raise ValueError(f"no example has {MIN_MODELS} unlearned and {MIN_MODELS} retrained observations")
    rng = np.random.default_rng(seed)
    boots = [np.percentile(rng.choice(scored, len(scored)), 95) for _ in range(n_bootstrap)]
    alpha = (1 - level) / 2
    lo, hi = np.quantile(boots, [alpha, 1 - alpha])
    matched, floor = _matched_and_floor(u, r, rng)

    def p95(values: np.ndarray) -> float:
        return float(np.nanpercentile(values, 95)) if np.isfinite(values).any() else float("nan")

    return KLoMReport(
        Interval(float(np.percentile(scored, 95)), float(lo), float(hi), level), p95(matched), p95(floor), len(scored)
    )


__all__ = ["KLoMReport", "binned_kl", "klom", "klom_per_example"]
