"""Shadow chunks built as Ray tasks on a local 2-CPU Ray cluster land in the same bank
format and manifest as a local build, and the signals are equal bit for bit."""

import numpy as np
import pytest
import torch

from audit_cli.data import load_dataset
from audit_cli.models.recipe import Recipe
from audit_cli.shadows import BankSpec, ForgetRule, ShadowBank, read_bank
from audit_cli.shadows.executors import executor
from audit_cli.unlearn import get_method, resolve_unlearning

ray = pytest.importorskip("ray", reason="the ray extra (in the test extra, so CI runs this)")


@pytest.mark.slow
def test_a_bank_built_on_ray_equals_the_local_one(tmp_path):
    data = load_dataset("synthetic", {"n_samples": "240", "n_features": "8", "n_classes": "3", "flip_y": "0.2"})
    recipe = Recipe(arch="mlp", arch_args={"hidden": (32,)}, epochs=10, lr=0.01, batch_size=32)
    forget = tuple(int(i) for i in np.random.default_rng(0).choice(data.train_ids, 20, replace=False))
    rule = ForgetRule(forget_ids=forget, negatives=tuple(int(i) for i in data.test_ids))
    unlearning = resolve_unlearning(get_method("finetune"), {"epochs": "1"}, "none", data)
    spec = BankSpec(data, recipe, unlearning, rule)
    # More driver threads than the cluster's node has CPUs: the tasks must still be scheduled.
    threads = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        local = ShadowBank(tmp_path / "local", spec, chunk_size=2)
        assert local.build(6) == 6
        ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
        remote = ShadowBank(tmp_path / "ray", spec, chunk_size=2)
        assert remote.build(6, run=executor("ray")) == 6
        assert remote.build(6, run=executor("ray")) == 0  # complete: nothing is sent again
    finally:
        ray.shutdown()
        torch.set_num_threads(threads)
    assert sorted(p.name for p in remote.path.iterdir()) == sorted(p.name for p in local.path.iterdir())
    a, b = read_bank(local.path), read_bank(remote.path)
    for name in ("states", "phi_before", "phi_after", "logits_after"):
        assert np.array_equal(getattr(a, name), getattr(b, name), equal_nan=True), name


def node_of(seconds: float) -> str:
    """The Ray node a task ran on (it sleeps, so that tasks overlap and spread)."""
    import time

    time.sleep(seconds)
    return ray.get_runtime_context().get_node_id()


@pytest.mark.slow
def test_a_bank_built_on_two_ray_nodes_equals_the_local_one_and_uses_both(tmp_path):
    # A head and a worker started as separate Ray nodes on this machine (ray.cluster_utils:
    # each its own raylet, CPUs and object store), one CPU each: chunks run on both, and
    # what a task on the worker node returns crosses to the driver through the object stores.
    from ray.cluster_utils import Cluster

    data = load_dataset("synthetic", {"n_samples": "240", "n_features": "8", "n_classes": "3", "flip_y": "0.2"})
    recipe = Recipe(arch="mlp", arch_args={"hidden": (32,)}, epochs=10, lr=0.01, batch_size=32)
    forget = tuple(int(i) for i in np.random.default_rng(0).choice(data.train_ids, 20, replace=False))
    spec = BankSpec(data, recipe, None, ForgetRule(forget_ids=forget, negatives=tuple(int(i) for i in data.test_ids)))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "object_store_memory": 80 * 2**20})
    try:
        cluster.add_node(num_cpus=1, object_store_memory=80 * 2**20)
        cluster.wait_for_nodes()
        local = ShadowBank(tmp_path / "local", spec, chunk_size=2)
        assert local.build(8) == 8
        run = executor("ray", cluster.address)
        nodes = {node for _, node in run(node_of, [1.0, 1.0, 1.0, 1.0])}
        assert len(nodes) == 2 and len([n for n in ray.nodes() if n["Alive"]]) == 2
        remote = ShadowBank(tmp_path / "ray", spec, chunk_size=2)
        assert remote.build(8, run=run) == 8
    finally:
        ray.shutdown()
        cluster.shutdown()
        torch.set_num_threads(threads)
    a, b = read_bank(local.path), read_bank(remote.path)
    assert sorted(p.name for p in remote.path.iterdir()) == sorted(p.name for p in local.path.iterdir())
    for name in ("states", "phi_before", "phi_after"):
        assert np.array_equal(getattr(a, name), getattr(b, name), equal_nan=True), name
