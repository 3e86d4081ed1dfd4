"""Torchvision-layout image datasets, built as tiny fake files in tmp_path."""

from __future__ import annotations

import builtins
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from audit_cli.data import vision  # noqa: F401  (registers the loaders)
from audit_cli.data.registry import load_dataset
from audit_cli.errors import DatasetError, UnsafeArtifactError

CIFAR10_NAMES = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
PER_BATCH = 4  # images per CIFAR-10 batch file: 5 train batches + 1 test batch


def write_pickle(path: Path, obj: object, protocol: int = 2) -> None:
    with path.open("wb") as fh:
        pickle.dump(obj, fh, protocol=protocol)


def make_cifar10(root: Path, protocol: int = 2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Write a CIFAR-10 folder in the official format; return all raw rows and labels."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rows, labels = [], []
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, size=(PER_BATCH, 3072), dtype=np.uint8)
        y = [int(v) for v in rng.integers(0, 10, size=PER_BATCH)]
        # An empty file name exercises how protocol 2 spells b"" (__builtin__.bytes).
        filenames = [b""] + [f"{name}_{i}.png".encode() for i in range(1, PER_BATCH)]
        batch = {b"batch_label": name.encode(), b"data": data, b"labels": y, b"filenames": filenames}
        write_pickle(folder / name, batch, protocol)
        rows.append(data)
        labels += y
    write_pickle(folder / "batches.meta", {b"label_names": CIFAR10_NAMES, b"num_vis": 3072}, protocol)
    return np.concatenate(rows), np.array(labels)


def expected_standardized(raw: np.ndarray, n_train: int) -> np.ndarray:
    """Independent reference: scale to [0, 1], z-score per channel with train stats."""
    x = raw.astype(np.float64) / 255.0
    mean = x[:n_train].mean(axis=(0, 2, 3), keepdims=True)
    std = x[:n_train].std(axis=(0, 2, 3), keepdims=True)
    return (x - mean) / std


# ---------------------------------------------------------------------------
# CIFAR-10


@pytest.mark.parametrize("protocol", [2, 5])
def test_cifar10_loads_official_layout(tmp_path, protocol):
    raw, labels = make_cifar10(tmp_path, protocol)
    ds = load_dataset("cifar10", data_root=tmp_path)

    n_train = 5 * PER_BATCH
    assert ds.x.shape == (6 * PER_BATCH, 3, 32, 32) and ds.x.dtype == np.float32
    assert ds.modality == "image"
    np.testing.assert_array_equal(ds.ids, np.arange(6 * PER_BATCH))
    np.testing.assert_array_equal(ds.is_train, np.arange(6 * PER_BATCH) < n_train)
    np.testing.assert_array_equal(ds.y, labels)
    assert ds.class_names == tuple(n.decode() for n in CIFAR10_NAMES)

    # Row layout: 1024 red, then green, then blue values, each row-major 32x32.
    images = raw.reshape(-1, 3, 32, 32)
    assert raw[7, 1024 + 5 * 32 + 9] == images[7, 1, 5, 9]
    # Test rows too are standardized with the train statistics, not their own.
    np.testing.assert_allclose(ds.x, expected_standardized(images, n_train), atol=1e-5)

    train = ds.x[ds.is_train].astype(np.float64)
    np.testing.assert_allclose(train.mean(axis=(0, 2, 3)), 0.0, atol=1e-5)
    np.testing.assert_allclose(train.std(axis=(0, 2, 3)), 1.0, atol=1e-5)


def test_cifar10_fingerprint_is_stable_and_content_bound(tmp_path):
    make_cifar10(tmp_path / "a")
    make_cifar10(tmp_path / "b", protocol=5)  # same content, other pickle protocol
    make_cifar10(tmp_path / "c", seed=1)
    first = load_dataset("cifar10", data_root=tmp_path / "a").fingerprint
    assert load_dataset("cifar10", data_root=tmp_path / "a").fingerprint == first
    assert load_dataset("cifar10", data_root=tmp_path / "b").fingerprint == first
    assert load_dataset("cifar10", data_root=tmp_path / "c").fingerprint != first


class SystemPayload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class ExecPayload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (builtins.exec, (f"open({str(self.marker)!r}, 'w').close()",))


@pytest.mark.parametrize("payload", [SystemPayload, ExecPayload])
@pytest.mark.parametrize("protocol", [2, 5])
def test_cifar_pickle_with_code_payload_is_refused_before_running(tmp_path, payload, protocol):
    make_cifar10(tmp_path)
    marker = tmp_path / "MARKER"
    batch = tmp_path / "cifar-10-batches-py" / "data_batch_2"
    write_pickle(batch, {b"data": payload(marker), b"labels": [0] * PER_BATCH}, protocol)

    refused = r"(posix\.system|(__)?builtins?(__)?\.exec)"  # protocol 2 spells builtins __builtin__
    with pytest.raises(UnsafeArtifactError, match=rf"data_batch_2: the pickle asks for {refused}, "):
        load_dataset("cifar10", data_root=tmp_path)
    assert not marker.exists()


