"""Benchmark: `audit run` at the default settings against one training run of the model.

    python benchmarks/audit_run.py [--shadows 64] [--data digits|mnist1d]

Two audits a user runs, each on a fresh shadow bank, then again on the bank it left: an
exact retrain and the original passed off as exactly unlearned (``--method retrain
--original``: a model that forgot nothing). digits: the sample models and the sample's
random 30% forget list. mnist1d: an original and a retrain without 400 random training
ids trained here (MLP 40-256-256-10, 30 epochs, as benchmarks/validity.py). The bank grows
8, 16, 32, 64 shadows only until the verdict is decided (audit_cli/shadows/looks.py), so the cost
depends on the model: a no-op is decided on the first 8. Timed against one training run
of the original's recipe in the same process, so the ratios hold on a noisy machine.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from audit_cli.auditing.pipeline import run_audit
from audit_cli.auditing.request import AuditConfig
from audit_cli.data import load_dataset
from audit_cli.models.checkpoint import load_checkpoint
from audit_cli.models.recipe import Recipe
from audit_cli.training.loop import train_models

SAMPLES = Path(__file__).resolve().parents[1] / "sample_models"


def mnist1d_models(folder: Path) -> tuple[Path, Path, Path]:
    """An mnist1d original, 400 random training ids, and a retrain without them."""
    import numpy as np

    from audit_cli.data import write_id_file
    from audit_cli.repair.train_checkpoint import TrainRequest, train_checkpoint

    recipe = Recipe(arch="mlp", arch_args={"hidden": (256, 256)}, epochs=30)
    ids = load_dataset("mnist1d").train_ids
    forget = folder / "forget.txt"
    write_id_file(forget, np.random.default_rng(0).choice(ids, 400, replace=False))
    original, retrained = folder / "mnist1d.safetensors", folder / "retrained.safetensors"
    train_checkpoint(TrainRequest(out=original, data="mnist1d", recipe=recipe, device="cpu"))
    train_checkpoint(TrainRequest(out=retrained, data="mnist1d", recipe=recipe.replace(seed=1), exclude_ids=forget,
                                  device="cpu"))  # fmt: skip
    return original, retrained, forget


def main() -> None:
    parser = argparse.ArgumentParser(description="audit run vs one training run")
    parser.add_argument("--shadows", type=int, default=64)
    parser.add_argument("--data", choices=("digits", "mnist1d"), default="digits")
    args = parser.parse_args()
    work = tempfile.TemporaryDirectory()
    if args.data == "digits":
        original = SAMPLES / "digits_mlp_original.safetensors"
        retrained, forget = SAMPLES / "digits_mlp_retrained_random30.safetensors", SAMPLES / "forget_random30.txt"
    else:
        original, retrained, forget = mnist1d_models(Path(work.name))
    recipe = load_checkpoint(original).meta.recipe
    data = load_dataset(load_checkpoint(original).meta.dataset)
    # One-time imports (torch._dynamo via torch.optim) land here, not on a timed step.
    train_models(data, recipe.replace(epochs=1), [data.train_ids], [0])

    start = time.perf_counter()
    train_models(data, recipe, [data.train_ids], [recipe.seed])
    t_train = time.perf_counter() - start
    print(f"{args.data}, up to {args.shadows} shadows, recipe {recipe.epochs} epochs")
    print(f"  one training run of the original        {t_train:7.2f} s")
    for name, model in (("exact retrain", retrained), ("original passed off", original)):
        with tempfile.TemporaryDirectory() as bank:
            config = AuditConfig(model=model, forget=forget, original=original, method="retrain",
                                 shadows=args.shadows, bank=Path(bank), device="cpu")  # fmt: skip
            start = time.perf_counter()
            first = run_audit(config)
            t_audit = time.perf_counter() - start
            start = time.perf_counter()
            again = run_audit(config)
            t_rerun = time.perf_counter() - start
        print(f"  {name}: exit {int(first.exit_code)} on {first.shadows.n} shadows "
              f"({first.shadows.trained_now} trained, bank {first.shadows.seconds:.2f} s)")  # fmt: skip
        print(f"    fresh bank   {t_audit:7.2f} s   ratio {t_audit / t_train:5.1f}x")
        print(f"    bank reused  {t_rerun:7.2f} s   ratio {t_rerun / t_train:5.1f}x (exit {int(again.exit_code)})")


if __name__ == "__main__":
    main()
