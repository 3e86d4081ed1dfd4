"""Benchmark: a full `audit run` with 64 shadows against one training run of the model.

    python benchmarks/audit_run.py [--shadows 64] [--data digits|mnist1d]

digits: the sample original model audited against the sample forget list. mnist1d: an
original trained here (MLP 40-256-256-10, 60 epochs, as docs/audit.md) audited against 400
random training ids. Each with a fresh shadow bank (every shadow trained), then again with
the bank reused, timed against one training run of the original's recipe in the same
process, so the ratios hold on a noisy machine.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from audit_cli.data import load_dataset
from audit_cli.models.checkpoint import load_checkpoint
from audit_cli.pipeline import AuditConfig, run_audit
from audit_cli.training import Recipe, train_models

SAMPLES = Path(__file__).resolve().parents[1] / "sample_models"


def mnist1d_original(folder: Path) -> tuple[Path, Path]:
    """An mnist1d original as docs/audit.md trains it, and 400 random training ids."""
    import numpy as np

    from audit_cli.data import write_id_file
    from audit_cli.train_checkpoint import TrainRequest, train_checkpoint

    recipe = Recipe(arch="mlp", arch_args={"hidden": (256, 256)}, epochs=60)
    model = folder / "mnist1d.safetensors"
    train_checkpoint(TrainRequest(out=model, data="mnist1d", recipe=recipe, device="cpu"))
    ids = load_dataset("mnist1d").train_ids
    write_id_file(folder / "forget.txt", np.random.default_rng(0).choice(ids, 400, replace=False))
    return model, folder / "forget.txt"


def main() -> None:
    parser = argparse.ArgumentParser(description="audit run vs one training run")
    parser.add_argument("--shadows", type=int, default=64)
    parser.add_argument("--data", choices=("digits", "mnist1d"), default="digits")
    args = parser.parse_args()
    work = tempfile.TemporaryDirectory()
    if args.data == "digits":
        model, forget = SAMPLES / "digits_mlp_original.safetensors", SAMPLES / "forget_random10.txt"
    else:
        model, forget = mnist1d_original(Path(work.name))
    recipe = load_checkpoint(model).meta.recipe
    digits = load_dataset(load_checkpoint(model).meta.dataset)
    # One-time imports (torch._dynamo via torch.optim) land here, not on a timed step.
    train_models(digits, recipe.replace(epochs=1), [digits.train_ids], [0])

    start = time.perf_counter()
    train_models(digits, recipe, [digits.train_ids], [recipe.seed])
    t_train = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as bank:
        config = AuditConfig(
            model=model,
            forget=forget,
            shadows=args.shadows,
            bank=Path(bank),
            device="cpu",
            allow_underpowered=True,  # timed, not judged: 135 forget ids cannot decide 0.1
        )
        start = time.perf_counter()
        first = run_audit(config)
        t_audit = time.perf_counter() - start
        start = time.perf_counter()
        again = run_audit(config)
        t_rerun = time.perf_counter() - start
    print(f"{args.data}, {args.shadows} shadows, recipe {recipe.epochs} epochs")
    print(f"  one training run of the original   {t_train:7.2f} s")
    print(f"  audit run, fresh bank               {t_audit:7.2f} s   ratio {t_audit / t_train:5.1f}x "
          f"({first.shadows.trained_now} shadows trained, bank {first.shadows.seconds:.2f} s)")  # fmt: skip
    print(f"  audit run, bank reused              {t_rerun:7.2f} s   ratio {t_rerun / t_train:5.1f}x "
          f"({again.shadows.trained_now} shadows trained)")  # fmt: skip


if __name__ == "__main__":
    main()
