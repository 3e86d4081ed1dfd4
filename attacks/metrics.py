"""How well a score separates positives (members, forgotten examples) from negatives.

Every attack reports the same numbers: ROC AUC, balanced accuracy (the best threshold's
``1 - (FPR + FNR) / 2``), and TPR at 1% and 0.1% FPR (LiRA's low-FPR view), each with a
stratified bootstrap confidence interval (positives and negatives resampled separately).

Honesty rules: a TPR at an FPR is a number only when at least ``MIN_FALSE_POSITIVES``
(10) negatives score above the threshold, i.e. ``n_negatives * fpr >= 10``. Below that the
threshold is set by the one or few highest negative scores, and the TPR swings with
whichever negatives happened to be drawn: from 100 negatives, "TPR at 1% FPR" is the TPR
above the single largest negative score, an extreme order statistic that the bootstrap
cannot even resample honestly (a resample repeats or drops that one negative). Such a
TPR is reported as inconclusive, with the number of negatives it would need, rather than
as a number. Scores that are NaN (examples an attack could not score) are dropped and
counted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata

# Negatives that must lie above the threshold before a TPR at that FPR is reported: with
# fewer, the threshold is one extreme order statistic of the negatives and the TPR at it
# is mostly noise (see the module docstring).
MIN_FALSE_POSITIVES = 10


@dataclass(frozen=True)
class Interval:
    """A point estimate with a two-sided confidence interval."""

    value: float
    low: float
    high: float
    level: float = 0.95

    def contains(self, x: float) -> bool:
        return self.low <= x <= self.high


@dataclass(frozen=True)
class TprAtFpr:
    """TPR at a fixed FPR; None (with the reason) when fewer than ``MIN_FALSE_POSITIVES``
    negatives would lie above the threshold."""

    fpr: float
    tpr: Interval | None
    reason: str = ""


@dataclass(frozen=True)
class SeparationReport:
    """How a score separates positives from negatives, with intervals."""

    auc: Interval
    balanced_accuracy: Interval
    tpr_at_fpr: tuple[TprAtFpr, ...]
    n_positive: int
    n_negative: int
    n_dropped: int
    """Examples whose score was NaN (not scorable) and were left out."""


def auc_score(scores: np.ndarray, labels: np.ndarray) -> float:
    """ROC AUC via the Mann-Whitney statistic (ties count one half)."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=bool)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("AUC needs both positives and negatives")
    ranks = rankdata(scores)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def roc_curve(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(fpr, tpr) at every distinct threshold, from (0, 0) to (1, 1); higher score = positive."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=bool)
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], labels[order]
    distinct = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # last index of each tied run
    tp = np.cumsum(y)[distinct]
    fp = np.cumsum(~y)[distinct]
    tpr = np.r_[0.0, tp / max(1, labels.sum())]
    fpr = np.r_[0.0, fp / max(1, (~labels).sum())]
    return fpr, tpr


def balanced_accuracy(scores: np.ndarray, labels: np.ndarray) -> float:
    """max over thresholds of 1 - (FPR + (1 - TPR)) / 2."""
    fpr, tpr = roc_curve(scores, labels)
    return float(np.max(1 - (fpr + (1 - tpr)) / 2))


def tpr_at(scores: np.ndarray, labels: np.ndarray, fpr_target: float) -> float:
    """Largest TPR among thresholds whose FPR is at most ``fpr_target``."""
    fpr, tpr = roc_curve(scores, labels)
    return float(tpr[fpr <= fpr_target].max())


# Bootstrap resamples scored at once (bounds the memory: rows x examples float64).
_ROWS_PER_BLOCK = 100


