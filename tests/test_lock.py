"""The bank lock (audit_cli/shadows/lock.py): a live holder is waited for up to the lock
timeout and then named in one error; a dead holder on this host and a holder anywhere
whose heartbeat stopped are taken over, on filesystems with and without the atomic
rename filelock uses; the timeout is a setting like the others, honoured by every
command that builds a bank."""

from __future__ import annotations

import errno
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from audit_cli.errors import InputError, UsageError
from audit_cli.shadows.lock import LOCK, STALE_AFTER, bank_lock
from tests.helpers import assert_error, invoke

SAMPLES = Path(__file__).resolve().parents[1] / "sample_models"


def lease_record(host: str, pid: int, duration: float = STALE_AFTER) -> str:
    """A lock file as filelock's SoftFileLease writes it (the format bank_lock writes)."""
    return f"filelock/2\npid={pid}\nhost={host}\nmode=lease\ntoken={'ab' * 16}\nduration={duration!r}\n"


# The two formats a lock file held by process 12345 on another host can have: this tool's
# since it uses filelock, and its older one.
OTHER_HOST = {"filelock": lease_record("otherhost", 12345), "older": "otherhost 12345\n"}


def dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


@pytest.fixture
def no_rename_exchange(monkeypatch):
    """A filesystem like NFS, SMB or Lustre, whose rename refuses RENAME_EXCHANGE (EINVAL):
    filelock cannot take a stale lock over there, and bank_lock must."""
    import filelock._filesystem._exchange as exchange

    monkeypatch.setattr(exchange, "_rename_call", lambda: ((lambda source, target, flags: errno.EINVAL), 2))


@pytest.mark.parametrize("written_by", sorted(OTHER_HOST))
def test_a_live_holder_on_another_host_is_named_once_the_timeout_runs_out(tmp_path, written_by):
    lock = tmp_path / LOCK
    lock.write_text(OTHER_HOST[written_by])
    start = time.monotonic()
    with pytest.raises(InputError) as caught:
        with bank_lock(tmp_path, timeout=0.5):
            pytest.fail("the lock was taken from a live holder")
    waited = time.monotonic() - start
    assert 0.5 <= waited < 5, waited
    error = caught.value
    assert "pid 12345 on otherhost" in error.message and str(lock) in error.message
    assert "gave up after 0.5 s" in error.message
    assert f"delete {lock}" in error.hint and "--lock-timeout" in error.hint
    assert lock.read_text() == OTHER_HOST[written_by], "the holder's lock file is left alone"


def test_a_timeout_of_zero_does_not_wait(tmp_path):
    (tmp_path / LOCK).write_text(OTHER_HOST["filelock"])
    start = time.monotonic()
    with pytest.raises(InputError, match="gave up after 0 s"):
        with bank_lock(tmp_path, timeout=0):
            pass
    assert time.monotonic() - start < 0.4


@pytest.mark.parametrize("timeout", [-1.0, float("nan"), float("inf")])
def test_a_timeout_that_is_not_a_finite_wait_is_refused(tmp_path, timeout):
    with pytest.raises(UsageError, match="lock timeout must be a finite number of seconds"):
        with bank_lock(tmp_path, timeout=timeout):
            pass


@pytest.mark.parametrize("filesystem", ["local", "without RENAME_EXCHANGE"])
def test_a_lock_from_another_host_whose_heartbeat_stopped_is_taken_over(tmp_path, request, filesystem):
    if filesystem != "local":
        request.getfixturevalue("no_rename_exchange")
    lock = tmp_path / LOCK
    lock.write_text(lease_record("otherhost", 12345, duration=0.5))
    os.utime(lock, (0, 0))  # written in 1970: still, staleness is timed from when the waiter saw it
    start = time.monotonic()
    with bank_lock(tmp_path, timeout=10, stale_after=0.5):
        took = time.monotonic() - start
        assert f"pid={os.getpid()}\n" in lock.read_text()
    assert 0.5 <= took < 3, took
    assert not lock.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [], "nothing left beside the lock"


def test_a_holder_that_keeps_refreshing_its_lock_keeps_it(tmp_path):
    lock = tmp_path / LOCK
    lock.write_text(lease_record("otherhost", 12345, duration=0.5))
    stop = threading.Event()

    def heartbeat() -> None:  # the other host's run, alive: its file changes every 0.1 s
        while not stop.wait(0.1):
            os.utime(lock)

    beating = threading.Thread(target=heartbeat)
    beating.start()
    try:
        with pytest.raises(InputError, match="pid 12345 on otherhost"):
            with bank_lock(tmp_path, timeout=1.5, stale_after=0.5):
                pytest.fail("a refreshed lock was taken over")
    finally:
        stop.set()
        beating.join()


