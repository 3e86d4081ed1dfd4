"""Built-in datasets that need no files: digits, mnist1d and synthetic.

- ``digits``: scikit-learn's bundled 8x8 handwritten digits (1,797 examples). Ids are
  the rows of ``load_digits``; a fixed stratified split holds out 25% for test. The
  default dataset: weak membership signal, fast to train on.
- ``digits-images``: the same examples, ids and split as 1×8×8 images, so image
  augmentation (crops, flips, torchvision's policies) applies.
- ``mnist1d``: generated offline from the mnist1d package's templates. Small MLPs
  overfit it, so membership signal is strong: the demo dataset for leakage.
- ``blocks``: two blocks of coordinates coupled by a correlation, the forget set inside
  one of them (the logistic-regression example of "Ascent Fails to Forget").
- ``synthetic``: ``make_classification`` with size, classes, features and seed options.

scikit-learn is imported by the loaders that use it, not here: it takes over a second,
and listing datasets or reading a checkpoint's metadata (which names its dataset) loads
none.
"""

from __future__ import annotations

import random
from collections.abc import Mapping

import numpy as np

from audit_cli.data.dataset import Dataset, DatasetSpec, make_dataset
from audit_cli.data.registry import DatasetEntry, LoadContext, register
from audit_cli.errors import UsageError

# Fixed so that ids and splits never change between versions of the tool.
SPLIT_SEED = 0


def stratified_is_train(y: np.ndarray, test_fraction: float, seed: int) -> np.ndarray:
    """Boolean train mask of a stratified split, deterministic in ``seed``."""
    if not 0.0 < test_fraction < 1.0:
        raise UsageError(f"test_fraction must lie strictly between 0 and 1, got {test_fraction}")
    idx = np.arange(len(y))
    from sklearn.model_selection import train_test_split

    _, test_idx = train_test_split(idx, test_size=test_fraction, stratify=y, random_state=seed)
    is_train = np.ones(len(y), dtype=bool)
    is_train[test_idx] = False
    return is_train


