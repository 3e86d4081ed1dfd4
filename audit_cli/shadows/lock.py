"""One builder at a time per bank: a lock file in the bank folder that names its holder.

Two runs that share a new bank would otherwise both train chunk 0 and race to write the
manifest. The second run waits for the lock, then reads the manifest again and trains
only what is still missing.

The lock is filelock's ``SoftFileLease``: a file created exclusively (``O_CREAT|O_EXCL``)
holding the owner's host, process id and process start time, whose modification time
the holder refreshes from a background thread (a heartbeat) while it builds. Not
``FileLock``: that is ``fcntl``/``flock``, which on NFS works across hosts only where the
mount has a working lock manager (a ``nolock`` mount, common on clusters and in
containers, makes it host-local and two hosts would both build), is unsupported on some
cluster filesystems, and cannot say who holds it. An exclusive create is atomic on NFSv3
and later, SMB and local filesystems alike, and the file says whom to ask.

Who gets a held lock, checked at every poll (``POLL_SECONDS``):

1. A holder on this host whose process is gone (killed, crashed) loses it at once.
   filelock compares the process's start time too, so a recycled pid does not keep a
   dead holder's lock, and it marks a container's pid namespace in the host name, so two
   containers that share a host name do not judge each other's pids.
2. A holder on another host cannot be probed, so its heartbeat decides: a lock file that
   has not changed for ``STALE_AFTER`` seconds (the holder refreshes it every tenth of
   that) is stale and taken over. Staleness is timed on the waiter's own monotonic clock
   from when it first saw the file as it is, never by comparing the file's mtime with
   the waiter's clock, so hosts and the file server need not agree on the time; a waiter
   that finds a long-dead lock therefore waits ``STALE_AFTER`` before taking it.
   ``STALE_AFTER`` is 5 minutes: the 30 s heartbeat plus the up to 60 s an NFS client
   may cache a file's attributes leaves a live holder three times that margin, and five
   minutes is short next to a bank build. A holder stalled longer than that (suspended,
   swapping, a paused VM) loses the lock; its build sees so (``held``) and stops before
   writing the manifest again, leaving the bank to the run that took over.
3. Otherwise the waiter waits up to its timeout (``--lock-timeout``, audit_cli/config.py),
   then stops with one error naming the holder and the lock file.

filelock takes stale locks over with an atomic rename exchange (``renameat2``
``RENAME_EXCHANGE``), which NFS, SMB and Lustre refuse; there it would wait for a stale
lock forever. So rules 1 and 2 are also applied here with a plain rename: the stale file
is moved aside, then deleted only if it is the file that was judged stale.

A lock file written by a version of this tool before filelock (``HOST PID``) carries no
heartbeat. Its holder is still named and a dead one on this host is still taken over at
once; any other is taken over as stale, by filelock after 2 s (to filelock it is an
unreadable record) or, where filelock cannot rename, after ``STALE_AFTER``. Stop older
runners sharing a bank before upgrading.
"""

from __future__ import annotations

import math
import os
import secrets
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from filelock import LeaseSettingsMismatch, SoftFileLease, Timeout

from audit_cli.errors import InputError, UsageError
from audit_cli.files import CONTROL_CHARACTERS

LOCK = ".lock"
POLL_SECONDS = 0.5
STALE_AFTER = 300.0
"""Seconds a lock file may go unchanged before a waiter takes it over (rule 2 above). The
lock file records it; filelock will not take over a lock recorded with another value (a
run of another version), so ``bank_lock`` judges such a lock by the value it records."""


@dataclass(frozen=True)
class Holder:
    """Who a lock file says holds the lock."""

    host: str
    pid: int
    stale_after: float | None
    """The staleness its holder promised to refresh within; None: a record without one."""

    def __str__(self) -> str:
        # The host comes from a file anyone who can write the bank folder can write: quoted
        # escaped if it holds a control character, so an error line cannot rewrite a terminal.
        host = repr(self.host) if CONTROL_CHARACTERS.search(self.host) else self.host
        return f"pid {self.pid} on {host}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def read_holder(lease: SoftFileLease, lock: Path) -> Holder | None:
    """The holder a lock file records (filelock's record, or this tool's older ``HOST PID``);
    None while it is being written, or when unreadable."""
    owner = lease.owner
    if owner is not None:
        return Holder(owner.hostname, owner.pid, owner.lease_duration)
    try:
        host, pid = lock.read_text().split()
        return Holder(host, int(pid), None)
    except (OSError, ValueError, UnicodeDecodeError):
        return None


def _identity(st: os.stat_result) -> tuple[int, int, int, int]:
    # A heartbeat changes mtime and ctime; a new holder's file has another inode.
    return st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size


