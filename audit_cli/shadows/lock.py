"""One builder at a time per bank: a lock file holding the owner's host and process id.

Two runs that share a new bank would otherwise both train chunk 0 and race to write the
manifest. The second run waits for the lock, then reads the manifest again and trains
only what is still missing. A lock left by a process that no longer exists on this host
(killed, crashed) is taken over; a lock from another host is waited for, since its
process cannot be checked from here.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

LOCK = ".lock"
POLL_SECONDS = 0.5


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _stale(lock: Path) -> bool:
    try:
        host, pid = lock.read_text().split()
        return host == socket.gethostname() and not _alive(int(pid))
    except (OSError, ValueError):
        return False  # being written right now, or unreadable: wait rather than break it


@contextmanager
def bank_lock(folder: Path, waiting: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold ``folder``'s lock for the block; ``waiting(owner)`` is called once if another
    process holds it."""
    lock = folder / LOCK
    told = False
    while True:
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            if _stale(lock):
                lock.unlink(missing_ok=True)
                continue
            if waiting is not None and not told:
                try:
                    waiting(lock.read_text().strip())
                except OSError:
                    waiting("another process")
                told = True
            time.sleep(POLL_SECONDS)
            continue
        with os.fdopen(fd, "w") as fh:
            fh.write(f"{socket.gethostname()} {os.getpid()}\n")
        break
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)
