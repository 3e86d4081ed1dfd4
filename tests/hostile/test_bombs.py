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


def test_a_parquet_that_decodes_to_gigabytes_is_refused_from_its_footer(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "bomb.parquet"
    n = 20_000_000  # one repeated value: 166 KB on disk, 320 MB of arrays once decoded
    pq.write_table(pa.table({"x": pa.array(np.zeros(n, np.float32)), "label": pa.array(np.zeros(n, np.int64))}),
                   path, compression="zstd")  # fmt: skip
    assert path.stat().st_size < 300_000
    with pytest.raises(DatasetError, match=r"would decode to 320000000 .*-fold, limit 200x\): a decompression bomb"):
        load_dataset(str(path))


def test_a_parquet_over_the_size_limit_is_refused(tmp_path, monkeypatch):
    import pyarrow as pa
    import pyarrow.parquet as pq

    import audit_cli.data.tabular as tabular

    path = tmp_path / "big.parquet"
    rng = np.random.default_rng(0)
    pq.write_table(pa.table({"x": rng.normal(size=5000), "label": rng.integers(0, 2, 5000)}), path)
    monkeypatch.setattr(tabular, "MAX_PARQUET_BYTES", 50_000)
    with pytest.raises(DatasetError, match=r"5000 rows x 2 columns would decode to about 80000 bytes \(limit 50000\)"):
        load_dataset(str(path))
    monkeypatch.setattr(tabular, "MAX_PARQUET_BYTES", 4 * 1024**3)
    assert load_dataset(str(path)).x.shape == (5000, 1)  # real data under the limit loads
