"""Benchmark: ResNet-18 shadows on CIFAR-shaped images, K at a time (docs/performance.md).

    python benchmarks/cifar_resnet.py                                  # CPU rows: narrow, K = 1, 2, 4, 8
    python benchmarks/cifar_resnet.py --device cuda --width 64 --shadows 64 --n-train 50000

Each K trains K ResNet-18 shadows (``--width`` channels in the first stage; 64 is
torchvision's) on random halves of a ``cifar10-shaped`` pool with ``train_models``, the
trainer the audit's bank runs, in a child process of its own, so that each K's peak memory
is its own: resident memory on CPU (the child's maximum RSS less what it held before
training), ``torch.cuda.max_memory_allocated`` on a GPU. ``--chunk`` trains at most that
many at once, as the bank builds its chunks. Reported per K: seconds, training images per
second (K x half the pool x epochs / seconds), seconds per shadow and memory per shadow
trained at once (peak over the chunk size). The children run one after another in one run, so the ratios between
K are comparable on a noisy machine; the absolute seconds are not.

Anchor: Privacy Meter trains 16 shadows and a target (17 ResNet-sized CIFAR-10 models) in
about 10 minutes on a TITAN RTX, 35 s a model.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

# One K in its own process: prints one JSON line.
CHILD = """
import json, resource, sys, time
import numpy as np, torch
from audit_cli.data import load_dataset
from audit_cli.models.recipe import Recipe
from audit_cli.training.loop import model_seeds, train_models

k, width, n_train, epochs, batch, chunk = (int(a) for a in sys.argv[1:7])
device = sys.argv[7]
ds = load_dataset("cifar10-shaped", {"n_train": n_train, "n_test": max(10, n_train // 5)})
rng = np.random.default_rng(0)
subsets = [np.sort(rng.choice(ds.train_ids, n_train // 2, replace=False)) for _ in range(k)]
recipe = Recipe(arch="resnet18", arch_args={"width": width}, epochs=epochs, batch_size=batch, augmentation="crop+flip")
# Warm-up: one model, one step (kernel selection, allocator), not timed.
warm = Recipe(arch="resnet18", arch_args={"width": width}, epochs=1, batch_size=batch)
train_models(ds, warm, [subsets[0][:batch]], [0], device=device)
cuda = device.startswith("cuda")
if cuda:
    torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
seeds = model_seeds(0, k)
for first in range(0, k, chunk):  # chunks of at most `chunk` shadows, as the bank builds them
    ens = train_models(ds, recipe, subsets[first:first + chunk], seeds[first:first + chunk], device=device)
if cuda:
    torch.cuda.synchronize()
seconds = time.perf_counter() - start
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
peak = torch.cuda.max_memory_allocated() if cuda else (rss - before) * 1024
params = sum(p[0].numel() for p in ens.params.values())
print(json.dumps({"k": k, "chunk": min(chunk, k), "seconds": seconds,
                  "images_per_s": k * (n_train // 2) * epochs / seconds,
                  "seconds_per_shadow": seconds / k, "peak_bytes": peak, "bytes_per_shadow": peak / min(chunk, k),
                  "peak_total_bytes": peak if cuda else rss * 1024, "params_per_shadow": params,
                  "memory": "cuda max allocated" if cuda else "RSS growth"}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--width", type=int, default=8)
    parser.add_argument("--shadows", type=int, nargs="+", default=[1, 2, 4, 8], help="the K values, one child each")
    parser.add_argument("--n-train", type=int, default=2000, help="pool size; each shadow trains on half")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--chunk", type=int, default=64, help="shadows trained at once (the bank's chunk size)")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    print(f"resnet18 width {args.width}, cifar10-shaped pool of {args.n_train}, {args.epochs} epoch(s), batch "
          f"{args.batch_size}, {args.device}", flush=True)  # fmt: skip
    rows = []
    for k in args.shadows:
        done = subprocess.run([sys.executable, "-c", CHILD, str(k), str(args.width), str(args.n_train),
                               str(args.epochs), str(args.batch_size), str(args.chunk), args.device],
                              capture_output=True, text=True)  # fmt: skip
        if done.returncode != 0:
            raise SystemExit(f"K={k} failed:\n{done.stderr[-3000:]}")
        row = json.loads(done.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(f"  K={k:<3} chunk {row['chunk']:<3} {row['seconds']:8.2f} s  {row['images_per_s']:9.1f} images/s  "
              f"{row['seconds_per_shadow']:7.2f} s/shadow  {row['bytes_per_shadow'] / 2**20:8.1f} MiB/shadow "
              f"({row['memory']}), {row['params_per_shadow']:,} parameters", flush=True)  # fmt: skip
    if len(rows) > 1:
        first = rows[0]
        for row in rows[1:]:
            # Memory a further shadow costs: the slope of the process's peak between the two K
            # (the warm-up's allocations cancel, which a per-K growth does not see at K=1).
            slope = (row["peak_total_bytes"] - first["peak_total_bytes"]) / (row["chunk"] - first["chunk"] or 1)
            print(f"  K={row['k']} against K={first['k']}: {row['images_per_s'] / first['images_per_s']:.2f}x the "
                  f"images per second; {slope / 2**20:.1f} MiB per further shadow at once")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "rows": rows,
                                         "when": time.strftime("%Y-%m-%d")}, indent=1) + "\n")  # fmt: skip


if __name__ == "__main__":
    main()
