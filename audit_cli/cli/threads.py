"""How many threads torch may use, chosen before torch starts its thread pool.

torch's OpenMP threads spin while they wait for work. Alone on a machine that is fastest;
beside one other busy process on two cores it is a collapse, not a slowdown: a spinning
thread holds the core the other process needs and the two take turns by the scheduler's
tick (one training run went from 1.4 s to 142 s). So the command line looks, once at
start, at the CPUs this process may use (its affinity and its cgroup's CPU quota) and at
how many other tasks are runnable right now (``/proc/loadavg``), and sets
``OMP_NUM_THREADS`` to the CPUs left free (at least one) and, when anything else is
running, ``OMP_WAIT_POLICY=PASSIVE`` so that waiting threads sleep instead of spinning.
Alone, it leaves torch's defaults (every usable CPU, spinning).

Variables the user set win; ``AUDIT_THREADS`` overrides the choice (``auto``, the default;
``off``: torch's defaults; or a number). Python API users import torch themselves: call
``configure_threads()`` before importing torch, or set the variables (docs/performance.md).
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ThreadPlan:
    threads: int | None
    """OMP_NUM_THREADS to set; None: leave torch's default."""
    passive: bool
    """Whether to set OMP_WAIT_POLICY=PASSIVE (waiting threads sleep)."""
    reason: str


def usable_cpus() -> int:
    """CPUs this process may run on: its affinity, capped by a cgroup CPU quota."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    quota = _cgroup_quota()
    return max(1, min(cpus, math.floor(quota)) if quota else cpus)


def _cgroup_quota() -> float | None:
    """CPUs allowed by the cgroup (v2 cpu.max, or v1 cfs quota/period); None: no limit."""
    try:
        text = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if text and text[0] != "max":
            return int(text[0]) / int(text[1])
        return None
    except (OSError, ValueError, IndexError):
        pass
    try:
        quota = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
        period = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
        return quota / period if quota > 0 and period > 0 else None
    except (OSError, ValueError):
        return None


def other_runnable() -> int:
    """Tasks runnable now besides this one (the 4th field of /proc/loadavg counts them,
    this process included); 0 when unknown."""
    try:
        running = int(Path("/proc/loadavg").read_text().split()[3].split("/")[0])
    except (OSError, ValueError, IndexError):
        return 0
    return max(0, running - 1)


def plan_threads(env: dict[str, str] | None = None, cpus: int | None = None, busy: int | None = None) -> ThreadPlan:
    """The threads and wait policy for this process, from the setting and the machine."""
    env = dict(os.environ) if env is None else env
    setting = env.get("AUDIT_THREADS", "auto").strip().lower()
    if setting == "off":
        return ThreadPlan(None, False, "AUDIT_THREADS=off: torch's defaults")
    if setting != "auto":
        try:
            n = int(setting)
        except ValueError:
            n = 0
        if n < 1:
            return ThreadPlan(None, False, f"AUDIT_THREADS={setting!r} is not auto, off or a positive number: ignored")
        return ThreadPlan(n, False, f"AUDIT_THREADS={n}")
    cpus = usable_cpus() if cpus is None else cpus
    busy = other_runnable() if busy is None else busy
    if busy == 0:
        return ThreadPlan(cpus, False, f"{cpus} usable CPU(s), nothing else running")
    free = max(1, cpus - busy)
    return ThreadPlan(free, True, f"{cpus} usable CPU(s), {busy} other task(s) running: {free} thread(s), passive")


def configure_threads(env: dict[str, str] | None = None) -> ThreadPlan | None:
    """Apply the plan to the environment, before torch is imported; variables the user set
    are kept. Returns the plan, or None when torch is already imported (too late)."""
    if "torch" in sys.modules:
        return None
    target = os.environ if env is None else env
    plan = plan_threads(dict(target))
    if plan.threads is not None:
        target.setdefault("OMP_NUM_THREADS", str(plan.threads))
    if plan.passive:
        target.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return plan
