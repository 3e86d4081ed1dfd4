"""MIA-NN: membership inference through the neighbor classes, for class forgetting.

A model retrained without class ``c`` sends class-``c`` inputs to the classes most like
``c``. An unlearning method that only pushes the class's probability down leaves another
trace: the way the forgotten examples spread over the remaining classes differs from the
way never-seen examples of ``c`` do, and from the way a retrained model spreads them.
MIA-NN (the TRW paper's attack; reconstructed, docs/methods.md) reads exactly that spread.

- Neighbor classes: top-``k`` classes by mean probability on class-``c`` inputs under
  reference models retrained without ``c``; without references, by cosine similarity of
  class representations (rows of the last linear layer).
- Features of one input: log-probabilities on the neighbor classes, renormalized over the
  retained classes (the forgotten class's own probability is dropped, so the attack reads
  where the mass goes, not how much of it is left).
- Sample level: a cross-validated classifier separates class-``c`` examples the model was
  trained on (then unlearned) from class-``c`` examples it never saw, using the audited
  model's features. Out-of-fold scores give the AUC; out-of-fold decisions the accuracy.
  A retrained model sits at chance. Chance is not 0.5 but what the same attack reaches
  on retrained twins (models that never saw the class) on the same examples, and the
  score is ``2 (AUC - chance)``; ``excess_over_null`` gives its interval from the twins'
  spread (a prediction interval), since the audited AUC's bootstrap misses the
  classifier's refit variance.
- Model level: a classifier on per-model summaries (mean and spread over the class's
  inputs of each feature and of the forgotten class's own log-probability) separates
  shadows trained then unlearned from shadows retrained without ``c``, validated by
  cross-validation over shadow pairs; applied to the audited model it gives the
  probability that the model was unlearned rather than retrained.

numpy, scipy and scikit-learn only: banks built anywhere can be scored here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import log_softmax, softmax
from scipy.stats import t as student_t
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from attacks.gap import wilson_interval
from attacks.metrics import Interval, SeparationReport, separation

DEFAULT_NEIGHBORS = 3


def _retained(num_classes: int, forget_class: int) -> np.ndarray:
    if not 0 <= forget_class < num_classes:
        raise ValueError(f"forget class {forget_class} is not one of {num_classes} classes")
    return np.array([j for j in range(num_classes) if j != forget_class])


def neighbor_classes_from_reference(
    reference_logits: np.ndarray, forget_class: int, k: int = DEFAULT_NEIGHBORS
) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` classes where retrained references send class-``c`` inputs.

    ``reference_logits``: (models, inputs of class c, classes). Returns the neighbor
    classes (most probable first) and the mean probability each retained class gets.
    """
    logits = np.asarray(reference_logits, dtype=np.float64)
    if logits.ndim == 2:
        logits = logits[None]
    share = softmax(logits, axis=-1).mean(axis=(0, 1))
    share[forget_class] = -np.inf
    order = np.argsort(-share, kind="stable")
    retained = order[: logits.shape[-1] - 1]
    share[forget_class] = 0.0
    return retained[:k], share


