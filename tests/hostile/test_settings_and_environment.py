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


def test_numbers_in_artifacts_that_would_run_away_are_refused_first(tmp_path):
    import json

    from audit_cli.data import load_dataset
    from audit_cli.errors import InputError, UsageError
    from audit_cli.models.networks import build_model
    from audit_cli.models.recipe import Recipe

    with pytest.raises(UsageError, match=r"epochs must lie in 1\.\.10000"):
        Recipe(epochs=10**9)
    with pytest.raises(UsageError, match=r"hidden=10000000 is outside 1\.\.16384"):
        build_model("mlp", (8,), 3, {"hidden": (10_000_000,)})
    with pytest.raises(UsageError, match="4000000 samples x 20 features"):
        load_dataset("synthetic", {"n_samples": "4000000"})
    from audit_cli.shadows import BankSpec, ForgetRule, ShadowBank

    data = load_dataset("synthetic", {"n_samples": "240", "n_features": "8", "n_classes": "3"})
    bank = ShadowBank(tmp_path, BankSpec(data, Recipe(), None, ForgetRule(forget_ids=(1, 2))), chunk_size=2)
    bank.path.mkdir(parents=True)
    for manifest, pattern in (({"key": bank.key, "chunk_size": 100_000, "chunks": []}, "chunk_size '100000'"),
                              ({"key": bank.key, "chunk_size": "2", "chunks": []}, "chunk_size '2'"),
                              ([1, 2], "not a JSON object")):  # fmt: skip
        (bank.path / "manifest.json").write_text(json.dumps(manifest))
        with pytest.raises(InputError, match=pattern):
            bank.build(2)


def test_metadata_and_in_memory_ids_that_used_to_crash_are_input_errors():
    import numpy as np

    from audit_cli.data import as_ids
    from audit_cli.errors import CheckpointError, IdFileError
    from audit_cli.models.checkpoint import load_checkpoint
    from audit_cli.models.metadata import CheckpointMeta

    good = load_checkpoint(SAMPLES / "digits_mlp_original.safetensors").meta.to_dict()
    for change, pattern in (({"metrics": [1, 2]}, "malformed"), ({"num_classes": -3}, "num_classes -3"),
                            ({"n_trained": "5"}, "n_trained '5'"), ({"input_shape": []}, "input_shape")):  # fmt: skip
        with pytest.raises(CheckpointError, match=pattern):
            CheckpointMeta.from_dict({**good, **change})
    with pytest.raises(IdFileError, match="too large"):
        as_ids(np.array([2**63], dtype=np.uint64))


def test_metadata_with_a_huge_string_is_refused_before_anything_renders_it():
    from audit_cli.errors import CheckpointError
    from audit_cli.models.checkpoint import load_checkpoint
    from audit_cli.models.metadata import CheckpointMeta

    good = load_checkpoint(SAMPLES / "digits_mlp_original.safetensors").meta.to_dict()
    with pytest.raises(CheckpointError, match="holds a 5000000-character string"):
        CheckpointMeta.from_dict({**good, "tool_version": "x" * 5_000_000})
