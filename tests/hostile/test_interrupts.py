"""SIGINT during bank construction: the write in flight is dropped, exit 130, the bank stays valid."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pyarrow.parquet as pq
import pytest

from audit_cli.data import load_dataset, write_id_file
from audit_cli.models.recipe import Recipe
from audit_cli.repair.train_checkpoint import TrainRequest, train_checkpoint

DATA, OPTIONS = "synthetic", {"n_samples": "240", "n_features": "8", "n_classes": "3"}


@pytest.mark.slow
def test_sigint_midway_exits_130_and_leaves_only_complete_chunks(tmp_path):
    model = tmp_path / "m.safetensors"
    recipe = Recipe(arch="mlp", arch_args={"hidden": (32,)}, epochs=40, lr=0.01, batch_size=32)
    train_checkpoint(TrainRequest(out=model, data=DATA, data_options=OPTIONS, recipe=recipe, device="cpu"))
    ids = np.random.default_rng(0).choice(load_dataset(DATA, OPTIONS).train_ids, 20, replace=False)
    write_id_file(tmp_path / "forget.txt", ids)
    bank = tmp_path / "bank"
    audit = os.path.join(os.path.dirname(sys.executable), "audit")
    proc = subprocess.Popen(
        [audit, "shadows", "--model", str(model), "--forget", str(tmp_path / "forget.txt"),
         "--shadows", "400", "--bank", str(bank), "--device", "cpu", "-q"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not list(bank.glob("*/manifest.json")):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    folder = next(bank.iterdir())
    assert not list(folder.glob("*.tmp")), "the write in flight was not cleaned up"
    manifest = json.loads((folder / "manifest.json").read_text())
    listed = {c["file"] for c in manifest["chunks"]}
    assert listed == {p.name for p in folder.glob("chunk-*.parquet")}
    for name in listed:
        assert pq.read_table(folder / name).num_rows > 0
