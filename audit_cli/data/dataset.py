"""The in-memory dataset every command works on: features, labels, stable ids, splits.

A dataset is the pool the audit draws from: its train and test examples together, each
with an integer id that never changes between runs (id files, checkpoints and shadow
banks all refer to examples by id). The content fingerprint lets a checkpoint say which
data it was trained on, so a mismatched dataset is caught before anything is scored.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from audit_cli.errors import DatasetError, IdFileError

Modality = Literal["image", "sequence", "tabular"]

FINGERPRINT_VERSION = b"unlearning-audit/dataset/v1"


@dataclass(frozen=True)
class DatasetSpec:
    """How to load a dataset again: registry name plus the options that shape it."""

    name: str
    """Registry name (``digits``, ``cifar10``, ``parquet``...)."""
    options: Mapping[str, object] = field(default_factory=dict)
    """Options that change the content (size, seed, file path...), not where it lives."""

    def to_dict(self) -> dict:
        return {"name": self.name, "options": dict(sorted(self.options.items()))}

    @classmethod
    def from_dict(cls, data: Mapping) -> DatasetSpec:
        return cls(name=str(data["name"]), options=dict(data.get("options", {})))


@dataclass(frozen=True, eq=False)
class Dataset:
    """Features, labels and ids of every example, train and test, ordered by id."""

    spec: DatasetSpec
    """How this dataset was loaded."""
    x: np.ndarray
    """Features, float32, shape ``(n_examples, *input_shape)``."""
    y: np.ndarray
    """Labels, int64 in ``[0, num_classes)``."""
    ids: np.ndarray
    """Stable example ids, int64, unique, increasing."""
    is_train: np.ndarray
    """True for examples of the training split, False for the test split."""
    class_names: tuple[str, ...]
    """Human names of the classes, index = label."""
    modality: Modality
    """``image`` (C, H, W), ``sequence`` (L,) or ``tabular`` (F,)."""
    fingerprint: str
    """sha256 over features, labels, ids and split: identifies the content."""
    pixel_stats: tuple[tuple[float, ...], tuple[float, ...]] | None = None
    """For images standardized from [0, 1] pixels: per-channel (mean, std), else None."""

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.x.shape[1:])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def train_ids(self) -> np.ndarray:
        return self.ids[self.is_train]

    @property
    def test_ids(self) -> np.ndarray:
        return self.ids[~self.is_train]

    def rows(self, ids: np.ndarray) -> np.ndarray:
        """Row positions of ``ids``; an id the dataset does not have is an error."""
        ids = np.asarray(ids, dtype=np.int64)
        pos = np.searchsorted(self.ids, ids)
        pos = np.clip(pos, 0, len(self.ids) - 1)
        unknown = ids[self.ids[pos] != ids] if len(ids) else ids
        if len(unknown):
            shown = ", ".join(str(i) for i in unknown[:5])
            more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
            raise IdFileError(
                f"{len(unknown)} id(s) not in dataset {self.name!r}: {shown}{more}",
                hint=f"valid ids are {int(self.ids.min())}..{int(self.ids.max())}",
            )
        return pos

    def ids_of_class(self, label: int, *, split: Literal["train", "test", "all"] = "train") -> np.ndarray:
        """Ids of the examples labelled ``label`` in one split."""
        if not 0 <= label < self.num_classes:
            raise DatasetError(f"class {label} does not exist in {self.name!r} (classes 0..{self.num_classes - 1})")
        mask = self.y == label
        if split == "train":
            mask &= self.is_train
        elif split == "test":
            mask &= ~self.is_train
        return self.ids[mask]


def fingerprint_arrays(x: np.ndarray, y: np.ndarray, ids: np.ndarray, is_train: np.ndarray) -> str:
    """Content hash of a dataset; independent of its name, path or load options."""
    h = hashlib.sha256(FINGERPRINT_VERSION)
    for arr in (x, y, ids, is_train):
        arr = np.ascontiguousarray(arr)
        h.update(f"{arr.dtype.str}{arr.shape}".encode())
        h.update(memoryview(arr).cast("B"))
    return h.hexdigest()


def make_dataset(
    spec: DatasetSpec,
    x: np.ndarray,
    y: np.ndarray,
    is_train: np.ndarray,
    class_names: tuple[str, ...] | list[str],
    modality: Modality,
    ids: np.ndarray | None = None,
    pixel_stats: tuple[tuple[float, ...], tuple[float, ...]] | None = None,
) -> Dataset:
    """Validate arrays from a loader, order them by id and fingerprint them."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    y = np.asarray(y)
    n = len(x)
    if len(y) != n or len(is_train) != n:
        raise DatasetError(f"{spec.name}: {n} feature rows but {len(y)} labels and {len(is_train)} split flags")
    if n == 0:
        raise DatasetError(f"{spec.name}: the dataset has no examples")
    if not np.issubdtype(y.dtype, np.integer):
        raise DatasetError(f"{spec.name}: labels must be integers, got {y.dtype}")
    y = y.astype(np.int64)
    num_classes = len(class_names)
    if y.min() < 0 or y.max() >= num_classes:
        raise DatasetError(f"{spec.name}: labels must lie in 0..{num_classes - 1}, got {y.min()}..{y.max()}")
    if not np.isfinite(x).all():
        bad = int((~np.isfinite(x.reshape(n, -1))).any(axis=1).sum())
        raise DatasetError(f"{spec.name}: {bad} example(s) have NaN or infinite features")
    ids = np.arange(n, dtype=np.int64) if ids is None else np.asarray(ids)
    if not np.issubdtype(ids.dtype, np.integer):
        raise DatasetError(f"{spec.name}: ids must be integers, got {ids.dtype}")
    ids = ids.astype(np.int64)
    if (ids < 0).any():
        raise DatasetError(f"{spec.name}: ids must be non-negative")
    is_train = np.asarray(is_train, dtype=bool)
    if (np.diff(ids) < 0).any():  # reorder (a copy of x) only when ids are not increasing
        order = np.argsort(ids, kind="stable")
        ids, x, y, is_train = ids[order], x[order], y[order], is_train[order]
    dup = ids[1:][ids[1:] == ids[:-1]]
    if len(dup):
        raise DatasetError(f"{spec.name}: {len(dup)} duplicate id(s), first {int(dup[0])}")
    if not is_train.any() or is_train.all():
        raise DatasetError(f"{spec.name}: both a train and a test split are needed")
    return Dataset(
        spec=spec,
        x=x,
        y=y,
        ids=ids,
        is_train=is_train,
        class_names=tuple(str(c) for c in class_names),
        modality=modality,
        fingerprint=fingerprint_arrays(x, y, ids, is_train),
        pixel_stats=pixel_stats,
    )