def test_cifar10_missing_files_are_named(tmp_path):
    make_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(DatasetError, match=r"cifar10: missing under .*: cifar-10-batches-py/data_batch_3$"):
        load_dataset("cifar10", data_root=tmp_path)


def test_cifar10_empty_root_names_first_files_and_counts_the_rest(tmp_path):
    with pytest.raises(DatasetError) as info:
        load_dataset("cifar10", data_root=tmp_path)
    assert info.value.message == (
        f"cifar10: missing under {tmp_path}: cifar-10-batches-py/data_batch_1, "
        "cifar-10-batches-py/data_batch_2, cifar-10-batches-py/data_batch_3 (4 more)"
    )
    assert "--download" in info.value.hint and "cifar-10-batches-py/" in info.value.hint


def test_cifar10_root_pointing_inside_the_folder_gets_a_specific_hint(tmp_path):
    make_cifar10(tmp_path)
    with pytest.raises(DatasetError) as info:
        load_dataset("cifar10", data_root=tmp_path / "cifar-10-batches-py")
    assert str(tmp_path) in info.value.hint and "holds cifar-10-batches-py/" in info.value.hint


def test_cifar10_needs_a_data_root():
    with pytest.raises(DatasetError, match="--data-root"):
        load_dataset("cifar10")


def test_cifar10_download_fetches_only_missing_files(tmp_path, monkeypatch):
    import torchvision.datasets.utils as tv_utils
    from torchvision.datasets import CIFAR10

    calls = []

    def fake_download(url, download_root, filename=None, md5=None, **kwargs):
        calls.append((url, filename, md5))
        make_cifar10(Path(download_root))

    monkeypatch.setattr(tv_utils, "download_and_extract_archive", fake_download)
    ds = load_dataset("cifar10", data_root=tmp_path / "new", download=True)
    assert len(ds.y) == 6 * PER_BATCH
    assert calls == [(CIFAR10.url, "cifar-10-python.tar.gz", CIFAR10.tgz_md5)]
    load_dataset("cifar10", data_root=tmp_path / "new", download=True)
    assert len(calls) == 1  # files present: nothing fetched again


def test_cifar10_download_failure_is_one_line(tmp_path, monkeypatch):
    import torchvision.datasets.utils as tv_utils

    def offline(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(tv_utils, "download_and_extract_archive", offline)
    with pytest.raises(DatasetError, match="cifar10: download into .* failed: network unreachable"):
        load_dataset("cifar10", data_root=tmp_path, download=True)


@pytest.mark.parametrize(
    "content, message",
    [
        (b"\x80\x02}q\x00(X\x04\x00\x00\x00data", "data_batch_1: not a readable CIFAR pickle"),  # truncated
        (pickle.dumps([1, 2, 3]), "data_batch_1: not a CIFAR batch"),
        (pickle.dumps({b"data": np.zeros((4, 100), np.uint8), b"labels": [0] * 4}), r"expected uint8 \(N, 3072\)"),
        (pickle.dumps({b"data": np.zeros((4, 3072), np.uint8), b"labels": [0] * 3}), "4 images but 'labels'"),
        (pickle.dumps({b"pixels": np.zeros((4, 3072), np.uint8)}), "no 'data' and 'labels' entries"),
    ],
)
def test_cifar10_malformed_batch_is_a_dataset_error(tmp_path, content, message):
    make_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_1").write_bytes(content)
    with pytest.raises(DatasetError, match=message):
        load_dataset("cifar10", data_root=tmp_path)


# ---------------------------------------------------------------------------
# CIFAR-100


def test_cifar100_uses_fine_labels_and_names(tmp_path):
    # Python-2 style: str keys, as the official files load under encoding="latin1".
    rng = np.random.default_rng(3)
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    train = rng.integers(0, 256, size=(6, 3072), dtype=np.uint8)
    test = rng.integers(0, 256, size=(2, 3072), dtype=np.uint8)
    write_pickle(folder / "train", {"data": train, "fine_labels": [0, 5, 99, 5, 1, 2], "coarse_labels": [0] * 6})
    write_pickle(folder / "test", {"data": test, "fine_labels": [99, 0], "coarse_labels": [0] * 2})
    write_pickle(folder / "meta", {"fine_label_names": [f"c{i}" for i in range(100)], "coarse_label_names": []})

    ds = load_dataset("cifar100", data_root=tmp_path)
    assert ds.num_classes == 100 and ds.class_names[99] == "c99"
    np.testing.assert_array_equal(ds.y, [0, 5, 99, 5, 1, 2, 99, 0])
    np.testing.assert_array_equal(ds.ids[~ds.is_train], [6, 7])


# ---------------------------------------------------------------------------
# MNIST and Fashion-MNIST


def write_idx(path: Path, array: np.ndarray, magic: int | None = None) -> None:
    magic = 0x0800 + array.ndim if magic is None else magic
    header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def make_mnist(root: Path, folder: str = "MNIST", n_train: int = 6, n_test: int = 4):
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(5)
    images = rng.integers(0, 256, size=(n_train + n_test, 28, 28), dtype=np.uint8)
    labels = np.arange(n_train + n_test) % 10
    write_idx(raw / "train-images-idx3-ubyte", images[:n_train])
    write_idx(raw / "train-labels-idx1-ubyte", labels[:n_train])
    write_idx(raw / "t10k-images-idx3-ubyte", images[n_train:])
    write_idx(raw / "t10k-labels-idx1-ubyte", labels[n_train:])
    return images, labels


@pytest.mark.parametrize(
    "name, folder, first_class", [("mnist", "MNIST", "0"), ("fashion-mnist", "FashionMNIST", "T-shirt/top")]
)
def test_mnist_idx_files_load(tmp_path, name, folder, first_class):
    images, labels = make_mnist(tmp_path, folder)
    ds = load_dataset(name, data_root=tmp_path)
    assert ds.x.shape == (10, 1, 28, 28)
    np.testing.assert_array_equal(ds.y, labels)
    assert ds.is_train.sum() == 6 and not ds.is_train[6:].any()
    assert ds.class_names[0] == first_class and ds.num_classes == 10
    np.testing.assert_allclose(ds.x, expected_standardized(images[:, None], 6), atol=1e-5)


def test_mnist_bad_magic_names_the_file(tmp_path):
    images, _ = make_mnist(tmp_path)
    write_idx(tmp_path / "MNIST" / "raw" / "t10k-images-idx3-ubyte", images[6:], magic=0x0801)
    with pytest.raises(DatasetError, match=r"t10k-images-idx3-ubyte: bad magic number 0x00000801, expected 0x00000803"):
        load_dataset("mnist", data_root=tmp_path)


def test_mnist_truncated_file_is_caught(tmp_path):
    make_mnist(tmp_path)
    path = tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-10])
    message = r"train-images-idx3-ubyte: \d+ bytes, but its header \(shape \(6, 28, 28\)\)"
    with pytest.raises(DatasetError, match=message):
        load_dataset("mnist", data_root=tmp_path)


