"""Benchmark: `audit run` alone and beside busy processes, as ratios taken in one run.

    python benchmarks/contention.py [--shadows 64] [--timeout 180]

Each audit is a fresh `python -m audit_cli run` on the digits sample (original model,
sample forget list, a new bank: every shadow trained), so the thread choice made at start
(audit_cli/cli/threads.py) is what is measured. Busy processes are single-threaded Python
loops (`while True: pass`), the kind of background work a CI runner or a laptop has.
Each load is measured with the tool's choice (AUDIT_THREADS=auto) and with torch's
defaults (AUDIT_THREADS=off, the behaviour before); a run over the timeout is reported as
such. Never run it beside the tests or another benchmark: that is the load it measures.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SAMPLES = Path(__file__).resolve().parents[1] / "sample_models"


def timed_audit(setting: str, shadows: int, timeout: float) -> float | None:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "MKL_NUM_THREADS")}
    env["AUDIT_THREADS"] = setting
    with tempfile.TemporaryDirectory() as bank:
        args = [sys.executable, "-m", "audit_cli", "run", "--model", str(SAMPLES / "digits_mlp_original.safetensors"),
                "--forget", str(SAMPLES / "forget_random10.txt"), "--shadows", str(shadows), "--bank", bank,
                "--allow-underpowered", "--device", "cpu", "-q"]  # fmt: skip
        start = time.perf_counter()
        try:
            subprocess.run(args, env=env, capture_output=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            return None
        return time.perf_counter() - start


def busy(n: int) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser(description="audit run alone and beside busy processes")
    parser.add_argument("--shadows", type=int, default=64)
    parser.add_argument("--timeout", type=float, default=180.0)
    args = parser.parse_args()
    results: dict[tuple[int, str], float | None] = {}
    for load in (0, 1, 2):
        for setting in ("auto", "off"):
            workers = busy(load)
            try:
                time.sleep(0.5)  # let the busy loops show in /proc/loadavg's runnable count
                results[load, setting] = timed_audit(setting, args.shadows, args.timeout)
            finally:
                for w in workers:
                    w.kill()
                    w.wait()

    def show(t: float | None) -> str:
        return f"{t:7.1f} s" if t is not None else f"  >{args.timeout:.0f} s"

    alone = results[0, "auto"]
    print(f"digits sample, {args.shadows} shadows, {os.cpu_count()} CPUs; ratios against the tool alone")
    for load, label in ((0, "alone"), (1, "beside 1 busy process"), (2, "beside 2 busy processes")):
        parts = []
        for setting in ("auto", "off"):
            t = results[load, setting]
            ratio = f"{t / alone:5.2f}x" if t is not None and alone else "   -  "
            parts.append(f"{setting:>4}: {show(t)} ({ratio})")
        print(f"  {label:<26} " + "   ".join(parts))


if __name__ == "__main__":
    main()
