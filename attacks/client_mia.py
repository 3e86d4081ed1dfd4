"""The two membership attacks the PUF paper reports on a forgotten client's data, from one
model's outputs: each learns to tell the model's training examples (the remaining
clients' data) from unseen ones (the test split), then says which of the client's
examples look like members.

- SVC: the MIA-efficacy classifier of population.py (an RBF SVM on true-class confidence).
- Loss threshold: members are examples whose loss is at or below the threshold that best
  separates retain from test losses (Yeom et al.; balanced accuracy picks the threshold).

Both are reported as the member rate on the client's examples: the original model, which
trained on them, shows a high rate; a model that forgot them should show the rate its
retrained federation shows. Single numbers, and weak attacks next to U-LiRA; reported
because the paper does, never gated.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from attacks.population import mia_efficacy, threshold_scores


@dataclass(frozen=True)
class ClientMIA:
    svc: float
    """Share of the client's examples the SVC attack calls members."""
    loss: float
    """Share the loss-threshold attack calls members."""


def best_threshold(member_scores: np.ndarray, other_scores: np.ndarray) -> float:
    """The score threshold (members at or above) with the best balanced accuracy."""
    candidates = np.unique(np.concatenate([member_scores, other_scores]))
    members, others = np.sort(member_scores), np.sort(other_scores)
    tpr = 1 - np.searchsorted(members, candidates, side="left") / len(members)
    fpr = 1 - np.searchsorted(others, candidates, side="left") / len(others)
    return float(candidates[np.argmax(tpr - fpr)])


def client_mia(logits: np.ndarray, labels: np.ndarray, client: np.ndarray, retain: np.ndarray, test: np.ndarray,
               seed: int = 0) -> ClientMIA:  # fmt: skip
    """Member rates on the ``client`` rows of one model's ``logits`` (n, C), the attacks
    fitted on ``retain`` rows (members) against ``test`` rows (non-members)."""
    scores = threshold_scores(logits, labels)
    confidence, loss = scores["confidence"], scores["loss"]
    svc = 1 - mia_efficacy(confidence[retain], confidence[test], confidence[client], seed=seed)
    threshold = best_threshold(loss[retain], loss[test])
    return ClientMIA(svc=svc, loss=float((loss[client] >= threshold).mean()))
