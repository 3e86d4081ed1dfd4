"""Torchvision-style image datasets read from ``--data-root``: CIFAR-10/100, MNIST,
Fashion-MNIST and SVHN.

The files are expected exactly where torchvision leaves them after a download, so a
folder already used with torchvision works as is. Nothing is fetched unless the user
passes ``--download``; a missing file is named in the error instead.

CIFAR batches are Python pickles, and ``pickle.load`` (what torchvision uses) runs
whatever code a tampered file asks for. They are read here with an unpickler that can
only rebuild numpy arrays; anything else is refused as an unsafe artifact. MNIST idx
files are parsed directly and SVHN ``.mat`` files go through scipy, neither of which
executes code.

Every dataset comes out the same way: features float32 ``(N, C, H, W)``, scaled to
[0, 1] and then standardized per channel with the train split's mean and std; ids
``0..n_train-1`` are the train examples in file order, then the test examples follow.
"""

from __future__ import annotations

import codecs
import pickle
import tarfile
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from audit_cli.data.dataset import Dataset, DatasetSpec, make_dataset
from audit_cli.data.registry import DatasetEntry, LoadContext, Loader, register
from audit_cli.errors import DatasetError, UnsafeArtifactError

try:  # numpy >= 2 (and the forward-compat stubs of late 1.26 releases)
    from numpy._core.multiarray import _reconstruct, scalar
    from numpy._core.numeric import _frombuffer
except ImportError:  # numpy 1.x
    from numpy.core.multiarray import _reconstruct, scalar
    from numpy.core.numeric import _frombuffer

CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR100_FOLDER = "cifar-100-python"
MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
SVHN_FILES = ("train_32x32.mat", "test_32x32.mat")

FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
DIGIT_CLASSES = tuple(str(d) for d in range(10))

# How many missing files an error names before it just counts the rest.
MISSING_SHOWN = 3
# Rows per block when accumulating channel statistics: bounds the float64 temporary.
STATS_BLOCK_ROWS = 1024


# ---------------------------------------------------------------------------
# Files under the data root


def require_files(
    name: str,
    ctx: LoadContext,
    folder: str,
    files: tuple[str, ...],
    fetch: Callable[[Path], None],
) -> Path:
    """Check that ``root/folder/files`` exist, fetching them first if allowed.

    Returns the folder holding the files. The error names the missing files relative
    to the root, since that is the part the user can compare with their disk.
    """
    if ctx.data_root is None:
        raise DatasetError(f"dataset {name!r} needs --data-root pointing at its torchvision folder")
    root = ctx.data_root
    wanted = [f"{folder}/{f}" if folder else f for f in files]

    def missing() -> list[str]:
        return [rel for rel in wanted if not (root / rel).is_file()]

    absent = missing()
    if absent and ctx.download:
        download(name, root, fetch)
        absent = missing()
    if absent:
        shown = ", ".join(absent[:MISSING_SHOWN])
        more = f" ({len(absent) - MISSING_SHOWN} more)" if len(absent) > MISSING_SHOWN else ""
        holding = f"{folder}/" if folder else files[0]
        if folder and root.name == folder:
            hint = f"--data-root should be the folder that holds {folder}/, here {root.parent}"
        else:
            hint = f"pass --download to fetch it, or point --data-root at the folder holding {holding}"
        raise DatasetError(f"{name}: missing under {root}: {shown}{more}", hint=hint)
    return root / folder if folder else root


