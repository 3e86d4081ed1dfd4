"""Bring your own model: a plain PyTorch training loop, audited with shadows from that loop.

Written as a user would write it (not with the tool's trainer): an MLP on the digits
dataset, trained with SGD and a step-decay schedule. The audit needs three functions from
it, named on the command line (or passed from Python):

- ``make_model(input_shape, num_classes)``: the architecture, to rebuild a saved state dict
  (``audit run --arch examples.own_loop:make_model``);
- ``train(dataset, train_ids, seeds)``: one model per id set, each with its own seed
  (``--trainer examples.own_loop:train``); the audit trains its shadows with it;
- ``unlearn(dataset, model, forget_ids, retain_ids, seed)``: this example's unlearning,
  fine-tuning on the retain set (``--unlearner examples.own_loop:unlearn``).

Run ``python examples/own_loop.py --out DIR`` to train an original model, an exact retrain
without a forget set and a no-op "unlearned" model, and audit them through the command
line and through the Python API; it prints what each audit said.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

EPOCHS = 30
BATCH = 64
HIDDEN = 128


def make_model(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(int(np.prod(input_shape)), HIDDEN), nn.ReLU(),
                         nn.Linear(HIDDEN, num_classes))  # fmt: skip


def fit(model: nn.Module, x: torch.Tensor, y: torch.Tensor, seed: int, epochs: int = EPOCHS) -> nn.Module:
    """The user's own loop: SGD with momentum, the rate cut tenfold two thirds through."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=max(1, 2 * epochs // 3), gamma=0.1)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=gen)
        for start in range(0, len(x), BATCH):
            batch = order[start : start + BATCH]
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[batch]), y[batch]).backward()
            opt.step()
        sched.step()
    return model.eval()


def train(dataset, train_ids: list[np.ndarray], seeds: list[int]) -> list[nn.Module]:
    """Trainer protocol: one model per id set, model k on ``train_ids[k]`` with ``seeds[k]``."""
    models = []
    for ids, seed in zip(train_ids, seeds, strict=True):
        torch.manual_seed(seed)
        rows = dataset.rows(ids)
        x, y = torch.from_numpy(dataset.x[rows]), torch.from_numpy(dataset.y[rows])
        models.append(fit(make_model(dataset.input_shape, dataset.num_classes), x, y, seed))
    return models


def unlearn(dataset, model: nn.Module, forget_ids: np.ndarray, retain_ids: np.ndarray, seed: int) -> nn.Module:
    """Unlearner protocol: this example fine-tunes on the retain set for a few epochs."""
    rows = dataset.rows(retain_ids)
    x, y = torch.from_numpy(dataset.x[rows]), torch.from_numpy(dataset.y[rows])
    return fit(model, x, y, seed, epochs=5)


def noop(dataset, model: nn.Module, forget_ids: np.ndarray, retain_ids: np.ndarray, seed: int) -> nn.Module:
    """An "unlearner" that forgets nothing (what a careless repair looks like)."""
    return model


def run_example(
    out: Path, shadows: int = 32, forget_size: int = 135, threshold: float = 0.2, draw: int = 0
) -> dict[str, int]:
    """Train the models, audit them through the command line and the API; exit code by audit."""
    from audit_cli import audit, load_dataset
    from audit_cli.data import write_id_file

    out.mkdir(parents=True, exist_ok=True)
    digits = load_dataset("digits")
    rng = np.random.default_rng(draw)
    forget = np.sort(rng.choice(digits.train_ids, forget_size, replace=False))
    retain = np.setdiff1d(digits.train_ids, forget)
    write_id_file(out / "forget.txt", forget)
    (original,) = train(digits, [digits.train_ids], [1 + 2 * draw])
    (retrained,) = train(digits, [retain], [2 + 2 * draw])
    torch.save(original.state_dict(), out / "original.pt")
    torch.save(retrained.state_dict(), out / "retrained.pt")

    common = ["--arch", "examples.own_loop:make_model", "--data", "digits", "--trainer", "examples.own_loop:train",
              "--forget", str(out / "forget.txt"), "--original", str(out / "original.pt"), "--shadows",
              str(shadows), "--bank", str(out / "bank"), "--fail-above", str(threshold), "-q"]  # fmt: skip
    runs = {
        "exact retrain (CLI)": ["--model", str(out / "retrained.pt"), "--method", "retrain"],
        "original passed off as retrained (CLI)": ["--model", str(out / "original.pt"), "--method", "retrain"],
        "no-op unlearner (CLI)": ["--model", str(out / "original.pt"), "--unlearner", "examples.own_loop:noop"],
    }
    codes = {}
    for label, extra in runs.items():
        # From the project's root, where `examples.own_loop` can be imported (as a user runs it).
        done = subprocess.run([sys.executable, "-m", "audit_cli", "run", *common, *extra], capture_output=True,
                              text=True, cwd=Path(__file__).resolve().parents[1])  # fmt: skip
        codes[label] = done.returncode
        print(f"{label}: exit {done.returncode}; {(done.stdout or done.stderr).splitlines()[0]}")
    # The same audits from Python, on the models in memory.
    for label, model in (("exact retrain (API)", retrained), ("original passed off as retrained (API)", original)):
        report = audit(model, data=digits, forget=forget, trainer=train, method="retrain", original=original,
                       shadows=shadows, bank=str(out / "bank"), fail_above=threshold)  # fmt: skip
        codes[label] = int(report.exit_code)
        print(f"{label}: exit {int(report.exit_code)}; {report.headline.name}: {report.headline.verdict}")
    return codes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--shadows", type=int, default=32)
    parser.add_argument("--forget", type=int, default=135, help="forget-set size")
    parser.add_argument("--fail-above", type=float, default=0.2)
    parser.add_argument("--draw", type=int, default=0, help="seed of the forget set and the models")
    args = parser.parse_args()
    run_example(args.out, args.shadows, args.forget, args.fail_above, args.draw)


if __name__ == "__main__":
    main()