def test_mnist_image_and_label_counts_must_agree(tmp_path):
    make_mnist(tmp_path)
    write_idx(tmp_path / "MNIST" / "raw" / "train-labels-idx1-ubyte", np.zeros(5))
    with pytest.raises(DatasetError, match="6 images but train-labels-idx1-ubyte has 5 labels"):
        load_dataset("mnist", data_root=tmp_path)


def test_mnist_missing_file_is_named(tmp_path):
    make_mnist(tmp_path)
    (tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DatasetError, match=r"missing under .*: MNIST/raw/t10k-labels-idx1-ubyte$"):
        load_dataset("mnist", data_root=tmp_path)


# ---------------------------------------------------------------------------
# SVHN


def test_svhn_mat_files_load_and_map_label_10_to_0(tmp_path):
    rng = np.random.default_rng(9)
    images = rng.integers(0, 256, size=(32, 32, 3, 7), dtype=np.uint8)  # (H, W, C, N) as SVHN stores it
    labels = np.array([[10], [1], [2], [10], [9], [3], [10]], dtype=np.uint8)
    scipy.io.savemat(tmp_path / "train_32x32.mat", {"X": images[..., :5], "y": labels[:5]})
    scipy.io.savemat(tmp_path / "test_32x32.mat", {"X": images[..., 5:], "y": labels[5:]})

    ds = load_dataset("svhn", data_root=tmp_path)
    assert ds.x.shape == (7, 3, 32, 32)
    np.testing.assert_array_equal(ds.y, [0, 1, 2, 0, 9, 3, 0])
    np.testing.assert_array_equal(ds.is_train, [True] * 5 + [False] * 2)
    chw = np.transpose(images, (3, 2, 0, 1))
    assert chw[2, 1, 4, 17] == images[4, 17, 1, 2]
    np.testing.assert_allclose(ds.x, expected_standardized(chw, 5), atol=1e-5)


def test_svhn_missing_and_corrupt_files(tmp_path):
    with pytest.raises(DatasetError, match=r"missing under .*: train_32x32.mat, test_32x32.mat$"):
        load_dataset("svhn", data_root=tmp_path)
    (tmp_path / "train_32x32.mat").write_bytes(b"not a matlab file at all" * 10)
    scipy.io.savemat(tmp_path / "test_32x32.mat", {"X": np.zeros((32, 32, 3, 1), np.uint8), "y": [[1]]})
    with pytest.raises(DatasetError, match="train_32x32.mat: not a readable SVHN .mat file"):
        load_dataset("svhn", data_root=tmp_path)