def digits_arrays(options: Mapping[str, object]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The digits' pixels (n, 8, 8) in [0, 1] (intensities are 0..16), labels and split."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    y = bunch.target.astype(np.int64)
    is_train = stratified_is_train(y, float(options["test_fraction"]), SPLIT_SEED)
    return bunch.images.astype(np.float32) / 16.0, y, is_train


def load_digits_dataset(spec: DatasetSpec, options: Mapping[str, object], ctx: LoadContext) -> Dataset:
    pixels, y, is_train = digits_arrays(options)
    return make_dataset(spec, pixels.reshape(len(y), 64), y, is_train, [str(c) for c in range(10)], "tabular")


def load_digits_images_dataset(spec: DatasetSpec, options: Mapping[str, object], ctx: LoadContext) -> Dataset:
    """The same digits, ids and split as 1×8×8 images, standardised by the training pixels'
    mean and spread (recorded as pixel statistics, which image augmentation needs)."""
    pixels, y, is_train = digits_arrays(options)
    pixels = pixels[:, None]  # (n, 1, 8, 8)
    mean, std = float(pixels[is_train].mean()), float(pixels[is_train].std())
    x = (pixels - mean) / std
    return make_dataset(spec, x, y, is_train, [str(c) for c in range(10)], "image", pixel_stats=((mean,), (std,)))


def load_mnist1d_dataset(spec: DatasetSpec, options: Mapping[str, object], ctx: LoadContext) -> Dataset:
    from mnist1d.data import get_dataset_args
    from mnist1d.data import make_dataset as make_mnist1d

    num_samples = int(options["num_samples"])
    if num_samples < 20:
        raise UsageError(f"mnist1d needs num_samples >= 20, got {num_samples}")
    args = get_dataset_args()
    args.num_samples = num_samples
    args.train_split = 1.0 - float(options["test_fraction"])
    args.seed = int(options["seed"])
    # mnist1d seeds the global numpy and random generators; keep the caller's streams.
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        data = make_mnist1d(args)
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    x = np.concatenate([data["x"], data["x_test"]]).astype(np.float32)
    y = np.concatenate([data["y"], data["y_test"]]).astype(np.int64)
    is_train = np.arange(len(y)) < len(data["y"])
    return make_dataset(spec, x, y, is_train, [str(c) for c in range(10)], "sequence")


# make_classification holds n_samples x n_features float64 values: 160 MB at this bound,
# checked before generating (metadata naming 4e6 samples allocated 6.6 GB before).
MAX_SYNTHETIC_VALUES = 20_000_000


def load_synthetic_dataset(spec: DatasetSpec, options: Mapping[str, object], ctx: LoadContext) -> Dataset:
    n_classes = int(options["n_classes"])
    n_features = int(options["n_features"])
    n_samples = int(options["n_samples"])
    if not (1 <= n_samples and 1 <= n_features and n_samples * n_features <= MAX_SYNTHETIC_VALUES):
        raise UsageError(f"synthetic dataset: {n_samples} samples x {n_features} features is outside 1.."
                         f"{MAX_SYNTHETIC_VALUES} values")  # fmt: skip
    n_informative = min(int(options["n_informative"]), n_features)
    try:
        from sklearn.datasets import make_classification

        x, y = make_classification(
            n_samples=n_samples,
            n_features=n_features,
            n_informative=n_informative,
            n_redundant=0,
            n_classes=n_classes,
            class_sep=float(options["class_sep"]),
            flip_y=float(options["flip_y"]),
            random_state=int(options["seed"]),
        )
    except ValueError as exc:
        raise UsageError(f"synthetic dataset: {exc}") from None
    is_train = stratified_is_train(y, float(options["test_fraction"]), int(options["seed"]))
    return make_dataset(spec, x, y, is_train, [str(c) for c in range(n_classes)], "tabular")


register(
    DatasetEntry(
        name="digits",
        loader=load_digits_dataset,
        description="scikit-learn 8x8 digits, 1,797 examples, 10 classes (bundled; the default)",
        options={"test_fraction": 0.25},
    )
)
register(
    DatasetEntry(
        name="digits-images",
        loader=load_digits_images_dataset,
        description="the digits as 1x8x8 images (same ids and split), for image augmentation",
        options={"test_fraction": 0.25},
    )
)
register(
    DatasetEntry(
        name="mnist1d",
        loader=load_mnist1d_dataset,
        description="MNIST-1D generated offline, 40-step signals, 10 classes",
        options={"num_samples": 5000, "test_fraction": 0.2, "seed": 42},
    )
)


def load_blocks_dataset(spec: DatasetSpec, options: Mapping[str, object], ctx: LoadContext) -> Dataset:
    """Two blocks of coordinates coupled by a correlation (the logistic-regression example of
    "Ascent Fails to Forget"): block-A examples have standard normal features in block A
    and, in block B, ``correlation`` times a fixed random rotation of their block A plus
    noise of 0.1 times that; block-B examples the other way round. Binary labels from a
    logistic model on both blocks. Ids: the block-A training examples first (0 ..
    n_forget_block - 1, the forget set of the experiment), then the block-B training
    examples, then the test examples (half of each block)."""
    dim, n_a, n_b, n_test = (int(options[k]) for k in ("dim", "n_forget_block", "n_retain_block", "n_test"))
    eps = float(options["correlation"])
    if not (1 <= dim <= 1000 and 1 <= n_a and 1 <= n_b and 2 <= n_test and (n_a + n_b + n_test) * dim <= 10**7):
        raise UsageError("blocks dataset: dim must lie in 1..1000, each block and the test set be non-empty, and "
                         "examples x 2 dim be at most 2e7 values")  # fmt: skip
    if not (0.0 <= eps <= 10.0):
        raise UsageError(f"blocks dataset: correlation must lie in 0..10, got {eps}")
    rng = np.random.default_rng(int(options["seed"]))
    rotation, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
    w_true = rng.normal(size=2 * dim)

    def block(n: int, own: slice, other: slice) -> np.ndarray:
        x = np.zeros((n, 2 * dim))
        x[:, own] = rng.normal(size=(n, dim))
        x[:, other] = eps * (x[:, own] @ rotation.T + 0.1 * rng.normal(size=(n, dim)))
        return x

    a, b = slice(0, dim), slice(dim, 2 * dim)
    x = np.concatenate(
        [block(n_a, a, b), block(n_b, b, a), block(n_test // 2, a, b), block(n_test - n_test // 2, b, a)]
    )
    y = (rng.random(len(x)) < 1 / (1 + np.exp(-(x @ w_true)))).astype(np.int64)
    is_train = np.arange(len(x)) < n_a + n_b
    return make_dataset(spec, x, y, is_train, ["0", "1"], "tabular")


# CIFAR-10's size: the largest cifar10-shaped dataset generated (60,000 images are 737 MB as
# float32), checked before any allocation.
MAX_CIFAR_SHAPED = 60_000


def load_cifar_shaped_dataset(spec: DatasetSpec, options: Mapping[str, object], ctx: LoadContext) -> Dataset:
    """CIFAR-10's shape without a download: 3x32x32 images in 10 classes, generated from a
    seed. Each class is a faint smooth colour pattern on grey (a random 3x4x4 image
    upsampled to 32x32, amplitude 0.2); an example is its class's pattern plus a stronger
    smooth variation of its own (amplitude 0.6) and pixel noise (``noise``), shifted by up
    to 3 pixels, clipped to [0, 1], then standardised per channel like the torchvision sets.
    Train ids first, then test. At the defaults a logistic regression on 2,000 images fits
    them all and gets 60% of 500 test images (measured, C 0.01): classes are learnable, and
    training examples are remembered, as an audit needs. A stand-in for CIFAR-10's timing
    and memory, not for its accuracy."""
    n_train, n_test = int(options["n_train"]), int(options["n_test"])
    noise = float(options["noise"])
    if not (10 <= n_train and 10 <= n_test and n_train + n_test <= MAX_CIFAR_SHAPED):
        raise UsageError(f"cifar10-shaped dataset: n_train {n_train} and n_test {n_test} must each be at least 10 "
                         f"and together at most {MAX_CIFAR_SHAPED}")  # fmt: skip
    if not 0.0 <= noise <= 10.0:
        raise UsageError(f"cifar10-shaped dataset: noise must lie in 0..10, got {noise}")
    rng = np.random.default_rng(int(options["seed"]))
    n = n_train + n_test

    def smooth(count: int) -> np.ndarray:
        # A random 3x4x4 image per row, each pixel repeated over an 8x8 block: (count, 3, 32, 32).
        return rng.random((count, 3, 4, 4), dtype=np.float32).repeat(8, axis=2).repeat(8, axis=3)

    patterns = 0.5 + 0.2 * (smooth(10) - 0.5)
    y = np.concatenate([np.arange(n_train) % 10, np.arange(n_test) % 10]).astype(np.int64)
    rng.shuffle(y[:n_train])
    rng.shuffle(y[n_train:])
    x = np.empty((n, 3, 32, 32), dtype=np.float32)
    shifts = rng.integers(-3, 4, size=(n, 2))
    for start in range(0, n, 1024):  # blocks: the variations never hold more than 1,024 images at once
        rows = slice(start, min(start + 1024, n))
        k = rows.stop - rows.start
        block = patterns[y[rows]] + 0.6 * (smooth(k) - 0.5)
        block += noise * rng.standard_normal(block.shape, dtype=np.float32)
        for i, (dy, dx) in enumerate(shifts[rows]):
            block[i] = np.roll(block[i], (int(dy), int(dx)), axis=(1, 2))
        x[rows] = np.clip(block, 0.0, 1.0)
    from audit_cli.data.vision import standardize_channels

    mean, std = standardize_channels(x, n_train)
    is_train = np.arange(n) < n_train
    return make_dataset(spec, x, y, is_train, [str(c) for c in range(10)], "image",
                        pixel_stats=(tuple(mean), tuple(std)))  # fmt: skip


register(
    DatasetEntry(
        name="cifar10-shaped",
        loader=load_cifar_shaped_dataset,
        description="CIFAR-10's shape generated offline: 3x32x32 images, 10 classes, sizes you set",
        options={"n_train": 5000, "n_test": 1000, "noise": 0.35, "seed": 0},
    )
)
register(
    DatasetEntry(
        name="blocks",
        loader=load_blocks_dataset,
        description="two correlated blocks of coordinates, forget set in one (the ascent paper's example)",
        options={
            "dim": 10,
            "n_forget_block": 100,
            "n_retain_block": 400,
            "n_test": 200,
            "correlation": 0.0,
            "seed": 0,
        },  # fmt: skip
    )
)
register(
    DatasetEntry(
        name="synthetic",
        loader=load_synthetic_dataset,
        description="make_classification: Gaussian clusters, configurable size and classes",
        options={
            "n_samples": 2000,
            "n_features": 20,
            "n_informative": 10,
            "n_classes": 4,
            "class_sep": 1.0,
            "flip_y": 0.01,
            "test_fraction": 0.25,
            "seed": 0,
        },
    )
)
