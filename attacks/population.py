"""Population-level membership attacks: the weaker baselines reported beside LiRA.

Threshold attacks score each example from one model's output alone, the same threshold
for every example: loss (Yeom et al.), true-class confidence, prediction entropy, and
modified entropy (Song and Mittal), each oriented so that higher means "member".

The MIA-efficacy classifier of the SalUn / Sparse-unlearning code, which the Average
Gap uses: an RBF SVM learns "member" from the true-class confidence of retain examples
(members) against test examples (non-members), and is asked about the forget set. A
model that forgot well makes forget examples look like non-members.
"""

from __future__ import annotations

import numpy as np
from scipy.special import log_softmax
from sklearn.svm import SVC

# Keeps log(1 - p) finite where p rounds to 1.
EPS = 1e-12


def threshold_scores(logits: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
    """Per-example membership scores (higher = more likely member) of the threshold attacks."""
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    log_p = log_softmax(logits, axis=-1)
    p = np.exp(log_p)
    rows = np.arange(len(labels))
    log_py, py = log_p[rows, labels], p[rows, labels]
    entropy = -(p * log_p).sum(-1)
    # Modified entropy: -(1 - p_y) log p_y - sum_{j != y} p_j log(1 - p_j).
    others = p * np.log(np.clip(1 - p, EPS, None))
    others[rows, labels] = 0.0
    modified = -(1 - py) * log_py - others.sum(-1)
    return {"loss": log_py, "confidence": py, "entropy": -entropy, "modified-entropy": -modified}


def mia_efficacy(
    retain_confidence: np.ndarray,
    test_confidence: np.ndarray,
    forget_confidence: np.ndarray,
    *,
    seed: int = 0,
) -> float:
    """Fraction of forget examples the SVC calls non-members (higher = better forgotten).

    As in the reference code: ``SVC(C=3, kernel="rbf", gamma="auto")`` on true-class
    confidence, trained on as many retain examples (label 1, drawn at random) as there
    are test examples (label 0).
    """
    retain_confidence = np.asarray(retain_confidence, dtype=np.float64).ravel()
    test_confidence = np.asarray(test_confidence, dtype=np.float64).ravel()
    forget_confidence = np.asarray(forget_confidence, dtype=np.float64).ravel()
    if len(test_confidence) == 0 or len(retain_confidence) == 0 or len(forget_confidence) == 0:
        raise ValueError("MIA-efficacy needs retain, test and forget examples")
    rng = np.random.default_rng(seed)
    n = min(len(retain_confidence), len(test_confidence))
    members = rng.choice(retain_confidence, n, replace=False)
    non_members = rng.choice(test_confidence, n, replace=False)
    x = np.concatenate([members, non_members])[:, None]
    y = np.concatenate([np.ones(n), np.zeros(n)])
    clf = SVC(C=3, kernel="rbf", gamma="auto").fit(x, y)
    return float((clf.predict(forget_confidence[:, None]) == 0).mean())
