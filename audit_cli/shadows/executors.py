"""Where a bank's chunks are built: here (``local``), or as Ray tasks on a cluster (``ray``).

Either way the driver writes each finished chunk and the manifest itself, exactly as a
local build does, so a bank built on a cluster is the bank built locally, bit for bit:
a chunk's content depends only on the bank's spec and the shadows' indices, and each
task runs with the driver's torch thread count (float reductions follow it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from audit_cli.errors import UsageError

EXECUTORS = ("local", "ray")


def run_local(fn: Callable[[Any], Any], items: Sequence[Any]) -> Iterator[tuple[Any, Any]]:
    """(item, fn(item)) in order, here."""
    for item in items:
        yield item, fn(item)


def run_on_ray(fn: Callable[[Any], Any], items: Sequence[Any], address: str | None = None) -> Iterator[tuple[Any, Any]]:
    """(item, fn(item)) as Ray tasks finish, each asking for the driver's torch threads in
    CPUs (at most a node's); connects to ``address`` (or RAY_ADDRESS), or starts a local
    Ray when neither names a cluster."""
    try:
        import ray
    except ImportError:
        hint = "pip install ray (the ray extra: pip install -e '.[ray]' in a clone)"
        raise UsageError("--executor ray needs Ray", hint=hint) from None
    import torch

    threads = torch.get_num_threads()

    def task(item: Any) -> Any:
        import torch as worker_torch

        worker_torch.set_num_threads(threads)  # the driver's: float reductions follow the thread count
        return fn(item)

    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    # A task asking for more CPUs than any node has would wait forever: ask for at most the
    # largest node's (the task still runs the driver's thread count). No node with a CPU yet
    # (an autoscaling cluster's workers start from zero): one CPU, which any worker has.
    largest = max((node["Resources"].get("CPU", 0) for node in ray.nodes() if node.get("Alive")), default=0)
    remote = ray.remote(num_cpus=min(threads, int(largest)) if largest >= 1 else 1)(task)
    pending = {remote.remote(item): item for item in items}
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        for ref in done:
            yield pending.pop(ref), ray.get(ref)


def executor(name: str, address: str | None = None) -> Callable[[Callable[[Any], Any], Sequence[Any]], Iterator]:
    if name == "local":
        return run_local
    if name == "ray":
        return lambda fn, items: run_on_ray(fn, items, address)
    raise UsageError(f"--executor must be {' or '.join(EXECUTORS)}, got {name!r}")