def download(name: str, root: Path, fetch: Callable[[Path], None]) -> None:
    """Run a torchvision download into ``root``, turning its failures into one line."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        fetch(root)
    except (OSError, RuntimeError, tarfile.TarError) as exc:  # URLError is an OSError
        raise DatasetError(
            f"{name}: download into {root} failed: {exc}",
            hint="check the network, or copy the files into --data-root by hand",
        ) from None


def fetch_cifar(name: str) -> Callable[[Path], None]:
    def fetch(root: Path) -> None:
        from torchvision import datasets
        from torchvision.datasets.utils import download_and_extract_archive

        cls = {"cifar10": datasets.CIFAR10, "cifar100": datasets.CIFAR100}[name]
        # Not cls(root, download=True): its constructor unpickles the batches with
        # plain pickle.load. Only the archive download is borrowed.
        download_and_extract_archive(cls.url, str(root), filename=cls.filename, md5=cls.tgz_md5)

    return fetch


def fetch_mnist(name: str) -> Callable[[Path], None]:
    def fetch(root: Path) -> None:
        from torchvision import datasets

        # Safe to construct: MNIST reads its idx files with torch, no pickle involved.
        cls = {"mnist": datasets.MNIST, "fashion-mnist": datasets.FashionMNIST}[name]
        cls(str(root), train=True, download=True)

    return fetch


def fetch_svhn(root: Path) -> None:
    from torchvision import datasets
    from torchvision.datasets.utils import download_url

    # download_url alone: constructing SVHN would also load the .mat into memory.
    for split in ("train", "test"):
        url, filename, md5 = datasets.SVHN.split_list[split]
        download_url(url, str(root), filename=filename, md5=md5)


# ---------------------------------------------------------------------------
# CIFAR: pickles read with a restricted unpickler

# Every global a CIFAR batch can need, whichever numpy and pickle protocol wrote it:
# array reconstruction (protocols 0-4), in-band buffers (protocol 5), numpy scalars,
# and how Python 3 spells bytes under protocols 0-2 (a latin1 round trip through
# _codecs.encode; __builtin__.bytes for b"", named the Python 2 way).
CIFAR_PICKLE_GLOBALS: dict[tuple[str, str], object] = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy.core.multiarray", "scalar"): scalar,
    ("numpy._core.multiarray", "scalar"): scalar,
    ("numpy.core.numeric", "_frombuffer"): _frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _frombuffer,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): codecs.encode,
    ("__builtin__", "bytes"): bytes,
    ("builtins", "bytes"): bytes,
}


class CifarUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the globals in :data:`CIFAR_PICKLE_GLOBALS`.

    Pickles run code only through the callables their globals resolve to, so refusing
    every other global makes loading a tampered file fail before anything runs.
    """

    def __init__(self, file, path: Path) -> None:
        # latin1 like the official loader: the files were written by Python 2, whose
        # byte strings (including the raw pixel buffers) must map 1:1 onto code points.
        super().__init__(file, encoding="latin1")
        self.path = path

    def find_class(self, module: str, name: str) -> object:
        try:
            return CIFAR_PICKLE_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafeArtifactError(
                f"{self.path}: the pickle asks for {module}.{name}, which CIFAR data never "
                "needs; refused, nothing was executed",
                hint="replace the folder with a fresh copy of the official dataset",
            ) from None


def unpickle_cifar(path: Path) -> object:
    try:
        with path.open("rb") as fh:
            return CifarUnpickler(fh, path).load()
    except (
        OSError,
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        AttributeError,
        IndexError,
        KeyError,
        UnicodeError,
        OverflowError,
        MemoryError,
    ) as exc:
        raise DatasetError(f"{path}: not a readable CIFAR pickle ({type(exc).__name__}: {exc})") from None


def cifar_entry(batch: Mapping, key: str) -> object | None:
    """A batch dict's entry under ``key``: str keys from Python 2 files, bytes otherwise."""
    if key in batch:
        return batch[key]
    return batch.get(key.encode())


def read_cifar_batch(path: Path, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    """One batch file -> uint8 images ``(N, 3, 32, 32)`` and int64 labels."""
    batch = unpickle_cifar(path)
    if not isinstance(batch, dict):
        raise DatasetError(f"{path}: not a CIFAR batch (holds a {type(batch).__name__}, expected a dict)")
    data, labels = cifar_entry(batch, "data"), cifar_entry(batch, label_key)
    if data is None or labels is None:
        keys = ", ".join(sorted(repr(k) for k in batch)) or "none"
        raise DatasetError(f"{path}: no 'data' and {label_key!r} entries (keys: {keys})")
    if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2 and data.shape[1] == 3072):
        shape = getattr(data, "shape", None)
        kind = getattr(data, "dtype", type(data).__name__)
        raise DatasetError(f"{path}: 'data' is {kind} with shape {shape}, expected uint8 (N, 3072)")
    try:
        labels = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError, OverflowError):
        raise DatasetError(f"{path}: {label_key!r} is not a list of integer labels") from None
    if labels.shape != (len(data),):
        raise DatasetError(f"{path}: {len(data)} images but {label_key!r} has shape {labels.shape}")
    # Rows are 1024 red, 1024 green, 1024 blue values, each a row-major 32x32 plane.
    return data.reshape(-1, 3, 32, 32), labels


