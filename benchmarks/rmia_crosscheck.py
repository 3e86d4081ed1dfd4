"""RMIA cross-checked against Privacy Meter's own code, on one set of real models.

    python benchmarks/rmia_crosscheck.py --privacy-meter PATH/TO/ml_privacy_meter/attacks.py

Privacy Meter's attack code is not part of this project: point ``--privacy-meter`` at the
``attacks.py`` of a checkout of privacytrustlab/ml_privacy_meter (its ``run_rmia`` is what
its audits run). The script trains ``--models`` digits MLPs in Privacy Meter's paired design
(models 2i and 2i+1 train on complementary halves of the training split, so every training
example is a member of exactly half the models; the test split is the population, a
member of none), then attacks each model in turn with both implementations, offline, with
every other pair as references (Privacy Meter excludes the target's pair):

- scores: ours against theirs, example by example;
- AUC over the training examples (members of the target against the rest).

Where the two differ, and why: Privacy Meter averages a population point's reference
probability over the larger half of its OUT signals (its reference selection keeps the
top k of 2k columns, and every population column is OUT), ours over all of them; the
targets' ratios are the same, so their ranking, and the AUC, differ only through ties in
the population's empirical distribution. Results go to
``benchmarks/results/rmia_crosscheck.json``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import time
from pathlib import Path

import numpy as np
from scipy.special import softmax
from sklearn.metrics import roc_auc_score

from attacks.rmia import OFFLINE_A, rmia
from attacks.signals import IN, OUT, logit_scaled_confidence
from audit_cli.data import load_dataset
from audit_cli.models.recipe import Recipe
from audit_cli.training.loop import predict_logits, train_models

RESULTS = Path(__file__).parent / "results" / "rmia_crosscheck.json"


def privacy_meter(path: Path):
    """Privacy Meter's attacks module, loaded from the file given (never vendored here)."""
    spec = importlib.util.spec_from_file_location("privacy_meter_attacks", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"{path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def paired_models(data: str, models: int, seed: int):
    """(dataset, member matrix over the training split (models x train), logits (models x n x C))."""
    ds = load_dataset(data)
    rng = np.random.default_rng(seed)
    train = np.sort(ds.train_ids)
    member = np.zeros((models, len(train)), bool)
    for pair in range(models // 2):
        half = rng.random(len(train)) < 0.5
        member[2 * pair], member[2 * pair + 1] = half, ~half
    recipe = Recipe(arch="mlp", arch_args={"hidden": (256,)}, epochs=60)
    ens = train_models(ds, recipe, [train[m] for m in member], [seed * 1000 + k for k in range(models)])
    return ds, train, member, predict_logits(ens, ds.x).numpy().astype(np.float64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--privacy-meter", type=Path, required=True, help="ml_privacy_meter's attacks.py")
    parser.add_argument("--models", type=int, default=8, help="an even number, at least 4")
    parser.add_argument("--data", default="digits")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.models < 4 or args.models % 2:
        raise SystemExit("--models must be an even number, at least 4")
    pm = privacy_meter(args.privacy_meter)
    start = time.perf_counter()
    ds, train, member, logits = paired_models(args.data, args.models, args.seed)
    t_rows, p_rows = ds.rows(train), ds.rows(np.sort(ds.test_ids))
    y = ds.y
    prob = softmax(logits, axis=-1)[:, np.arange(len(y)), y]  # the true label's probability, models x n
    phi = logit_scaled_confidence(logits, y)
    k = args.models // 2 - 1  # reference pairs: every pair but the target's
    rows = []
    for m in range(args.models):
        theirs = pm.run_rmia(m, prob[:, t_rows].T, prob[:, p_rows].T, member.T, k, OFFLINE_A).ravel()
        refs = [j for j in range(args.models) if j not in (m, m ^ 1)]
        cols = np.r_[t_rows, p_rows]
        states = np.c_[np.where(member[refs], IN, OUT), np.full((len(refs), len(p_rows)), OUT)].astype(np.int8)
        ours = rmia(phi[refs][:, cols], states, phi[m][cols], np.arange(len(t_rows), len(cols)), a=OFFLINE_A)
        ours = ours[: len(t_rows)]
        # The same with Privacy Meter's reference selection for the population (the k largest
        # of its 2k OUT signals; the others left out of the mean): the scores should then agree.
        keep = np.argsort(-prob[refs][:, p_rows], axis=0)[:k]
        selected = np.full((len(refs), len(p_rows)), -1, np.int8)
        np.put_along_axis(selected, keep, OUT, axis=0)
        matched = rmia(phi[refs][:, cols], np.c_[states[:, : len(t_rows)], selected], phi[m][cols],
                       np.arange(len(t_rows), len(cols)), a=OFFLINE_A)[: len(t_rows)]  # fmt: skip
        auc_ours, auc_theirs = roc_auc_score(member[m], ours), roc_auc_score(member[m], theirs)
        rows.append({"target": m, "auc_ours": auc_ours, "auc_privacy_meter": auc_theirs,
                     "auc_difference": abs(auc_ours - auc_theirs),
                     "max_score_difference": float(np.max(np.abs(ours - theirs))),
                     "max_score_difference_same_selection": float(np.max(np.abs(matched - theirs)))})  # fmt: skip
        print(f"target {m}: AUC ours {auc_ours:.4f}, Privacy Meter {auc_theirs:.4f} "
              f"(|difference| {abs(auc_ours - auc_theirs):.4f}); scores differ by at most "
              f"{rows[-1]['max_score_difference']:.4f}, with Privacy Meter's population references "
              f"{rows[-1]['max_score_difference_same_selection']:.2g}")  # fmt: skip
    summary = {"data": args.data, "models": args.models, "reference_models": k, "offline_a": OFFLINE_A,
               "seed": args.seed, "largest_auc_difference": max(r["auc_difference"] for r in rows),
               "largest_score_difference_same_selection": max(r["max_score_difference_same_selection"]
                                                              for r in rows),
               "seconds": time.perf_counter() - start, "targets": rows}  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=1) + "\n")
    print(f"largest AUC difference over {args.models} targets: {summary['largest_auc_difference']:.4f}")


if __name__ == "__main__":
    main()
