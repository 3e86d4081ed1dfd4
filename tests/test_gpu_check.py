"""scripts/gpu_check.sh: its small mode runs the GPU check's code end to end on CPU, so the
script is known to work the day a GPU is lent; without a GPU the full check says so."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


def gpu_check(*args: str, out: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OUT": str(out), "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    return subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh"), *args], capture_output=True, text=True,
                          env=env, timeout=300)  # fmt: skip


@pytest.mark.slow
def test_the_small_mode_trains_stacked_resnets_on_cpu_and_writes_its_rows(tmp_path):
    done = gpu_check("--small", out=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = json.loads((tmp_path / "gpu_check.json").read_text())["rows"]
    assert [r["k"] for r in rows] == [1, 2] and [r["chunk"] for r in rows] == [1, 2]
    # A width-4 ResNet-18 for 10 classes; each shadow trains on half the pool of 64, one epoch.
    assert all(r["params_per_shadow"] == 44_622 for r in rows)
    for r in rows:
        assert r["images_per_s"] == pytest.approx(r["k"] * 32 / r["seconds"], rel=1e-9)
        assert r["seconds_per_shadow"] == pytest.approx(r["seconds"] / r["k"], rel=1e-9)
        assert r["peak_bytes"] >= 0 and r["memory"] == "RSS growth"
    assert "K=2 against K=1" in done.stdout


@pytest.mark.skipif(sys.platform != "linux", reason="the check is a bash script for the lent Linux GPU machines")
def test_the_full_check_refuses_without_a_gpu(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is visible: the full check would run")
    done = gpu_check(out=tmp_path)
    assert done.returncode != 0 and "no CUDA GPU visible to torch" in done.stderr
    assert not (tmp_path / "gpu_check.json").exists()