def read_cifar_names(path: Path, key: str) -> list[str]:
    meta = unpickle_cifar(path)
    names = cifar_entry(meta, key) if isinstance(meta, dict) else None
    if not isinstance(names, list) or not all(isinstance(n, (str, bytes)) for n in names):
        raise DatasetError(f"{path}: no {key!r} list of class names")
    return [n.decode("latin1") if isinstance(n, bytes) else n for n in names]


def load_cifar10(spec: DatasetSpec, options: Mapping[str, object], ctx: LoadContext) -> Dataset:
    files = CIFAR10_TRAIN + ("test_batch", "batches.meta")
    folder = require_files(spec.name, ctx, CIFAR10_FOLDER, files, fetch_cifar("cifar10"))
    train = [read_cifar_batch(folder / f, "labels") for f in CIFAR10_TRAIN]
    test = read_cifar_batch(folder / "test_batch", "labels")
    names = read_cifar_names(folder / "batches.meta", "label_names")
    return image_dataset(spec, train, [test], names)


def load_cifar100(spec: DatasetSpec, options: Mapping[str, object], ctx: LoadContext) -> Dataset:
    folder = require_files(spec.name, ctx, CIFAR100_FOLDER, ("train", "test", "meta"), fetch_cifar("cifar100"))
    train = read_cifar_batch(folder / "train", "fine_labels")
    test = read_cifar_batch(folder / "test", "fine_labels")
    names = read_cifar_names(folder / "meta", "fine_label_names")
    return image_dataset(spec, [train], [test], names)


