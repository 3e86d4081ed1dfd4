"""Settings and environment that used to end as internal errors (exit 70) or run away:
each is a one-line usage error (exit 2) before any work."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from audit_cli.app import app
from tests.helpers import assert_error

SAMPLES = Path(__file__).resolve().parents[2] / "sample_models"
RUN = ["run", "--model", str(SAMPLES / "digits_mlp_original.safetensors"), "--forget",
       str(SAMPLES / "forget_random10.txt"), "--fail-above", "0.3", "-q"]  # fmt: skip


@pytest.mark.parametrize("env,pattern", [
    ({"AUDIT_SEED": "-3"}, r"setting seed = -3 \(env AUDIT_SEED\) is outside 0\.\.4294967295"),
    ({"AUDIT_SHADOWS": "1000000000000"}, r"setting shadows = 1000000000000 .* is outside 2\.\.100000"),
    ({"AUDIT_DEVICE": "meta"}, r"unknown device 'meta'"),
    ({"AUDIT_BANK": "/proc/x"}, r"is under /proc"),
])  # fmt: skip
def test_settings_out_of_range_are_usage_errors(runner, tmp_path, monkeypatch, env, pattern):
    monkeypatch.chdir(tmp_path)
    assert_error(runner.invoke(app, RUN, env=env), pattern)
    assert not (tmp_path / ".audit-bank").exists()


def test_a_bank_that_is_a_file_is_refused(runner, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bank").write_text("")
    assert_error(runner.invoke(app, [*RUN, "--bank", "bank"]), r"--bank bank is a file")


def test_a_garbage_source_date_epoch_is_refused_before_numpy_crashes_on_it(tmp_path):
    env = {**os.environ, "SOURCE_DATE_EPOCH": "garbage"}
    done = subprocess.run([sys.executable, "-m", "audit_cli", "datasets"], env=env, capture_output=True, text=True,
                          cwd=tmp_path)  # fmt: skip
    assert done.returncode == 2 and done.stderr.startswith("error: SOURCE_DATE_EPOCH must be whole seconds")
    assert "Traceback" not in done.stderr
