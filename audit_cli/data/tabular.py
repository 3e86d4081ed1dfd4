"""User data files: Parquet tables and ``.npz`` archives.

``--data file.parquet`` and ``--data file.npz`` are routed here by extension (see
``registry.FILE_EXTENSIONS``), with the file as the ``path`` option.

Parquet: one row per example. The label column is required; an ``id`` column gives
stable ids and a ``split`` column (``train`` / ``test``) fixes the split, otherwise
ids are row numbers and a stratified split is drawn. Features are every other numeric
column, or one list column named with ``features=``.

npz: arrays ``x`` and ``y`` (plus optional ``ids`` and ``is_train``), or ``x_train``,
``y_train``, ``x_test`` and ``y_test``. Always loaded with ``allow_pickle=False``: an
archive holding object arrays is refused, because unpickling them could run code.

Labels are kept when they already are the integers 0..C-1; anything else (strings,
booleans, negative or gappy integers) is mapped in sorted order to 0..C-1 and the
original values become the class names.
"""

from __future__ import annotations

import zipfile
import zlib
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pyarrow as pa

from audit_cli.data.builtin import stratified_is_train
from audit_cli.data.dataset import Dataset, DatasetSpec, make_dataset
from audit_cli.data.registry import DatasetEntry, LoadContext, register
from audit_cli.errors import DatasetError, UnsafeArtifactError, UsageError

NPZ_SPLIT_KEYS = ("x_train", "y_train", "x_test", "y_test")
# A zip archive starts with a local file header, or with the end record when empty.
ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
NPY_MAGIC = b"\x93NUMPY"
# How many column names or values an error lists before it stops.
SHOWN = 8


# ---------------------------------------------------------------------------
# Shared by both formats


def data_file(name: str, options: Mapping[str, object]) -> Path:
    raw = str(options["path"])
    if not raw:
        raise UsageError(f"dataset {name!r} needs a file", hint=f"pass --data FILE.{name}")
    path = Path(raw)
    if not path.exists():
        raise DatasetError(f"data file not found: {path}")
    return path


