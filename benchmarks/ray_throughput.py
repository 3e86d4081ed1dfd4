"""Benchmark: shadow throughput built here against Ray tasks on a local cluster of 1 and 2
workers, and on Ray clusters of one and of two nodes, as ratios in one run (docs/scale.md).

    python benchmarks/ray_throughput.py [--shadows 32]

The digits sample's original recipe, plain-LiRA shadows, chunks of 4 shadows. Each Ray
task uses the driver's torch thread count, so "2 workers" means two one-thread tasks at
once. The node rows start separate Ray nodes on this machine (ray.cluster_utils.Cluster:
each its own raylet, CPUs and object store), one CPU each: with two nodes, chunks run on
both and the results of the worker node's chunks cross to the driver through the object
stores, as on a cluster of machines. Needs the ray extra. Run it alone: other work is the
load it would measure.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from audit_cli.auditing.inputs import prepare
from audit_cli.auditing.request import AuditConfig
from audit_cli.shadows import ShadowBank
from audit_cli.shadows.executors import executor

SAMPLES = Path(__file__).resolve().parents[1] / "sample_models"


def timed(spec, shadows: int, run) -> float:
    with tempfile.TemporaryDirectory() as folder:
        bank = ShadowBank(folder, spec, chunk_size=4)
        start = time.perf_counter()
        bank.build(shadows, run=run)
        return time.perf_counter() - start


def main() -> None:
    import ray

    parser = argparse.ArgumentParser(description="shadow throughput, local against Ray")
    parser.add_argument("--shadows", type=int, default=32)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        config = AuditConfig(model=SAMPLES / "digits_mlp_original.safetensors", forget=SAMPLES / "forget_random10.txt",
                             bank=Path(folder), device="cpu")  # fmt: skip
        spec = prepare(config).bank.spec
    rows = []
    torch.set_num_threads(2)
    rows.append(("here, 2 threads", timed(spec, args.shadows, executor("local"))))
    torch.set_num_threads(1)
    rows.append(("here, 1 thread", timed(spec, args.shadows, executor("local"))))
    for workers in (1, 2):
        ray.init(num_cpus=workers, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
        try:
            rows.append((f"Ray, {workers} worker(s) x 1 thread", timed(spec, args.shadows, executor("ray"))))
        finally:
            ray.shutdown()
    from ray.cluster_utils import Cluster

    for nodes in (1, 2):
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "object_store_memory": 80 * 2**20})
        try:
            for _ in range(nodes - 1):
                cluster.add_node(num_cpus=1, object_store_memory=80 * 2**20)
            cluster.wait_for_nodes()
            rows.append((f"Ray, {nodes} node(s) x 1 CPU", timed(spec, args.shadows, executor("ray", cluster.address))))
        finally:
            ray.shutdown()
            cluster.shutdown()
    base = rows[0][1]
    print(f"digits sample, {args.shadows} plain-LiRA shadows in chunks of 4, {torch.get_num_threads()} thread(s)/task")
    for label, seconds in rows:
        print(f"  {label:<28} {seconds:6.2f} s  {args.shadows / seconds:6.1f} shadows/s  ({base / seconds:4.2f}x here)")


if __name__ == "__main__":
    main()
