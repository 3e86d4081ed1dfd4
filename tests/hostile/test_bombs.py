"""Small files that would inflate to gigabytes are refused from what they declare, before
anything is unpacked or allocated: .npz decompression bombs and lying array headers, .pt
archives whose pickle unpacks past the limit, and zero-stride tensor views."""

import io
import zipfile

import numpy as np
import pytest
import torch

from audit_cli.data import load_dataset
from audit_cli.errors import CheckpointError, DatasetError
from audit_cli.models.checkpoint import load_checkpoint


def npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def test_an_npz_header_claiming_more_than_it_holds_is_refused(tmp_path):
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (10**6, 10**6)})
    path = tmp_path / "claim.npz"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("x.npy", header.getvalue() + b"\0" * 16)
        z.writestr("y.npy", npy(np.zeros(3, np.int64)))
    with pytest.raises(DatasetError, match="claims 4000000000000 bytes; the archive holds"):
        load_dataset(str(path))


def test_an_npz_decompression_bomb_is_refused(tmp_path):
    path = tmp_path / "bomb.npz"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("x.npy", npy(np.zeros(2**24, np.float32)))  # 64 MiB of zeros, about 65 KB packed
        z.writestr("y.npy", npy(np.zeros(10, np.int64)))
    with pytest.raises(DatasetError, match="inflates .*-fold .*decompression bomb"):
        load_dataset(str(path))


def test_a_zero_stride_view_is_refused(tmp_path):
    path = tmp_path / "zs.pt"
    torch.save({"w": torch.zeros(1).expand(30000, 30000)}, path)  # 1.4 KB on disk, 3.6 GB once copied
    assert path.stat().st_size < 4096
    with pytest.raises(CheckpointError, match="view larger than its storage"):
        load_checkpoint(path)


def test_a_pt_whose_pickle_unpacks_past_the_limit_is_refused(tmp_path, monkeypatch):
    import audit_cli.models.checkpoint as checkpoint

    path = tmp_path / "big.pt"
    torch.save({"state_dict": {"w": torch.zeros(2)}, "metadata": "x" * 200_000}, path)
    monkeypatch.setattr(checkpoint, "MAX_HEADER_BYTES", 100_000)
    with pytest.raises(CheckpointError, match="its pickle unpacks to .* over the 100000 limit"):
        load_checkpoint(path)