HOLD_AND_DIE = """
import os, sys
from pathlib import Path
from audit_cli.shadows.lock import bank_lock
with bank_lock(Path(sys.argv[1]), timeout=0):
    os._exit(0)  # killed while building: the lock file stays
"""


@pytest.mark.parametrize("filesystem", ["local", "without RENAME_EXCHANGE"])
@pytest.mark.parametrize("written_by", ["filelock", "older"])
def test_a_lock_left_by_a_dead_process_on_this_host_is_taken_over_at_once(tmp_path, request, filesystem, written_by):
    if filesystem != "local":
        request.getfixturevalue("no_rename_exchange")
    lock = tmp_path / LOCK
    if written_by == "filelock":
        subprocess.run([sys.executable, "-c", HOLD_AND_DIE, str(tmp_path)], check=True)
        assert lock.read_text().startswith("filelock/2\n")
    else:
        lock.write_text(f"{socket.gethostname()} {dead_pid()}\n")
    left = lock.read_text()
    start = time.monotonic()
    with bank_lock(tmp_path, timeout=10):  # staleness would take 5 minutes: the pid decides
        assert time.monotonic() - start < 1.5
        assert lock.read_text() != left and f"pid={os.getpid()}\n" in lock.read_text()
    assert not lock.exists()


@pytest.mark.usefixtures("no_rename_exchange")
def test_the_timeout_holds_when_a_stale_lock_cannot_be_removed(tmp_path, monkeypatch):
    import audit_cli.shadows.lock as lock_module

    monkeypatch.setattr(lock_module, "_take_over", lambda lock, judged: False)  # say, a read-only folder
    (tmp_path / LOCK).write_text(f"{socket.gethostname()} {dead_pid()}\n")
    start = time.monotonic()
    with pytest.raises(InputError, match="gave up after 0.5 s"):
        with bank_lock(tmp_path, timeout=0.5):
            pass
    assert time.monotonic() - start < 5


def test_a_build_that_lost_its_lock_stops_before_writing(tmp_path):
    lock = tmp_path / LOCK
    with bank_lock(tmp_path, timeout=1, stale_after=0.3) as held:
        held()  # still ours
        # The user followed the hint and deleted the file; another run then took the lock.
        lock.unlink()
        lock.write_text(lease_record("otherhost", 12345, duration=0.3))
        deadline = time.monotonic() + 5
        with pytest.raises(InputError, match=r"lost the shadow bank's lock .* now held by pid 12345 on otherhost"):
            while time.monotonic() < deadline:  # the heartbeat notices within two beats
                held()
                time.sleep(0.02)
    assert lock.read_text() == lease_record("otherhost", 12345, duration=0.3), "the new holder's file is kept"


# -- the setting ------------------------------------------------------------------------


def test_the_lock_timeout_is_a_setting_from_flag_env_file_or_default(tmp_path):
    from audit_cli.config import resolve_settings

    assert resolve_settings({}, env={}, cwd=tmp_path)["lock_timeout"].value == 3600.0
    (tmp_path / "audit.toml").write_text("lock-timeout = 30\n")
    s = resolve_settings({}, env={}, cwd=tmp_path)["lock_timeout"]
    assert (s.value, s.source) == (30.0, str(tmp_path / "audit.toml"))
    s = resolve_settings({}, env={"AUDIT_LOCK_TIMEOUT": "12.5"}, cwd=tmp_path)["lock_timeout"]
    assert (s.value, s.source) == (12.5, "env AUDIT_LOCK_TIMEOUT")
    s = resolve_settings({"lock_timeout": 2.0}, env={"AUDIT_LOCK_TIMEOUT": "12.5"}, cwd=tmp_path)["lock_timeout"]
    assert (s.value, s.source) == (2.0, "flag")
    for bad, message in (("-1", "outside 0..604800"), ("nan", "outside"), ("soon", "expected float")):
        with pytest.raises(UsageError, match=message):
            resolve_settings({}, env={"AUDIT_LOCK_TIMEOUT": bad}, cwd=tmp_path)


def test_the_sweep_passes_its_lock_timeout_to_every_points_audit(tmp_path):
    from audit_cli.auditing.sweep import SweepRequest, audit_config

    request = SweepRequest(model=tmp_path / "m", method="finetune", grid={}, out=tmp_path / "o", lock_timeout=7.0)
    assert audit_config(request, tmp_path / "m", 0).lock_timeout == 7.0


