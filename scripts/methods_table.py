"""Measure every unlearning method against a retrained model: the table in docs/methods.md.

    python scripts/methods_table.py                 # digits, the committed sample models
    python scripts/methods_table.py --data mnist1d  # trains original + retrained models first

For random forgetting (the sample 10% forget list, or a random 10% on mnist1d) and class
forgetting (class 3), each method unlearns the original model with its default
parameters; the table reports forget, retain and test accuracy (test: retained classes
only for class forgetting), MIA-efficacy, the Average Gap to the model retrained without
the forget set, and the seconds the method took. "retrain (seed 1)" and "(seed 2)" retrain from other seeds:
the gap exact retrains have from each other, the noise floor of the Average Gap.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from attacks.population import mia_efficacy
from attacks.reference import UnlearningMetrics, average_gap
from audit_cli.data import Dataset, load_dataset, read_id_file, write_id_file
from audit_cli.models.checkpoint import build_model_from_checkpoint, load_checkpoint
from audit_cli.models.recipe import Recipe
from audit_cli.repair.train_checkpoint import TrainRequest, train_checkpoint
from audit_cli.training.loop import Ensemble, make_optimizer, predict_logits
from audit_cli.unlearn import METHODS, UnlearnTask, unlearn_models

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "sample_models"


def metrics(ens: Ensemble, ds: Dataset, forget, retain, test) -> UnlearningMetrics:
    logits = predict_logits(ens, ds.x)[0]
    prob = torch.softmax(logits.double(), -1).numpy()
    conf = prob[np.arange(len(ds.y)), ds.y]
    correct = prob.argmax(1) == ds.y

    def pct(ids):
        return 100.0 * correct[ds.rows(ids)].mean()

    mia = mia_efficacy(conf[ds.rows(retain)], conf[ds.rows(test)], conf[ds.rows(forget)])
    return UnlearningMetrics(pct(forget), pct(retain), pct(test), 100.0 * mia)


def load_ensemble(path: Path, ds: Dataset) -> tuple[Ensemble, Recipe]:
    ckpt = load_checkpoint(path)
    model = build_model_from_checkpoint(ckpt)
    meta = ckpt.meta
    return Ensemble.from_modules([model], meta.arch, meta.arch_args, ds.input_shape, ds.num_classes), meta.recipe


def models_for(data: str, workdir: Path) -> tuple[Dataset, Path, dict[str, tuple[Path, Path, int | None]]]:
    """Dataset, original checkpoint, and per kind: (forget list, retrained checkpoint, class)."""
    if data == "digits":
        ds = load_dataset("digits")
        return (
            ds,
            SAMPLES / "digits_mlp_original.safetensors",
            {
                "random": (
                    SAMPLES / "forget_random10.txt",
                    SAMPLES / "digits_mlp_retrained_random10.safetensors",
                    None,
                ),
                "class": (SAMPLES / "forget_class3.txt", SAMPLES / "digits_mlp_retrained_class3.safetensors", 3),
            },
        )
    ds = load_dataset(data)
    recipe = Recipe(arch="mlp", arch_args={"hidden": (256, 256)}, epochs=60)
    rng = np.random.default_rng(0)
    forget = np.sort(rng.choice(ds.train_ids, round(0.1 * len(ds.train_ids)), replace=False))
    write_id_file(workdir / "forget_random10.txt", forget)
    write_id_file(workdir / "forget_class3.txt", ds.ids_of_class(3))
    paths = {}
    for name, extra in [("original", {}), ("random", {"exclude_ids": workdir / "forget_random10.txt"}),
                        ("class", {"exclude_class": 3})]:  # fmt: skip
        paths[name] = workdir / f"{name}.safetensors"
        train_checkpoint(TrainRequest(out=paths[name], data=data, recipe=recipe, device="cpu", **extra))
    return (
        ds,
        paths["original"],
        {
            "random": (workdir / "forget_random10.txt", paths["random"], None),
            "class": (workdir / "forget_class3.txt", paths["class"], 3),
        },
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="digits", choices=["digits", "mnist1d"])
    args = parser.parse_args()
    # torch.optim imports torch._dynamo on first use (seconds); keep it out of the timings.
    make_optimizer("sgd", [torch.zeros(1, requires_grad=True)], lr=0.1)
    with tempfile.TemporaryDirectory() as tmp:
        ds, original_path, kinds = models_for(args.data, Path(tmp))
        originals, recipe = load_ensemble(original_path, ds)
        print(f"### {args.data}\n")
        print("| forgetting | method | forget acc | retain acc | test acc | MIA-eff. | Avg Gap | seconds |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- |")
        for kind, (forget_file, retrained_path, forget_class) in kinds.items():
            forget = read_id_file(forget_file)
            retain = np.setdiff1d(ds.train_ids, forget)
            test = ds.test_ids
            if forget_class is not None:
                test = test[ds.y[ds.rows(test)] != forget_class]
            reference = metrics(load_ensemble(retrained_path, ds)[0], ds, forget, retain, test)
            rows = [("original", metrics(originals, ds, forget, retain, test), 0.0)]
            # mpru writes an output filter, not weights: scripts/mpru_tree.py measures it.
            runs = [(name, name, 0) for name, e in METHODS.items() if kind in e.supports and e.produces == "weights"]
            runs[1:1] = [("retrain (seed 1)", "retrain", 1), ("retrain (seed 2)", "retrain", 2)]
            for label, method, seed in runs:
                task = UnlearnTask(ds, [forget], [retain], recipe, [seed], forget_class=forget_class)
                start = time.perf_counter()
                unlearned = unlearn_models(originals, task, method)
                rows.append((label, metrics(unlearned, ds, forget, retain, test), time.perf_counter() - start))
            for label, m, seconds in rows:
                print(
                    f"| {kind} | {label} | {m.forget_accuracy:.1f} | {m.retain_accuracy:.1f} | {m.test_accuracy:.1f} "
                    f"| {m.mia_efficacy:.1f} | {average_gap(m, reference):.2f} | {seconds:.2f} |"
                )
            print(
                f"| {kind} | *retrained reference* | {reference.forget_accuracy:.1f} | {reference.retain_accuracy:.1f} "
                f"| {reference.test_accuracy:.1f} | {reference.mia_efficacy:.1f} | 0 | |"
            )


if __name__ == "__main__":
    main()
