"""Benchmark: K shadow MLPs on digits as one vectorized ensemble vs one at a time.

    python benchmarks/ensemble_training.py [--models 64] [--epochs 10]

Every variant trains the same recipe (MLP 64-256-10, Adam 1e-3, batch 64) on the same
random halves of the digits pool, in one process, one after another, so the ratios are
comparable even on a noisy shared machine; the absolute seconds are not. Variants:

- vectorized: ``train_models`` with all K models in one ensemble (what the audit runs);
- loop, our K=1 path: ``train_models`` called once per model;
- loop, plain PyTorch: nn.Module + DataLoader(TensorDataset) + Adam per model, which is
  how shadow-model tools (Privacy Meter, LeakPro) train their shadows.

Also prints the achieved FLOP/s of the vectorized run against the fp32 matmul peak
measured in the same run (2048 x 2048 matmul), so you can see how much headroom is left.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from audit_cli.data import load_dataset
from audit_cli.models.recipe import Recipe
from audit_cli.training.loop import model_seeds, train_models


def matmul_peak_flops(n: int = 2048, repeats: int = 5) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return repeats * 2 * n**3 / (time.perf_counter() - start)


def mlp_training_flops(dims: list[int], examples: int) -> float:
    """Matmul FLOPs of forward + backward (about 3x forward) for ``examples`` example-steps."""
    forward = sum(2 * a * b for a, b in zip(dims[:-1], dims[1:]))
    return 3.0 * forward * examples


def plain_loop(digits, recipe: Recipe, subsets, seeds) -> float:
    """One model at a time, the idiomatic way: DataLoader batches, nn.Module, torch.optim."""
    x, y = torch.from_numpy(digits.x), torch.from_numpy(digits.y)
    start = time.perf_counter()
    for subset, seed in zip(subsets, seeds):
        torch.manual_seed(seed)
        model = nn.Sequential(nn.Flatten(), nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 10))
        opt = torch.optim.Adam(model.parameters(), lr=recipe.lr)
        rows = torch.from_numpy(digits.rows(subset))
        loader = DataLoader(TensorDataset(x[rows], y[rows]), batch_size=recipe.batch_size, shuffle=True)
        for _ in range(recipe.epochs):
            for xb, yb in loader:
                loss = nn.functional.cross_entropy(model(xb), yb)
                opt.zero_grad()
                loss.backward()
                opt.step()
    return time.perf_counter() - start


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description="vectorized vs one-at-a-time shadow training")
    parser.add_argument("--models", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--json", action="store_true", help="print the measurements as JSON too")
    args = parser.parse_args()

    digits = load_dataset("digits")
    recipe = Recipe(arch="mlp", arch_args={"hidden": (256,)}, lr=1e-3, epochs=args.epochs, batch_size=args.batch_size)
    rng = np.random.default_rng(0)
    half = len(digits.ids) // 2
    subsets = [np.sort(rng.permutation(digits.ids)[:half]) for _ in range(args.models)]
    seeds = model_seeds(0, args.models)

    # One-time process costs (torch.optim imports torch._dynamo on first use, about 2 s
    # here) would land on whichever variant runs first; pay them before timing anything.
    train_models(digits, recipe.replace(epochs=1), subsets[:2], seeds[:2])
    peak = matmul_peak_flops()
    t_vec, ens = timed(lambda: train_models(digits, recipe, subsets, seeds))
    t_k1, singles = timed(lambda: [train_models(digits, recipe, [s], [sd]) for s, sd in zip(subsets, seeds)])
    t_plain = plain_loop(digits, recipe, subsets, seeds)

    drift = max((ens.params[n][0] - singles[0].params[n][0]).abs().max().item() for n in ens.params)
    flops = mlp_training_flops([64, 256, 10], args.models * args.epochs * half)
    results = {
        "models": args.models,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "threads": torch.get_num_threads(),
        "seconds_vectorized": t_vec,
        "seconds_loop_k1": t_k1,
        "seconds_loop_plain": t_plain,
        "speedup_vs_plain_loop": t_plain / t_vec,
        "speedup_vs_k1_loop": t_k1 / t_vec,
        "achieved_gflops": flops / t_vec / 1e9,
        "matmul_peak_gflops": peak / 1e9,
        "fraction_of_peak": flops / t_vec / peak,
        "max_param_diff_model0": drift,
    }
    print(
        f"{args.models} MLP shadows on digits, {args.epochs} epochs, batch {args.batch_size}, "
        f"{torch.get_num_threads()} threads"
    )
    print(f"  vectorized ensemble          {t_vec:8.2f} s")
    print(f"  loop, our K=1 path           {t_k1:8.2f} s   ratio {t_k1 / t_vec:5.1f}x")
    print(f"  loop, plain PyTorch          {t_plain:8.2f} s   ratio {t_plain / t_vec:5.1f}x")
    print(
        f"  achieved {flops / t_vec / 1e9:.1f} GFLOP/s of a {peak / 1e9:.1f} GFLOP/s matmul peak "
        f"({100 * flops / t_vec / peak:.0f}%)"
    )
    print(f"  model 0: ensemble vs alone, max |diff| = {drift:.1e}")
    print(f"speedup (vectorized vs plain loop): {t_plain / t_vec:.1f}x")
    if args.json:
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
