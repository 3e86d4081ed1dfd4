"""Benchmark: unlearning 64 stacked shadow models at once vs one at a time.

    python benchmarks/unlearning.py [--models 64] [--methods finetune,salun,scrub]

The audit's U-LiRA shadows each forget their own set with the audited model's method.
Here 64 digits MLPs, each trained on a random half of the pool, each forget a random 10%
of their own training half. For every method, the stacked run (``unlearn_models`` on
the 64-model ensemble) is timed against 64 calls on one model each, in the same
process, after a warm-up; the ratio is what matters on a noisy machine.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from audit_cli.data import load_dataset
from audit_cli.models.recipe import Recipe
from audit_cli.training.loop import model_seeds, train_models
from audit_cli.unlearn import UnlearnTask, unlearn_models


def main() -> None:
    parser = argparse.ArgumentParser(description="stacked vs one-at-a-time unlearning")
    parser.add_argument("--models", type=int, default=64)
    parser.add_argument("--methods", default="finetune,salun,scrub")
    parser.add_argument("--train-epochs", type=int, default=20)
    args = parser.parse_args()

    digits = load_dataset("digits")
    recipe = Recipe(arch="mlp", arch_args={"hidden": (256,)}, epochs=args.train_epochs)
    rng = np.random.default_rng(0)
    half = len(digits.ids) // 2
    trained = [np.sort(rng.permutation(digits.ids)[:half]) for _ in range(args.models)]
    forget = [np.sort(rng.choice(t, half // 10, replace=False)) for t in trained]
    retain = [np.setdiff1d(t, f) for t, f in zip(trained, forget)]
    seeds = model_seeds(0, args.models)
    originals = train_models(digits, recipe, trained, seeds)
    task = UnlearnTask(digits, forget, retain, recipe, seeds)
    # Warm-up: one-time imports and allocations land here, not on the first timed variant.
    unlearn_models(originals.select([0]), task.select([0]), "finetune", {"epochs": 1})

    print(f"{args.models} digits MLP shadows, forget {half // 10} of {half} training examples each, 2 threads")
    for method in args.methods.split(","):
        start = time.perf_counter()
        stacked = unlearn_models(originals, task, method)
        t_stacked = time.perf_counter() - start
        start = time.perf_counter()
        singles = [unlearn_models(originals.select([k]), task.select([k]), method) for k in range(args.models)]
        t_loop = time.perf_counter() - start
        drift = max((stacked.params[n][0] - singles[0].params[n][0]).abs().max().item() for n in stacked.params)
        print(
            f"  {method:12s} stacked {t_stacked:6.2f} s   one at a time {t_loop:6.2f} s   "
            f"ratio {t_loop / t_stacked:5.1f}x   model 0 max |diff| {drift:.1e}"
        )
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")


if __name__ == "__main__":
    main()
