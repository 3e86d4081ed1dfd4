"""Benchmark: ``audit sweep`` with the points' shadows trained once against trained per point.

    python benchmarks/sweep.py [--shadows 32] [--points 3]

The sample digits model, its random-10% forget list and retrained model; neggrad+ over
``--points`` learning rates. The same sweep runs twice in this process, in fresh folders:
as shipped (the shadows, trained alike at every point, kept in memory for the next
point: audit_cli/shadows/reuse.py) and with that reuse switched off. Both give the same
points (checked); the ratio of their times is what matters on a noisy machine.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from pathlib import Path

import torch

import audit_cli.auditing.sweep as sweep_module
from audit_cli.auditing.sweep import SweepRequest, sweep

SAMPLES = Path(__file__).resolve().parents[1] / "sample_models"


def run(root: Path, shadows: int, points: int, reuse: bool) -> tuple[float, list]:
    request = SweepRequest(
        model=SAMPLES / "digits_mlp_original.safetensors",
        method="neggrad+",
        grid={"lr": [f"{10.0 ** -(i + 1):g}" for i in range(points)]},
        out=root / "out",
        forget=SAMPLES / "forget_random10.txt",
        retrained=SAMPLES / "digits_mlp_retrained_random10.safetensors",
        shadows=shadows,
        bank=root / "bank",
        allow_underpowered=True,
        device="cpu",
    )
    if not reuse:
        sweep_module.reuse_fitted_shadows = contextlib.nullcontext
    started = time.perf_counter()
    result = sweep(request)
    return time.perf_counter() - started, [(p.leakage, p.average_gap) for p in result.points]


def main() -> None:
    parser = argparse.ArgumentParser(description="audit sweep: shadows trained once vs per point")
    parser.add_argument("--shadows", type=int, default=32)
    parser.add_argument("--points", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    shipped = sweep_module.reuse_fitted_shadows
    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
        reused, points_reused = run(Path(a), args.shadows, args.points, reuse=True)
        separate, points_separate = run(Path(b), args.shadows, args.points, reuse=False)
    sweep_module.reuse_fitted_shadows = shipped
    assert points_reused == points_separate, "reuse changed the results"
    print(f"{args.points} points + 1 fresh-seed re-audit, {args.shadows} shadows each:")
    print(f"  shadows trained once: {reused:.1f} s; trained per point: {separate:.1f} s; "
          f"ratio {separate / reused:.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
