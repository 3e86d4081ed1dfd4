"""Ascent Fails to Forget, logistic regression (docs/reproductions.md).

    python scripts/repro_ascent.py --out ascent.json     # seconds on 2 cores

The seed paper's instructive example: ridge-regularised logistic regression where the
forget set lives in one block of coordinates and the retained set in the other, coupled
by a cross-dimensional correlation ε. From the original minimiser w_D, gradient ascent
(GA: ascent on the forget loss) and gradient descent-ascent (GDA: each epoch one ascent
step on the forget set, then one descent step on the retained set with the ridge term)
are run, and the distance to the retrained minimiser w_R is tracked against
``‖w_D − w_R‖``. The claim: with correlated blocks GDA ends further from w_R than the
original was (unlearning is detrimental), and not with independent blocks.

Setup (our choice where the abstract is silent): the ``blocks`` dataset (``--data
blocks``): d = 2 × 10 coordinates; 400 retained examples with features in block B and
100 forget examples with features in block A, each block standard normal, the other
block ε times a fixed random rotation of the example's own block plus noise of scale
0.1·ε (ε = 0: the blocks are independent, the other block is zero); labels from a
logistic model on both blocks; ridge λ = 0.01 with
mean losses (the retrained model minimises the retained mean loss + λ/2‖w‖²); full-batch
steps of size 0.5 for 200 epochs.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit

from audit_cli.data import load_dataset

D_BLOCK, N_RETAIN, N_FORGET, LAMBDA, LR, EPOCHS = 10, 400, 100, 0.01, 0.5, 200


def make_data(eps: float, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The training examples of ``--data blocks``: block A (the forget set, ids 0..99), block B."""
    data = load_dataset("blocks", {"correlation": str(eps), "seed": str(seed), "dim": str(D_BLOCK),
                                   "n_forget_block": str(N_FORGET), "n_retain_block": str(N_RETAIN)})  # fmt: skip
    x, y = data.x.astype(np.float64), data.y.astype(float)
    return x[:N_FORGET], y[:N_FORGET], x[N_FORGET : N_FORGET + N_RETAIN], y[N_FORGET : N_FORGET + N_RETAIN]


def loss_grad(w: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean logistic loss and its gradient."""
    z = x @ w
    loss = float(np.mean(np.logaddexp(0, z) - y * z))
    return loss, x.T @ (expit(z) - y) / len(y)


def ridge_fit(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    def f(w):
        loss, grad = loss_grad(w, x, y)
        return loss + 0.5 * LAMBDA * w @ w, grad + LAMBDA * w

    return minimize(f, np.zeros(x.shape[1]), jac=True, method="L-BFGS-B", options={"gtol": 1e-12}).x


def trajectories(eps: float, seed: int) -> dict:
    x_f, y_f, x_r, y_r = make_data(eps, seed)
    w_d = ridge_fit(np.r_[x_f, x_r], np.r_[y_f, y_r])
    w_r = ridge_fit(x_r, y_r)
    start = float(np.linalg.norm(w_d - w_r))
    out = {"eps": eps, "seed": seed, "original_distance": start}
    # The forget loss a retrained model has: the target of the oracle-stopped variant.
    target = loss_grad(w_r, x_f, y_f)[0]
    out["forget_loss"] = {"original": loss_grad(w_d, x_f, y_f)[0], "retrained": target}
    for name in ("ga", "gda", "gda_target"):
        w, path = w_d.copy(), []
        for _ in range(EPOCHS):
            loss_f, grad_f = loss_grad(w, x_f, y_f)
            if name != "gda_target" or loss_f < target:
                w = w + LR * grad_f  # ascent on the forget set (gda_target: only below the target)
            if name != "ga":
                w = w - LR * (loss_grad(w, x_r, y_r)[1] + LAMBDA * w)  # descent on the retained set
            path.append(float(np.linalg.norm(w - w_r)))
        out[f"{name}_final_ratio"] = path[-1] / start
        out[f"{name}_min_ratio"] = min(path) / start
        out[f"{name}_path"] = [p / start for p in path[:: EPOCHS // 20]]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eps", type=float, nargs="*", default=[0.0, 0.25, 0.5, 1.0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    rows = [trajectories(eps, seed) for eps in args.eps for seed in range(args.seeds)]
    for eps in args.eps:
        mine = [r for r in rows if r["eps"] == eps]
        summary = {k: round(float(np.median([r[k] for r in mine])), 3) for k in
                   ("ga_final_ratio", "ga_min_ratio", "gda_final_ratio", "gda_min_ratio", "gda_target_final_ratio",
                    "gda_target_min_ratio")}  # fmt: skip
        detrimental = {name: sum(r[f"{name}_final_ratio"] > 1 for r in mine) for name in ("ga", "gda", "gda_target")}
        print(json.dumps({"eps": eps, "seeds": len(mine), "detrimental": detrimental} | summary))
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