def _resample_stats(drawn: np.ndarray, n_pos: int, fprs: tuple[float, ...]) -> dict:
    """AUC, balanced accuracy and TPR at each FPR of every row of ``drawn`` (rows x examples,
    the first ``n_pos`` columns positive): what auc_score and roc_curve give one row."""
    n_neg = drawn.shape[1] - n_pos
    ranks = rankdata(drawn, axis=1)
    out: dict = {"auc": (ranks[:, :n_pos].sum(axis=1) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)}
    order = np.argsort(-drawn, axis=1, kind="stable")
    ordered = np.take_along_axis(drawn, order, axis=1)
    positive = order < n_pos
    tpr = np.cumsum(positive, axis=1) / n_pos
    fpr = np.cumsum(~positive, axis=1) / n_neg
    # Only the last position of each tied run is a threshold (roc_curve's distinct scores).
    threshold = np.ones_like(positive)
    threshold[:, :-1] = ordered[:, :-1] != ordered[:, 1:]
    # (0, 0), the curve's start, is a threshold of every row: balanced accuracy 1/2, TPR 0.
    out["bacc"] = np.maximum(0.5, np.where(threshold, 1 - (fpr + (1 - tpr)) / 2, -np.inf).max(axis=1))
    for f in fprs:
        out[f] = np.maximum(0.0, np.where(threshold & (fpr <= f), tpr, -np.inf).max(axis=1))
    return out


def separation(
    scores: np.ndarray,
    labels: np.ndarray,
    *,
    fprs: tuple[float, ...] = (0.01, 0.001),
    n_bootstrap: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> SeparationReport:
    """AUC, balanced accuracy and TPR at low FPR, each with a stratified bootstrap interval.

    A TPR at FPR ``f`` is reported only when ``n_negative * f >= MIN_FALSE_POSITIVES``.
    """
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=bool)
    if scores.shape != labels.shape:
        raise ValueError(f"{scores.shape} scores but {labels.shape} labels")
    keep = ~np.isnan(scores)
    dropped = int((~keep).sum())
    scores, labels = scores[keep], labels[keep]
    pos, neg = scores[labels], scores[~labels]
    if len(pos) == 0 or len(neg) == 0:
        raise ValueError("separation needs at least one positive and one negative score")
    rng = np.random.default_rng(seed)
    # The resamples are drawn one by one (the same draws as a loop over them), then scored
    # in blocks of rows at once.
    picks = [(rng.integers(0, len(pos), len(pos)), rng.integers(0, len(neg), len(neg))) for _ in range(n_bootstrap)]
    stats = {"auc": [], "bacc": []} | {f: [] for f in fprs}
    for start in range(0, n_bootstrap, _ROWS_PER_BLOCK):
        block = picks[start : start + _ROWS_PER_BLOCK]
        drawn = np.concatenate([np.stack([pos[i] for i, _ in block]), np.stack([neg[j] for _, j in block])], axis=1)
        for name, values in _resample_stats(drawn, len(pos), fprs).items():
            stats[name].extend(values.tolist())
    alpha = (1 - level) / 2

    def interval(value: float, samples: list[float]) -> Interval:
        lo, hi = np.quantile(samples, [alpha, 1 - alpha]) if samples else (value, value)
        return Interval(value, float(lo), float(hi), level)

    tprs = []
    for f in fprs:
        # The 1e-9: a product n * f that is exactly 10 on paper must not fall a hair short in floats.
        if len(neg) * f < MIN_FALSE_POSITIVES - 1e-9:
            needed = int(np.ceil(MIN_FALSE_POSITIVES / f - 1e-9))
            tprs.append(
                TprAtFpr(
                    f,
                    None,
                    f"needs at least {needed} negatives ({MIN_FALSE_POSITIVES} false positives at {f:.1%} FPR), "
                    f"have {len(neg)}",
                )
            )
        else:
            tprs.append(TprAtFpr(f, interval(tpr_at(scores, labels, f), stats[f])))
    return SeparationReport(
        auc=interval(auc_score(scores, labels), stats["auc"]),
        balanced_accuracy=interval(balanced_accuracy(scores, labels), stats["bacc"]),
        tpr_at_fpr=tuple(tprs),
        n_positive=len(pos),
        n_negative=len(neg),
        n_dropped=dropped,
    )