def _same_file(a: os.stat_result, b: os.stat_result) -> bool:
    # Without ctime, which the rename aside itself changes.
    return (a.st_dev, a.st_ino, a.st_mtime_ns, a.st_size) == (b.st_dev, b.st_ino, b.st_mtime_ns, b.st_size)


def _stale(holder: Holder | None, unchanged_for: float, stale_after: float) -> bool:
    # Rule 1 by pid only where the record's host is this host's plain name: filelock adds
    # a container's pid namespace to the name, and such a record is judged by age alone.
    # On Windows os.kill(pid, 0) would stop the process, and filelock's own rename works.
    if holder is not None and os.name == "posix" and holder.host == socket.gethostname() and holder.pid != os.getpid():
        if not _alive(holder.pid):
            return True
    limit = holder.stale_after if holder is not None and holder.stale_after else stale_after
    return unchanged_for >= limit


def _take_over(lock: Path, judged: os.stat_result) -> bool:
    """Remove the stale lock file ``judged`` with plain renames (see the module docstring);
    whether it was removed."""
    aside = lock.with_name(f"{lock.name}.stale.{os.getpid()}.{secrets.token_hex(8)}")
    try:
        if not _same_file(os.lstat(lock), judged):
            return False  # refreshed or replaced since it was judged
        os.rename(lock, aside)
    except FileNotFoundError:
        return False  # another waiter took it over first
    removed = _same_file(os.lstat(aside), judged)
    if not removed:
        # A new holder's file was created between the check and the rename: put it back.
        # Should a third run have created one meanwhile, the moved holder's heartbeat finds
        # its file gone and its build stops (``held``).
        with suppress(OSError):
            os.link(aside, lock)
    aside.unlink(missing_ok=True)
    return removed


def _gave_up(lock: Path, holder: Holder | None, timeout: float) -> InputError:
    who = str(holder) if holder is not None else "another run (its lock file is unreadable)"
    with suppress(OSError):
        who += f", last refreshed {max(time.time() - lock.stat().st_mtime, 0):.0f} s ago"
    return InputError(
        f"the shadow bank is locked by {who} (lock file {lock}); gave up after {timeout:g} s",
        hint=f"if that run is gone, delete {lock}; if it is still building this bank, wait for it "
        "or raise --lock-timeout (AUDIT_LOCK_TIMEOUT)",
    )


@contextmanager
def bank_lock(
    folder: Path,
    *,
    timeout: float,
    stale_after: float = STALE_AFTER,
    waiting: Callable[[str], None] | None = None,
) -> Iterator[Callable[[], None]]:
    """Hold ``folder``'s lock for the block, waiting at most ``timeout`` seconds for it
    (InputError naming the holder after that). Yields ``held()``, which raises InputError
    once another run has taken the lock over; call it before each write. ``waiting(holder)``
    is called once if another process holds the lock."""
    if not 0 <= timeout < math.inf:  # NaN too: the settings refuse it, a Python caller may not
        raise UsageError(f"the lock timeout must be a finite number of seconds, 0 or more; got {timeout!r}")
    lock = folder / LOCK
    lease = SoftFileLease(lock, lease_duration=stale_after, heartbeat_interval=stale_after / 10, mode=0o644)
    deadline = time.monotonic() + timeout
    seen: tuple[int, int, int, int] | None = None
    seen_since = 0.0
    told = False
    while True:
        try:
            lease.acquire(blocking=False)
            break
        except (Timeout, LeaseSettingsMismatch):
            pass  # held; a lease with another staleness is judged below by its own
        holder = read_holder(lease, lock)
        now = time.monotonic()
        try:
            st = os.lstat(lock)
        except FileNotFoundError:
            st = None  # released since the attempt
        if st is not None:
            if _identity(st) != seen:
                seen, seen_since = _identity(st), now
            if _stale(holder, now - seen_since, stale_after) and _take_over(lock, st):
                continue  # free now: try again at once
        if waiting is not None and not told:
            waiting(str(holder) if holder is not None else "another process")
            told = True
        if now >= deadline:
            raise _gave_up(lock, holder, timeout)
        time.sleep(min(POLL_SECONDS, deadline - now))

    def held() -> None:
        if (lost := lease.compromise) is not None:
            taker = read_holder(lease, lock)
            # Its file was deleted, or taken over by a run that saw it unchanged for
            # stale_after seconds (this process was suspended): the two must not both
            # write the manifest, and the other one holds the lock.
            raise InputError(
                f"lost the shadow bank's lock {lock} ({lost.reason}; now held by {taker or 'nobody'}); "
                "stopped before writing the manifest",
                hint="rerun once the other run is done: the chunks this run recorded are kept",
            )

    try:
        yield held
    finally:
        lease.release()