# ---------------------------------------------------------------------------
# MNIST and Fashion-MNIST: idx files


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """Parse an uncompressed idx file of unsigned bytes with ``ndim`` dimensions.

    Layout: magic ``0x0000080N`` (type 0x08 = ubyte, N dimensions), N big-endian uint32
    sizes, then the bytes. The size must match exactly, so truncation is caught.
    """
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read: {exc.strerror}") from None
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DatasetError(f"{path}: {len(raw)} bytes, too short for an idx header")
    magic = int.from_bytes(raw[:4], "big")
    expected_magic = 0x0800 + ndim
    if magic != expected_magic:
        raise DatasetError(
            f"{path}: bad magic number 0x{magic:08x}, expected 0x{expected_magic:08x} "
            f"(an idx file of {ndim}-D unsigned bytes)"
        )
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    size = header + int(np.prod(dims, dtype=np.int64))
    if len(raw) != size:
        raise DatasetError(f"{path}: {len(raw)} bytes, but its header (shape {dims}) says {size}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def read_idx_split(folder: Path, images_file: str, labels_file: str) -> tuple[np.ndarray, np.ndarray]:
    images = read_idx(folder / images_file, 3)
    labels = read_idx(folder / labels_file, 1)
    if len(images) != len(labels):
        raise DatasetError(f"{folder / images_file}: {len(images)} images but {labels_file} has {len(labels)} labels")
    return images[:, None, :, :], labels.astype(np.int64)


def mnist_loader(folder_name: str, class_names: tuple[str, ...]) -> Loader:
    def load(spec: DatasetSpec, options: Mapping[str, object], ctx: LoadContext) -> Dataset:
        folder = require_files(spec.name, ctx, f"{folder_name}/raw", MNIST_FILES, fetch_mnist(spec.name))
        train = read_idx_split(folder, MNIST_FILES[0], MNIST_FILES[1])
        test = read_idx_split(folder, MNIST_FILES[2], MNIST_FILES[3])
        return image_dataset(spec, [train], [test], list(class_names))

    return load


# ---------------------------------------------------------------------------
# SVHN: MATLAB files


def read_svhn(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One ``*_32x32.mat`` -> uint8 images ``(N, 3, 32, 32)`` and labels 0..9."""
    from scipy.io import loadmat
    from scipy.io.matlab import MatReadError

    try:
        mat = loadmat(path, variable_names=["X", "y"])
    except (OSError, ValueError, TypeError, KeyError, IndexError, EOFError, NotImplementedError, MatReadError) as exc:
        # NotImplementedError: a MATLAB v7.3 (HDF5) file, which loadmat cannot read.
        raise DatasetError(f"{path}: not a readable SVHN .mat file ({type(exc).__name__}: {exc})") from None
    images, labels = mat.get("X"), mat.get("y")
    if images is None or labels is None:
        found = sorted(k for k in mat if not k.startswith("__"))
        raise DatasetError(f"{path}: needs variables 'X' and 'y', found {found}")
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[:3] != (32, 32, 3):
        raise DatasetError(f"{path}: 'X' is {images.dtype} with shape {images.shape}, expected uint8 (32, 32, 3, N)")
    labels = np.asarray(labels).reshape(-1)
    if len(labels) != images.shape[3] or not np.issubdtype(labels.dtype, np.number):
        raise DatasetError(f"{path}: 'y' has shape {labels.shape}, expected {images.shape[3]} numeric labels")
    labels = labels.astype(np.int64)
    labels[labels == 10] = 0  # SVHN stores the digit 0 as class 10
    # (H, W, C, N) -> (N, C, H, W), as a view; the float conversion makes it contiguous.
    return np.transpose(images, (3, 2, 0, 1)), labels


def load_svhn(spec: DatasetSpec, options: Mapping[str, object], ctx: LoadContext) -> Dataset:
    folder = require_files(spec.name, ctx, "", SVHN_FILES, fetch_svhn)
    train = read_svhn(folder / SVHN_FILES[0])
    test = read_svhn(folder / SVHN_FILES[1])
    return image_dataset(spec, [train], [test], list(DIGIT_CLASSES))


# ---------------------------------------------------------------------------
# Common output


def image_dataset(
    spec: DatasetSpec,
    train: list[tuple[np.ndarray, np.ndarray]],
    test: list[tuple[np.ndarray, np.ndarray]],
    class_names: list[str],
) -> Dataset:
    """uint8 ``(N, C, H, W)`` parts -> a standardized float32 Dataset, train ids first."""
    parts = train + test
    n_train = sum(len(y) for _, y in train)
    # One allocation: concatenate straight into float32 instead of uint8 then a copy.
    x = np.concatenate([images for images, _ in parts], dtype=np.float32)
    x /= 255.0
    mean, std = standardize_channels(x, n_train)
    y = np.concatenate([labels for _, labels in parts])
    is_train = np.arange(len(y)) < n_train
    return make_dataset(spec, x, y, is_train, class_names, "image", pixel_stats=(tuple(mean), tuple(std)))


def standardize_channels(x: np.ndarray, n_train: int) -> tuple[list[float], list[float]]:
    """In place: z-score each channel with the mean and std of the first ``n_train`` rows;
    returns the (mean, std) used, so pixel-space augmentation can undo it.

    Sums are accumulated in float64 block by block, so the statistics are exact enough
    and deterministic without a full-size float64 copy of the images.
    """
    channels = x.shape[1]
    total = np.zeros(channels)
    total_sq = np.zeros(channels)
    for start in range(0, n_train, STATS_BLOCK_ROWS):
        block = x[start : min(start + STATS_BLOCK_ROWS, n_train)].astype(np.float64)
        total += block.sum(axis=(0, 2, 3))
        total_sq += np.square(block).sum(axis=(0, 2, 3))
    count = n_train * x.shape[2] * x.shape[3]
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean**2, 0.0))
    std[std == 0] = 1.0  # a constant channel is only centred
    x -= mean.astype(np.float32)[None, :, None, None]
    x /= std.astype(np.float32)[None, :, None, None]
    return [float(m) for m in mean], [float(s) for s in std]


register(
    DatasetEntry(
        name="cifar10",
        loader=load_cifar10,
        description="CIFAR-10 from --data-root (torchvision layout), 60,000 32x32 colour images, 10 classes",
        needs_root=True,
    )
)
register(
    DatasetEntry(
        name="cifar100",
        loader=load_cifar100,
        description="CIFAR-100 from --data-root (torchvision layout), 60,000 32x32 colour images, 100 classes",
        needs_root=True,
    )
)
register(
    DatasetEntry(
        name="mnist",
        loader=mnist_loader("MNIST", DIGIT_CLASSES),
        description="MNIST from --data-root (torchvision layout), 70,000 28x28 digits, 10 classes",
        needs_root=True,
    )
)
register(
    DatasetEntry(
        name="fashion-mnist",
        loader=mnist_loader("FashionMNIST", FASHION_MNIST_CLASSES),
        description="Fashion-MNIST from --data-root (torchvision layout), 70,000 28x28 images, 10 classes",
        needs_root=True,
    )
)
register(
    DatasetEntry(
        name="svhn",
        loader=load_svhn,
        description="SVHN train + test from --data-root (torchvision layout), 99,289 32x32 digits, 10 classes",
        needs_root=True,
    )
)
