"""Population-level membership attacks: the weaker baselines reported beside LiRA.

For now the MIA-efficacy classifier of the SalUn / Sparse-unlearning code, which the
Average Gap metric uses: an RBF SVM learns "member" from the true-class confidence of
retain examples (members) against test examples (non-members), and is asked about the
forget set. A model that forgot well makes forget examples look like non-members.
"""

from __future__ import annotations

import numpy as np
from sklearn.svm import SVC


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