def neighbor_classes_from_representations(
    weights: np.ndarray, forget_class: int, k: int = DEFAULT_NEIGHBORS
) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` classes by cosine similarity of class representations (rows of ``weights``).

    Returns the neighbor classes and each class's cosine similarity to ``c`` (``c``: -inf).
    """
    w = np.asarray(weights, dtype=np.float64)
    w = w / np.maximum(np.linalg.norm(w, axis=1, keepdims=True), 1e-12)
    cos = w @ w[forget_class]
    cos[forget_class] = -np.inf
    return np.argsort(-cos, kind="stable")[:k], cos


def neighbor_features(logits: np.ndarray, forget_class: int, neighbors: np.ndarray) -> np.ndarray:
    """Log-probabilities on ``neighbors``, renormalized over the retained classes: (..., k)."""
    logits = np.asarray(logits, dtype=np.float64)
    retained = _retained(logits.shape[-1], forget_class)
    log_p = np.full(logits.shape, -np.inf)
    log_p[..., retained] = log_softmax(logits[..., retained], axis=-1)
    return log_p[..., np.asarray(neighbors)]


def forget_class_log_prob(logits: np.ndarray, forget_class: int, floor: float = -30.0) -> np.ndarray:
    """log p(c | x), floored so a filter's hard zero and a merely tiny probability read alike: (...,)."""
    return np.maximum(log_softmax(np.asarray(logits, dtype=np.float64), axis=-1)[..., forget_class], floor)


def model_features(logits: np.ndarray, forget_class: int, neighbors: np.ndarray) -> np.ndarray:
    """Per-model summary for the model-level attack, from (models, inputs, classes) logits:
    mean and spread of the neighbor features and of log p(c) over the class's inputs."""
    feats = neighbor_features(logits, forget_class, neighbors)
    both = np.concatenate([feats, forget_class_log_prob(logits, forget_class)[..., None]], axis=-1)
    return model_summary(both)


def model_summary(features: np.ndarray) -> np.ndarray:
    """Per-model summary of (models, inputs, k) features: mean and std over inputs, (models, 2k)."""
    f = np.asarray(features, dtype=np.float64)
    return np.concatenate([f.mean(axis=-2), f.std(axis=-2)], axis=-1)


def _classifier(kind: str, seed: int):
    if kind == "logistic":
        model = LogisticRegression(C=1.0, class_weight="balanced", max_iter=2000)
    elif kind == "svm":
        model = SVC(C=3.0, kernel="rbf", gamma="scale", class_weight="balanced", random_state=seed)
    else:
        raise ValueError(f"classifier must be logistic or svm, got {kind!r}")
    return make_pipeline(StandardScaler(), model)


def _score(model, x: np.ndarray) -> np.ndarray:
    # Higher = more likely the positive class, for either classifier.
    return model.decision_function(x)


@dataclass(frozen=True)
class SampleLevelResult:
    """Sample-level MIA-NN on one model: trained-then-unlearned vs never-seen class-c inputs."""

    separation: SeparationReport
    """AUC (and balanced accuracy, TPR at low FPR) of the out-of-fold scores."""
    accuracy: Interval
    """Accuracy of the out-of-fold decisions (balanced class weights), Wilson interval."""
    scores: np.ndarray
    """Out-of-fold score per input (higher = looks like a forgotten training example)."""
    folds: int


def sample_level(
    features: np.ndarray,
    is_member: np.ndarray,
    *,
    folds: int = 5,
    classifier: str = "logistic",
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> SampleLevelResult:
    """Cross-validated separation of members (forgotten training examples) from non-members."""
    x = np.asarray(features, dtype=np.float64)
    y = np.asarray(is_member, dtype=bool)
    if x.ndim != 2 or len(x) != len(y):
        raise ValueError(f"features {x.shape} and labels {y.shape} do not match")
    if not np.isfinite(x).all():
        raise ValueError("MIA-NN features are not finite")
    folds = min(folds, int(y.sum()), int((~y).sum()))
    if folds < 2:
        raise ValueError("MIA-NN needs at least two members and two non-members")
    scores = np.empty(len(y))
    decisions = np.empty(len(y), dtype=bool)
    for train, held in StratifiedKFold(folds, shuffle=True, random_state=seed).split(x, y):
        model = _classifier(classifier, seed).fit(x[train], y[train])
        scores[held] = _score(model, x[held])
        decisions[held] = model.predict(x[held]).astype(bool)
    correct = int((decisions == y).sum())
    low, high = wilson_interval(correct, len(y))
    return SampleLevelResult(
        separation=separation(scores, y, n_bootstrap=n_bootstrap, seed=seed),
        accuracy=Interval(correct / len(y), low, high),
        scores=scores,
        folds=folds,
    )


def excess_over_null(auc: float, null_aucs: np.ndarray, *, level: float = 0.95) -> Interval:
    """``2 (auc - chance)`` where chance is the mean of ``null_aucs``, with a prediction interval.

    ``null_aucs``: the same cross-validated attack, on the same examples, against retrained
    twins (models that never trained on the class). Each is a draw of the statistic under
    the null "this model was retrained", so their spread already holds what moves it on
    these examples: the training seed and the attack classifier's refit. What the draw of
    the examples does (forgotten and never-seen examples of the class differing by chance)
    is shared by the twins and the audited model, so it moves the chance level with them
    and cancels in the difference. The audited AUC's own bootstrap, shifted by a chance
    level taken as exact, holds only that shared part and misses the refit (a nominal
    2.5% tail measured 5.7-7.0%). Under the null the audited AUC is one more draw,
    exchangeable with the twins, so the interval is the Student-t prediction interval for
    it, doubled: half-width
    ``2 * t_{m-1, 1-alpha/2} * sd(null, ddof=1) * sqrt(1 + 1/m)`` for ``m`` twins (exact
    for normal draws; the ``1/m`` term is the uncertainty of the chance level itself).

    Nothing is clipped: the caller clips at 0 for display (the attack is one-sided). A low
    end above 0 says the audited model sits outside what retrained models reach.
    """
    null = np.asarray(null_aucs, dtype=np.float64).ravel()
    if len(null) < 3:
        raise ValueError(f"excess_over_null needs at least 3 null AUCs for a spread, got {len(null)}")
    if not (np.isfinite(null).all() and np.isfinite(auc)):
        raise ValueError("the AUC and the null AUCs must be finite")
    m = len(null)
    value = 2 * (float(auc) - float(null.mean()))
    half = 2 * student_t.ppf(0.5 + level / 2, m - 1) * float(null.std(ddof=1)) * np.sqrt(1 + 1 / m)
    return Interval(value, value - float(half), value + float(half), level)


@dataclass(frozen=True)
class ModelLevelResult:
    """Model-level MIA-NN: was the audited model unlearned with the method, or retrained?"""

    p_unlearned: float
    """The classifier's probability that the audited model was unlearned rather than retrained."""
    accuracy: Interval
    """Cross-validated accuracy of the classifier on held-out shadow pairs (Wilson interval)."""
    n_unlearned: int
    n_retrained: int


def model_level(
    unlearned: np.ndarray,
    retrained: np.ndarray,
    target: np.ndarray,
    *,
    folds: int = 5,
    seed: int = 0,
) -> ModelLevelResult:
    """Fit on per-model summaries of shadows (``unlearned``, ``retrained``: (models, f)) and
    score the audited model's summary ``target`` (f,).

    Row i of ``unlearned`` and of ``retrained`` may come from the same training half; the
    cross-validation holds out both rows of a pair together so the pairing cannot leak.
    """
    u = np.asarray(unlearned, dtype=np.float64)
    r = np.asarray(retrained, dtype=np.float64)
    t = np.asarray(target, dtype=np.float64).reshape(1, -1)
    if u.ndim != 2 or r.ndim != 2 or len({u.shape[1], r.shape[1], t.shape[1]}) != 1:
        raise ValueError(f"summaries differ in shape: {u.shape}, {r.shape}, {t.shape}")
    if len(u) < 2 or len(r) < 2:
        raise ValueError("the model-level attack needs at least two shadows of each kind")
    if not (np.isfinite(u).all() and np.isfinite(r).all() and np.isfinite(t).all()):
        raise ValueError("MIA-NN model summaries are not finite")
    x = np.r_[u, r]
    y = np.r_[np.ones(len(u), bool), np.zeros(len(r), bool)]
    groups = np.r_[np.arange(len(u)), np.arange(len(r))]
    folds = min(folds, len(np.unique(groups)))
    correct = 0
    for train, held in GroupKFold(folds).split(x, y, groups):
        if len(np.unique(y[train])) < 2:
            continue
        model = _classifier("logistic", seed).fit(x[train], y[train])
        correct += int((model.predict(x[held]).astype(bool) == y[held]).sum())
    low, high = wilson_interval(correct, len(y))
    model = _classifier("logistic", seed).fit(x, y)
    p = float(model.predict_proba(t)[0, list(model.classes_).index(True)])
    return ModelLevelResult(
        p_unlearned=p,
        accuracy=Interval(correct / len(y), low, high),
        n_unlearned=len(u),
        n_retrained=len(r),
    )


__all__ = [
    "DEFAULT_NEIGHBORS",
    "ModelLevelResult",
    "SampleLevelResult",
    "excess_over_null",
    "forget_class_log_prob",
    "model_features",
    "model_level",
    "model_summary",
    "neighbor_classes_from_reference",
    "neighbor_classes_from_representations",
    "neighbor_features",
    "sample_level",
]
