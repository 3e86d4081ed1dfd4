"""Rebuild the committed sample models on digits, deterministically.

    python sample_models/build.py            # rewrite the files next to this script
    python sample_models/build.py --out DIR  # somewhere else

Writes four MLP checkpoints and three forget lists:

- ``digits_mlp_original.safetensors``: trained on the whole digits training split;
- ``forget_random30.txt``: a random 30% of the training ids (seed 0), the README's first
  audit: 404 examples measure the residual memorisation share to about +-0.1, enough to
  show an exact retrain within the default 0.3 (135 cannot: about +-0.2);
- ``digits_mlp_retrained_random30.safetensors``: retrained from scratch without them;
- ``forget_random10.txt``: a random 10% of the training ids (seed 0);
- ``digits_mlp_retrained_random10.safetensors``: retrained from scratch without them;
- ``forget_class3.txt``: every training id of class 3;
- ``digits_mlp_retrained_class3.safetensors``: retrained without class 3.

Training runs on the CPU with fixed seeds and SOURCE_DATE_EPOCH pins the metadata
timestamp, so on the same torch build a rebuild reproduces the files byte for byte.
It uses the same function as ``audit train``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from audit_cli.data import load_dataset, write_id_file
from audit_cli.models.recipe import Recipe
from audit_cli.repair.train_checkpoint import TrainRequest, train_checkpoint

HERE = Path(__file__).resolve().parent
# 2026-01-01T00:00:00Z: the committed files' metadata timestamp.
SOURCE_DATE_EPOCH = "1767225600"
RECIPE = Recipe(arch="mlp", arch_args={"hidden": (256,)}, optimizer="adam", lr=1e-3, epochs=60, batch_size=64, seed=0)
FORGET_FRACTIONS = (0.10, 0.30)
FORGET_SEED = 0
FORGET_CLASS = 3


def build(out: Path, epochs: int | None = None) -> list[Path]:
    os.environ["SOURCE_DATE_EPOCH"] = SOURCE_DATE_EPOCH
    recipe = RECIPE if epochs is None else RECIPE.replace(epochs=epochs)
    digits = load_dataset("digits")
    for fraction in FORGET_FRACTIONS:
        # Each list drawn with its own generator seeded alike: adding a list never changes another.
        rng = np.random.default_rng(FORGET_SEED)
        n_forget = round(fraction * len(digits.train_ids))
        write_id_file(
            out / f"forget_random{fraction * 100:.0f}.txt",
            np.sort(rng.choice(digits.train_ids, n_forget, replace=False)),
            header=f"digits: random {fraction:.0%} of the training ids (numpy default_rng({FORGET_SEED}))",
        )
    write_id_file(
        out / "forget_class3.txt",
        digits.ids_of_class(FORGET_CLASS, split="train"),
        header=f"digits: every training id of class {FORGET_CLASS}",
    )
    jobs = {
        "digits_mlp_original.safetensors": {},
        "digits_mlp_retrained_random10.safetensors": {"exclude_ids": out / "forget_random10.txt"},
        "digits_mlp_retrained_random30.safetensors": {"exclude_ids": out / "forget_random30.txt"},
        "digits_mlp_retrained_class3.safetensors": {"exclude_class": FORGET_CLASS},
    }
    written = []
    for name, exclusion in jobs.items():
        result = train_checkpoint(
            TrainRequest(out=out / name, data="digits", recipe=recipe, overwrite=True, device="cpu", **exclusion)
        )
        print(f"{name}: train {result.train_accuracy:.4f} test {result.test_accuracy:.4f}")
        written.append(result.path)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE, help="output folder (default: next to this script)")
    parser.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs (tests)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    build(args.out, args.epochs)


if __name__ == "__main__":
    main()