def test_audit_sweep_reads_audit_lock_timeout(runner, tmp_path):
    result = invoke(runner, "sweep", "--model", SAMPLES / "digits_mlp_original.safetensors", "--method",
                    "finetune", "--param", "epochs=1,2", "-o", tmp_path / "out",
                    env={"AUDIT_LOCK_TIMEOUT": "-5"})  # fmt: skip
    assert_error(result, r"setting lock-timeout = -5\.0 \(env AUDIT_LOCK_TIMEOUT\) is outside")


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """A bank folder `audit shadows`/`audit run` on the digits sample model will use, its
    lock held by a live run on another host."""
    from audit_cli.auditing.inputs import prepare
    from audit_cli.auditing.request import AuditConfig

    root = tmp_path_factory.mktemp("locked")
    config = AuditConfig(model=SAMPLES / "digits_mlp_original.safetensors", forget=SAMPLES / "forget_random10.txt",
                         shadows=2, bank=root / "bank", device="cpu")  # fmt: skip
    folder = prepare(config).bank.path
    folder.mkdir(parents=True)
    (folder / LOCK).write_text(OTHER_HOST["filelock"])
    return root, folder / LOCK


def _shadows_args(root: Path) -> list[object]:
    return ["--model", SAMPLES / "digits_mlp_original.safetensors", "--forget", SAMPLES / "forget_random10.txt",
            "--shadows", "2", "--bank", root / "bank", "--device", "cpu", "-q"]  # fmt: skip


WAITING = "waiting for the shadow bank's lock, held by pid 12345 on otherhost (at most 0.5 s: --lock-timeout)"


def after_the_notice(result):
    """The result with its first stderr line, the notice that the run is waiting for the
    bank's lock (a CI log shows why it stalls), checked and taken off: the error follows."""
    notice, _, rest = result.stderr.partition("\n")
    assert notice == WAITING, result.stderr

    class Rest:
        exit_code, exception, output, stdout, stderr = (result.exit_code, result.exception, rest, result.stdout,
                                                        rest)  # fmt: skip

    return Rest


def test_audit_shadows_gives_up_after_lock_timeout_naming_the_holder(runner, planted, monkeypatch):
    root, lock = planted
    monkeypatch.chdir(root)
    start = time.monotonic()
    result = invoke(runner, "shadows", *_shadows_args(root), "--lock-timeout", "0.5")
    assert time.monotonic() - start >= 0.5
    line = assert_error(after_the_notice(result), r"locked by pid 12345 on otherhost",
                        hint=rf"delete {lock}.*--lock-timeout")  # fmt: skip
    assert str(lock) in line and "gave up after 0.5 s" in line
    assert not list(lock.parent.glob("*.parquet")), "nothing was trained"


def test_audit_run_reads_the_lock_timeout_from_the_environment(runner, planted, monkeypatch):
    root, lock = planted
    monkeypatch.chdir(root)
    result = invoke(runner, "run", *_shadows_args(root), "--allow-underpowered",
                    env={"AUDIT_LOCK_TIMEOUT": "0.5"})  # fmt: skip
    assert_error(after_the_notice(result), r"locked by pid 12345 on otherhost.*gave up after 0\.5 s")
    assert lock.read_text() == OTHER_HOST["filelock"]


def test_a_holder_named_with_control_characters_is_quoted_escaped(tmp_path):
    # The lock file is anyone's who can write the bank folder: its host must not reach the
    # terminal as escape codes, in the error or in the waiting notice.
    (tmp_path / LOCK).write_text(lease_record("other\x1b[2Jhost", 12345))
    told = []
    with pytest.raises(InputError) as caught:
        with bank_lock(tmp_path, timeout=0.2, waiting=told.append):
            pytest.fail("the lock was taken from a live holder")
    assert "pid 12345 on 'other\\x1b[2Jhost'" in caught.value.message
    assert told == ["pid 12345 on 'other\\x1b[2Jhost'"]


def test_the_lock_timeout_does_not_apply_to_an_imported_bank(runner, tmp_path):
    result = invoke(runner, "run", "--model", SAMPLES / "digits_mlp_original.safetensors", "--shadows-from",
                    tmp_path, "--lock-timeout", "5")  # fmt: skip
    assert_error(result, "--shadows-from scores an imported bank whole .*--lock-timeout does not apply")
