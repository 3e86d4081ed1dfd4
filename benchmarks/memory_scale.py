"""Benchmark: peak memory of `audit run` on a large pool (docs/scale.md).

    python benchmarks/memory_scale.py [--examples 50000] [--shadows 256] [--data cifar10-shaped]

Synthetic tabular data (20 features, 10 classes) of --examples rows, or CIFAR-shaped
images (``cifar10-shaped``: 3x32x32, 10 classes, four fifths of --examples for training),
an MLP (32 hidden units, 2 epochs) as the audited model, 1,000 forget ids; `audit run` in
a child process with a fresh bank, once as a plain-LiRA audit and once with `--method
retrain` (shadows trained and retrained). Peak memory is the child's maximum resident set
size. The bank's signal matrices have the same size for either data (examples x shadows x
classes); the images add the pool itself (50,000 x 3,072 float32: 0.6 GB) and its reads.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Runs `python -m audit_cli ARGS` in a child and prints the child's own peak memory (KiB).
MEASURED = """
import resource, runpy, sys
sys.argv = ["audit", *sys.argv[1:]]
try:
    runpy.run_module("audit_cli", run_name="__main__")
except SystemExit as exc:
    code = exc.code
print("PEAK", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, code, file=sys.stderr)
"""


def audit(*args: str) -> tuple[int, int]:
    """(peak KiB, exit code) of one command in its own process."""
    done = subprocess.run([sys.executable, "-c", MEASURED, *args], capture_output=True, text=True)
    line = next((ln for ln in done.stderr.splitlines() if ln.startswith("PEAK ")), None)
    if line is None or line.split()[2] not in ("0", "1", "3", "None"):
        raise SystemExit(f"audit {' '.join(args[:1])} failed:\n{done.stderr[-2000:]}")
    _, peak, code = line.split()
    return int(peak), int(code) if code != "None" else 0


def main() -> None:
    parser = argparse.ArgumentParser(description="peak memory of audit run at scale")
    parser.add_argument("--examples", type=int, default=50_000)
    parser.add_argument("--shadows", type=int, default=256)
    parser.add_argument("--data", choices=["synthetic", "cifar10-shaped"], default="synthetic")
    args = parser.parse_args()
    if args.data == "synthetic":
        data = ["--data", "synthetic", "--data-opt", f"n_samples={args.examples}", "--data-opt", "n_features=20",
                "--data-opt", "n_classes=10"]  # fmt: skip
    else:
        n_test = args.examples // 5
        data = ["--data", "cifar10-shaped", "--data-opt", f"n_train={args.examples - n_test}", "--data-opt",
                f"n_test={n_test}"]  # fmt: skip
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        audit("train", *data, "--arch", "mlp", "--arch-arg", "hidden=32", "--epochs", "2", "--batch-size", "256",
              "-o", str(work / "m.safetensors"))  # fmt: skip
        audit("forget-list", *data, "--count", "1000", "--seed", "0", "-o", str(work / "f.txt"))
        print(f"{args.data} pool of {args.examples} examples, {args.shadows} shadows, 1,000 forget ids")
        # The retrain audit names the model as its own original (--original is required with a
        # method): the memory is the bank's, whatever the verdict. An audit reads its bank in
        # looks and stops at the first that decides, so the whole bank is built first
        # (`audit shadows`), and each audit says how many shadows it read.
        original = ["--original", str(work / "m.safetensors")]
        model = ["--model", str(work / "m.safetensors"), "--forget", str(work / "f.txt"), "--shadows",
                 str(args.shadows)]  # fmt: skip
        for label, extra in (("plain LiRA", []), ("U-LiRA, --method retrain", ["--method", "retrain"])):
            bank = str(work / label.split()[0].strip(","))
            start = time.perf_counter()
            peak, _ = audit("shadows", *model, "--bank", bank, "-q", *extra)
            print(f"  {label:<26} bank of {args.shadows} built: peak {peak / 1024**2:5.2f} GB, "
                  f"{time.perf_counter() - start:6.1f} s")  # fmt: skip
            start = time.perf_counter()
            report = work / f"report-{len(extra)}.json"
            peak, code = audit("run", *model, "--bank", bank, "--allow-underpowered", "-q", "-f", f"json={report}",
                               *extra, *(original if extra else []))  # fmt: skip
            read = json.loads(report.read_text())["shadows"]["n"]
            print(f"  {label:<26} audit: peak {peak / 1024**2:5.2f} GB, {time.perf_counter() - start:6.1f} s, "
                  f"{read} shadows read (exit {code})")  # fmt: skip

if __name__ == "__main__":
    main()
