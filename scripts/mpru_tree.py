"""MPRU on a tree model against retraining: the Covertype-like measurement in docs/methods.md.

    python scripts/mpru_tree.py                      # 7 classes, 6,000 examples, HGB
    python scripts/mpru_tree.py --forget-class 1 --seeds 0 1 2   # three datasets

The MPRU paper reports that its filter on a tree model matches retraining within 0.025
accuracy on Covertype (7 classes, 54 features). This reproduces the setting with the
built-in ``synthetic`` dataset shaped like it (7 classes, 54 features of which 20
informative, 6,000 examples) and a HistGradientBoostingClassifier: train the original,
retrain it without the class, fit the MPRU filter on the original (both fit modes), and
compare on the test split: accuracy on the retained classes, and how often the filtered
original and the retrained model predict the same class (all test examples, and the
test examples of the forgotten class, where neither can be right).

A seed draws another dataset (make_classification's seed) and seeds the models: without
early stopping HistGradientBoosting is deterministic, so the dataset is what varies.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from audit_cli.data import load_dataset
from audit_cli.models.sklearn_model import SklearnRecipe, load_sklearn, sklearn_logits
from audit_cli.repair.train_checkpoint import TrainRequest, train_checkpoint
from audit_cli.repair.unlearn_checkpoint import unlearn_checkpoint
from audit_cli.repair.unlearn_request import UnlearnRequest
from audit_cli.unlearn.mpru import load_filter

COVERTYPE_LIKE = {
    "n_samples": 6000,
    "n_features": 54,
    "n_informative": 20,
    "n_classes": 7,
    "class_sep": 1.5,
    "flip_y": 0.02,
    "seed": 0,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--forget-class", type=int, default=3)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="dataset and model seeds (rows each)")
    parser.add_argument("--max-iter", type=int, default=100, help="HGB boosting iterations")
    args = parser.parse_args()
    c = args.forget_class
    shape = {k: v for k, v in COVERTYPE_LIKE.items() if k != "seed"}
    print(f"synthetic {shape}, forget class {c}")
    header = (
        f"{'seed':>4} {'model':<32} {'test':>6} {'retained':>8} {'gap':>7} "
        f"{'agree':>6} {'agree r':>7} {'agree c':>7} {'s':>5}"
    )
    print(header)
    gaps: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for seed in args.seeds:
            options = {k: str(v) for k, v in (COVERTYPE_LIKE | {"seed": seed}).items()}
            data = load_dataset("synthetic", options)
            test_rows = data.rows(data.test_ids)
            y_test = data.y[test_rows]
            kept, gone = y_test != c, y_test == c
            recipe = SklearnRecipe("hist-gradient-boosting", {"max_iter": args.max_iter}, seed=seed)
            timings = {}
            for name, exclude in (("original", None), ("retrained", c)):
                start = time.perf_counter()
                train_checkpoint(
                    TrainRequest(
                        out=folder / f"{name}{seed}.skops",
                        data="synthetic",
                        data_options=options,
                        recipe=recipe,
                        exclude_class=exclude,
                    )
                )
                timings[name] = time.perf_counter() - start
            original = sklearn_logits(load_sklearn(folder / f"original{seed}.skops").estimator, data.x, 7)
            retrained = sklearn_logits(load_sklearn(folder / f"retrained{seed}.skops").estimator, data.x, 7)
            outputs = {"original": original, "retrained": retrained}
            for fit in ("renormalize", "retain-sample"):
                out = folder / f"mpru-{fit}{seed}.safetensors"
                result = unlearn_checkpoint(
                    UnlearnRequest(
                        model=folder / f"original{seed}.skops",
                        out=out,
                        method="mpru",
                        params={"fit": fit},
                        forget_class=c,
                        seed=seed,
                    )
                )
                spec = load_filter(out)
                outputs[f"original + mpru {fit}"] = spec.apply(original)
                if fit == "retain-sample":
                    biases = ", ".join(f"{b:+.1e}" for b in spec.bias)
                    print(f"{seed:>4} retain-sample biases a = [{biases}] ({spec.n_retain_sample} examples)")
                timings[f"original + mpru {fit}"] = result.seconds
            reference = retrained[test_rows].argmax(1)
            retrained_acc = float((reference[kept] == y_test[kept]).mean())
            for name, logits in outputs.items():
                pred = logits[test_rows].argmax(1)
                retained_acc = float((pred[kept] == y_test[kept]).mean())
                gap = retained_acc - retrained_acc
                gaps.setdefault(name, []).append(gap)
                print(
                    f"{seed:>4} {name:<32} {float((pred == y_test).mean()):>6.4f} {retained_acc:>8.4f} "
                    f"{gap:>+7.4f} {float((pred == reference).mean()):>6.4f} "
                    f"{float((pred[kept] == reference[kept]).mean()):>7.4f} "
                    f"{float((pred[gone] == reference[gone]).mean()):>7.4f} {timings.get(name, 0.0):>5.1f}"
                )
    print("retained: test accuracy on the retained classes; gap: minus the retrained model's;")
    print("agree: same prediction as the retrained model on all test examples; agree r: on the retained classes'")
    print("test examples; agree c: on the forgotten class's test examples (where neither model can be right)")
    if len(args.seeds) > 1:
        for name, values in gaps.items():
            print(f"mean gap {name:<32} {np.mean(values):+.4f} (max |gap| {np.max(np.abs(values)):.4f})")


if __name__ == "__main__":
    main()