def encode_labels(path: Path, what: str, values: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Labels as stored -> int64 labels in 0..C-1 and the class names."""
    if values.size == 0:
        raise DatasetError(f"{path}: {what} is empty: the dataset has no rows")
    if values.dtype.kind == "f":
        if not np.isfinite(values).all() or (values != np.round(values)).any():
            bad = values[~np.isfinite(values) | (values != np.round(values))][0]
            raise DatasetError(f"{path}: {what} holds non-integer values such as {bad}; a class label is needed")
        values = values.astype(np.int64)
    if values.dtype.kind in "iu":
        classes = np.unique(values)
        if classes[0] == 0 and classes[-1] == len(classes) - 1:
            return values.astype(np.int64), [str(c) for c in range(len(classes))]
    elif values.dtype.kind not in "bUSO":
        raise DatasetError(f"{path}: {what} has dtype {values.dtype}; labels must be integers or strings")
    classes, y = np.unique(values, return_inverse=True)
    names = [c.decode("utf-8", "replace") if isinstance(c, bytes) else str(c) for c in classes]
    return y.reshape(-1).astype(np.int64), names


def check_ids(path: Path, what: str, ids: np.ndarray) -> np.ndarray:
    """Ids must be non-negative and unique; say which ones are not, naming the file."""
    ids = ids.astype(np.int64)
    negative = ids[ids < 0]
    if len(negative):
        raise DatasetError(f"{path}: {what} has {len(negative)} negative id(s), first {int(negative[0])}")
    values, counts = np.unique(ids, return_counts=True)
    repeated = values[counts > 1]
    if len(repeated):
        raise DatasetError(f"{path}: {what} has {len(repeated)} duplicated id(s), first {int(repeated[0])}")
    return ids


def split_stratified(path: Path, y: np.ndarray, options: Mapping[str, object], split_hint: str) -> np.ndarray:
    try:
        return stratified_is_train(y, float(options["test_fraction"]), int(options["seed"]))
    except ValueError as exc:  # scikit-learn: a class too small to appear in both splits
        raise DatasetError(f"{path}: cannot draw a stratified split: {exc}", hint=split_hint) from None


# Models compute in float32: a finite float64 feature beyond its range would become inf.
FLOAT32_MAX = float(np.finfo(np.float32).max)


def check_feature_values(path: Path, values: np.ndarray, where: str = "") -> None:
    """Numeric features the models can take: finite, and within float32's range."""
    if values.dtype.kind != "f":
        return  # integers and booleans are finite, and int64 rounds into float32's range
    bad = int(np.count_nonzero(~np.isfinite(values)))
    if bad:
        raise DatasetError(f"{path}: {bad} missing or non-finite feature value(s) (null, NaN or inf){where}",
                           hint="drop or impute them before auditing")  # fmt: skip
    huge = int(np.count_nonzero(np.abs(values) > FLOAT32_MAX))
    if huge:
        raise DatasetError(f"{path}: {huge} feature value(s) beyond float32's range (about 3.4e38){where}",
                           hint="rescale the features")  # fmt: skip


def standardize_features(x: np.ndarray, is_train: np.ndarray) -> np.ndarray:
    """z-score each feature with train-split statistics; a constant feature is only centred."""
    train = x[is_train].astype(np.float64)
    mean = train.mean(axis=0)
    std = train.std(axis=0)
    std[std == 0] = 1.0
    return ((x - mean) / std).astype(np.float32)


# ---------------------------------------------------------------------------
# Parquet


def load_parquet_dataset(spec: DatasetSpec, options: Mapping[str, object], ctx: LoadContext) -> Dataset:
    path = data_file(spec.name, options)
    table = read_parquet(path)
    if table.num_rows == 0:
        raise DatasetError(f"{path}: the table has no rows")
    columns = table.column_names
    label, id_col, split_col, features = (str(options[k]) for k in ("label", "id", "split", "features"))
    for option, column in (("label", label), ("features", features)):
        if column and column not in columns:
            raise DatasetError(
                f"{path}: no {option} column {column!r}; columns: {listing(columns)}",
                hint=f"name the column with the dataset option {option}=COLUMN",
            )
    # An empty option switches the optional column off even if the file has one.
    id_col = id_col if id_col in columns else ""
    split_col = split_col if split_col in columns else ""
    if features:
        feature_columns = [features]
    else:
        not_features = {label, id_col, split_col} | set(pandas_index_columns(table))
        feature_columns = [c for c in columns if c not in not_features]
    refuse_extension_columns(path, table, [c for c in (label, id_col, split_col) if c] + feature_columns)

    y, class_names = encode_labels(path, f"label column {label!r}", label_values(path, table, label))
    ids = id_values(path, table, id_col) if id_col else None
    x = list_features(path, table, features) if features else column_features(path, table, feature_columns)
    # Drawn last, so a problem in the file is reported before a complaint about the split.
    if split_col:
        is_train = split_values(path, table, split_col)
    else:
        is_train = split_stratified(path, y, options, "add a split column holding train / test")
    if options["standardize"]:
        x = standardize_features(x, is_train)
    return make_dataset(spec, x, y, is_train, class_names, "tabular", ids=ids)


# What a Parquet dataset may unpack to, read from its footer before any column is
# decoded: its pages' uncompressed bytes, and its cells at 8 bytes each (a run-length or
# dictionary-encoded column of one repeated value is a few bytes of pages and gigabytes
# of array). The same bounds as an .npz array.
MAX_PARQUET_BYTES = 4 * 1024**3
MAX_PARQUET_RATIO = 200


def check_parquet_budget(path: Path, meta) -> None:
    """Refuse, from the footer alone, a file that would decode to more than the budget."""
    pages = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    cells = meta.num_rows * max(meta.num_columns, 1) * 8
    size = path.stat().st_size
    if max(pages, cells) > MAX_PARQUET_BYTES:
        raise DatasetError(f"{path}: {meta.num_rows} rows x {meta.num_columns} columns would decode to about "
                           f"{max(pages, cells)} bytes (limit {MAX_PARQUET_BYTES})")  # fmt: skip
    if max(pages, cells) > 2**20 and max(pages, cells) > MAX_PARQUET_RATIO * size:
        raise DatasetError(f"{path}: {size} bytes on disk would decode to {max(pages, cells)} "
                           f"({max(pages, cells) // max(size, 1)}-fold, limit {MAX_PARQUET_RATIO}x): a "
                           "decompression bomb, not a dataset")  # fmt: skip


def read_parquet(path: Path) -> pa.Table:
    import pyarrow.parquet as pq

    # pyarrow >= 14.0.1 no longer unpickles "arrow.py_extension_type" columns on read
    # (CVE-2023-47248); the project requires pyarrow >= 15.
    try:
        check_parquet_budget(path, pq.ParquetFile(path).metadata)
        return pq.read_table(path)
    except (pa.ArrowException, OSError, ValueError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DatasetError(f"{path}: not a readable Parquet file ({first_line})") from None


def listing(names: list[str]) -> str:
    if not names:
        return "none"
    more = f" and {len(names) - SHOWN} more" if len(names) > SHOWN else ""
    return ", ".join(repr(n) for n in names[:SHOWN]) + more


def pandas_index_columns(table: pa.Table) -> list[str]:
    """Columns pandas wrote for a DataFrame index: row labels, not features."""
    meta = table.schema.pandas_metadata or {}
    return [c for c in meta.get("index_columns", []) if isinstance(c, str)]


def refuse_extension_columns(path: Path, table: pa.Table, names: list[str]) -> None:
    """Extension types carry semantics this loader cannot check; refuse rather than guess."""
    found = []
    for name in names:
        dtype = table.schema.field(name).type
        if isinstance(dtype, pa.BaseExtensionType):
            found.append(f"{name!r} ({dtype.extension_name})")
    if found:
        raise DatasetError(
            f"{path}: column(s) of an Arrow extension type cannot be used: {', '.join(found)}",
            hint="store plain numbers, strings or lists of numbers",
        )


def decode_dictionary(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """pandas categoricals arrive dictionary-encoded; look through to the values."""
    if pa.types.is_dictionary(column.type):
        return column.cast(column.type.value_type)
    return column


def is_numeric(dtype: pa.DataType) -> bool:
    return pa.types.is_integer(dtype) or pa.types.is_floating(dtype) or pa.types.is_boolean(dtype)


def is_string(dtype: pa.DataType) -> bool:
    return pa.types.is_string(dtype) or pa.types.is_large_string(dtype) or pa.types.is_string_view(dtype)


def label_values(path: Path, table: pa.Table, name: str) -> np.ndarray:
    column = decode_dictionary(table.column(name))
    if column.null_count:
        raise DatasetError(f"{path}: label column {name!r} has {column.null_count} null(s)")
    if not (is_numeric(column.type) or is_string(column.type)):
        raise DatasetError(f"{path}: label column {name!r} has type {column.type}; labels must be integers or strings")
    return column.to_numpy()


def id_values(path: Path, table: pa.Table, name: str) -> np.ndarray:
    column = table.column(name)
    hint = "or pass the dataset option id= to number the rows instead"
    if not pa.types.is_integer(column.type):
        raise DatasetError(f"{path}: id column {name!r} has type {column.type}; ids must be integers", hint=hint)
    if column.null_count:
        raise DatasetError(f"{path}: id column {name!r} has {column.null_count} null(s)", hint=hint)
    return check_ids(path, f"id column {name!r}", column.to_numpy())


def split_values(path: Path, table: pa.Table, name: str) -> np.ndarray:
    """The split column -> a train mask; only train/test, in any case, are accepted."""
    column = decode_dictionary(table.column(name))
    if not is_string(column.type):
        raise DatasetError(f"{path}: split column {name!r} has type {column.type}; expected 'train' / 'test' strings")
    raw = column.to_numpy(zero_copy_only=False)  # object array, None for nulls
    lowered = np.array([v.strip().lower() if isinstance(v, str) else "" for v in raw], dtype=object)
    is_train = lowered == "train"
    bad = ~(is_train | (lowered == "test"))
    if bad.any():
        raise DatasetError(
            f"{path}: split column {name!r} has value {raw[bad][0]!r} in {int(bad.sum())} row(s); "
            "only 'train' and 'test' are allowed"
        )
    return is_train


def column_features(path: Path, table: pa.Table, names: list[str]) -> np.ndarray:
    """Scalar numeric columns -> float32 ``(N, F)``."""
    if not names:
        raise DatasetError(
            f"{path}: no feature columns, only label/id/split",
            hint="name a list column holding the features with the dataset option features=COLUMN",
        )
    for name in names:
        dtype = table.schema.field(name).type
        if not is_numeric(dtype):
            nested = pa.types.is_list(dtype) or pa.types.is_large_list(dtype) or pa.types.is_fixed_size_list(dtype)
            raise DatasetError(
                f"{path}: feature column {name!r} has type {dtype}; "
                "feature columns must be numeric (int, float or bool)",
                hint="name it with the dataset option features=COLUMN"
                if nested
                else "drop the column or encode it as numbers",
            )
    x = np.empty((table.num_rows, len(names)), dtype=np.float32)
    missing, first_missing = 0, None
    for j, name in enumerate(names):
        # Through float64 with safe=False: nulls become NaN, huge integers just round.
        values = table.column(name).cast(pa.float64(), safe=False).to_numpy()
        bad = int(np.count_nonzero(~np.isfinite(values)))
        if bad and first_missing is None:
            first_missing = name
        missing += bad
        if not bad:
            check_feature_values(path, values, f" in column {name!r}")
            x[:, j] = values
    if missing:
        raise DatasetError(
            f"{path}: {missing} missing or non-finite feature value(s) (null, NaN or inf), "
            f"first in column {first_missing!r}",
            hint="drop or impute them before auditing",
        )
    return x


def list_features(path: Path, table: pa.Table, name: str) -> np.ndarray:
    """One list column with the same number of numeric values per row -> float32 ``(N, F)``."""
    column = table.column(name)
    dtype = column.type
    if not (pa.types.is_list(dtype) or pa.types.is_large_list(dtype) or pa.types.is_fixed_size_list(dtype)):
        raise DatasetError(f"{path}: features column {name!r} has type {dtype}; expected a list of numbers per row")
    if not is_numeric(dtype.value_type):
        raise DatasetError(
            f"{path}: features column {name!r} holds lists of {dtype.value_type}; the values must be numeric"
        )
    if column.null_count:
        raise DatasetError(f"{path}: features column {name!r} has {column.null_count} null row(s)")
    import pyarrow.compute as pc

    lists = column.combine_chunks()
    lengths = np.unique(pc.list_value_length(lists).to_numpy())
    if len(lengths) > 1:
        seen = ", ".join(str(n) for n in lengths[:SHOWN]) + (", ..." if len(lengths) > SHOWN else "")
        raise DatasetError(
            f"{path}: features column {name!r} has lists of different lengths ({seen}); "
            "every row needs the same number of features"
        )
    width = int(lengths[0])
    if width == 0:
        raise DatasetError(f"{path}: features column {name!r} holds empty lists")
    values = pc.list_flatten(lists).cast(pa.float64(), safe=False).to_numpy(zero_copy_only=False)
    check_feature_values(path, values, f" in column {name!r}")
    return values.astype(np.float32).reshape(table.num_rows, width)


# ---------------------------------------------------------------------------
# npz


def load_npz_dataset(spec: DatasetSpec, options: Mapping[str, object], ctx: LoadContext) -> Dataset:
    path = data_file(spec.name, options)
    arrays = read_npz(path)
    if "x" in arrays:
        x, y = arrays["x"], arrays["y"]
        check_rows(path, x, y, "x", "y")
        ids = arrays.get("ids")
        if ids is not None:
            if ids.shape != y.shape or ids.dtype.kind not in "iu":
                raise DatasetError(f"{path}: 'ids' is {ids.dtype} with shape {ids.shape}, expected {len(y)} integers")
            ids = check_ids(path, "'ids'", ids)
        is_train = arrays.get("is_train")
        if is_train is not None and (is_train.shape != y.shape or is_train.dtype != np.bool_):
            raise DatasetError(
                f"{path}: 'is_train' is {is_train.dtype} with shape {is_train.shape}, expected {len(y)} booleans"
            )
    else:
        check_rows(path, arrays["x_train"], arrays["y_train"], "x_train", "y_train")
        check_rows(path, arrays["x_test"], arrays["y_test"], "x_test", "y_test")
        if arrays["x_train"].shape[1:] != arrays["x_test"].shape[1:]:
            raise DatasetError(
                f"{path}: x_train rows have shape {arrays['x_train'].shape[1:]} "
                f"but x_test rows {arrays['x_test'].shape[1:]}"
            )
        x = np.concatenate([arrays["x_train"], arrays["x_test"]])
        y = np.concatenate([arrays["y_train"], arrays["y_test"]])
        is_train = np.arange(len(y)) < len(arrays["y_train"])
        ids = None

    check_feature_values(path, x)
    y, class_names = encode_labels(path, "'y'", y)
    if is_train is None:
        is_train = split_stratified(path, y, options, "add an 'is_train' boolean array")
    if x.ndim == 2:
        modality = "tabular"
        x = standardize_features(x, is_train) if options["standardize"] else x
    elif x.ndim == 4:
        modality = "image"  # kept as stored: per-feature z-scores would erase image structure
    else:
        raise DatasetError(f"{path}: features have shape {x.shape}; expected (N, F) tabular or (N, C, H, W) images")
    return make_dataset(spec, x, y, is_train, class_names, modality, ids=ids)


def check_rows(path: Path, x: np.ndarray, y: np.ndarray, x_name: str, y_name: str) -> None:
    if x.dtype.kind not in "biuf":
        raise DatasetError(f"{path}: {x_name!r} has dtype {x.dtype}; features must be numeric")
    if y.ndim != 1:
        raise DatasetError(f"{path}: {y_name!r} has shape {y.shape}; expected one class label per row")
    if x.ndim < 1 or len(x) != len(y):
        raise DatasetError(f"{path}: {x_name!r} has shape {x.shape} but {y_name!r} has {len(y)} labels")


# The largest array an .npz dataset may hold (CIFAR-10's training images as float32 are
# 614 MB); checked from the header, before numpy allocates it.
MAX_NPZ_ARRAY_BYTES = 4 * 1024**3
# Real features compress a few-fold; a megabyte that inflates to a gigabyte is an attack.
MAX_NPZ_RATIO = 200


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """Load the arrays the dataset needs, and only those, without ever unpickling."""
    try:
        with path.open("rb") as fh:
            head = fh.read(6)
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read: {exc.strerror}") from None
    # Checked first because np.load falls back to pickle for unknown content, so a
    # stray text file would otherwise be reported as pickled data.
    if head.startswith(NPY_MAGIC):
        raise DatasetError(
            f"{path}: a single .npy array, not an .npz archive", hint="save with np.savez(path, x=..., y=...)"
        )
    if not head.startswith(ZIP_MAGICS):
        raise DatasetError(f"{path}: not an .npz archive (no zip header)")
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DatasetError(f"{path}: corrupt .npz archive ({exc})") from None
    with archive:
        found = set(archive.files)
        has_xy, has_split = {"x", "y"} <= found, set(NPZ_SPLIT_KEYS) <= found
        if has_xy and has_split:
            raise DatasetError(f"{path}: holds both x/y and x_train/y_train/x_test/y_test; keep one layout")
        if has_xy:
            wanted = ["x", "y"] + [k for k in ("ids", "is_train") if k in found]
        elif has_split:
            wanted = list(NPZ_SPLIT_KEYS)
        else:
            raise DatasetError(
                f"{path}: needs arrays x and y, or x_train, y_train, x_test and y_test; found {listing(sorted(found))}"
            )
        return {key: npz_array(path, archive, key) for key in wanted}


def _check_npy_header(path: Path, archive: np.lib.npyio.NpzFile, key: str) -> None:
    """Refuse an array whose header claims more data than its member holds (numpy would
    allocate what the header says first: 1e12 elements from a few bytes), or more than
    MAX_NPZ_ARRAY_BYTES."""
    member = f"{key}.npy"
    try:
        info = archive.zip.getinfo(member)
        with archive.zip.open(member) as fh:
            version = np.lib.format.read_magic(fh)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _, dtype = read(fh)
            header = fh.tell()
    except (KeyError, ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DatasetError(f"{path}: array {key!r} has a corrupt header ({exc})") from None
    if info.file_size > 2**20 and info.file_size > MAX_NPZ_RATIO * max(info.compress_size, 1):
        raise DatasetError(f"{path}: array {key!r} inflates {info.file_size // max(info.compress_size, 1)}-fold "
                           f"(limit {MAX_NPZ_RATIO}x): a decompression bomb, not a dataset")  # fmt: skip
    claimed = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if dtype.hasobject:
        return  # refused as pickled objects below, without reading it
    if claimed > info.file_size - header or claimed > MAX_NPZ_ARRAY_BYTES:
        raise DatasetError(f"{path}: array {key!r} claims {claimed} bytes; the archive holds {info.file_size} "
                           f"(limit {MAX_NPZ_ARRAY_BYTES})")  # fmt: skip


def npz_array(path: Path, archive: np.lib.npyio.NpzFile, key: str) -> np.ndarray:
    _check_npy_header(path, archive, key)
    try:
        return archive[key]
    except ValueError as exc:
        if "allow_pickle" in str(exc):  # numpy's refusal of an object array
            raise UnsafeArtifactError(
                f"{path}: array {key!r} holds pickled objects; refused, nothing was loaded",
                hint="save plain numeric arrays (no dtype=object)",
            ) from None
        raise DatasetError(f"{path}: array {key!r} is corrupt ({exc})") from None
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise DatasetError(f"{path}: array {key!r} is corrupt ({exc})") from None


register(
    DatasetEntry(
        name="parquet",
        loader=load_parquet_dataset,
        description="a Parquet table: label column, optional id and split columns, numeric features",
        options={
            "path": "",
            "label": "label",
            "id": "id",
            "split": "split",
            "features": "",
            "test_fraction": 0.25,
            "seed": 0,
            "standardize": True,
        },
    )
)
register(
    DatasetEntry(
        name="npz",
        loader=load_npz_dataset,
        description="a NumPy .npz archive: x and y (optional ids, is_train), or x_train/y_train/x_test/y_test",
        options={"path": "", "test_fraction": 0.25, "seed": 0, "standardize": True},
    )
)
