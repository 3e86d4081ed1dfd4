"""Parquet and npz data files: what loads, and every refusal naming its cause."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from audit_cli.data import tabular  # noqa: F401  (registers the loaders)
from audit_cli.data.registry import load_dataset
from audit_cli.errors import DatasetError, UnsafeArtifactError, UsageError


def write_parquet(path, columns: dict) -> str:
    pq.write_table(pa.table(columns), path)
    return str(path)


def numeric_table(n: int = 40, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {
        "a": rng.normal(5.0, 2.0, n),
        "b": rng.integers(0, 100, n),
        "flag": rng.random(n) < 0.5,
        "label": np.arange(n) % 4,
    }


# ---------------------------------------------------------------------------
# Parquet: what loads


def test_parquet_numeric_columns_standardized_on_train_split(tmp_path):
    cols = numeric_table()
    path = write_parquet(tmp_path / "t.parquet", cols)
    ds = load_dataset(path)

    assert ds.spec.name == "parquet" and ds.spec.options["path"] == path
    assert ds.modality == "tabular" and ds.x.shape == (40, 3)
    np.testing.assert_array_equal(ds.ids, np.arange(40))
    np.testing.assert_array_equal(ds.y, cols["label"])
    assert ds.class_names == ("0", "1", "2", "3")
    assert ds.is_train.sum() == 30  # test_fraction 0.25, stratified: 10 per class
    assert all(ds.is_train[ds.y == c].sum() == 7 or ds.is_train[ds.y == c].sum() == 8 for c in range(4))

    raw = np.column_stack([cols["a"], cols["b"], cols["flag"]]).astype(np.float64)
    mean, std = raw[ds.is_train].mean(axis=0), raw[ds.is_train].std(axis=0)
    np.testing.assert_allclose(ds.x, (raw - mean) / std, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ds.x[ds.is_train].mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(ds.x[ds.is_train].std(axis=0), 1.0, atol=1e-5)


def test_a_file_dataset_spec_read_back_loads_the_same_dataset(tmp_path):
    """A checkpoint records a file dataset's spec with its path; loading it back checks the
    options as typed ones (the path among them) and gives the same dataset."""
    from audit_cli.data.dataset import DatasetSpec

    for name, write in (("parquet", lambda p: write_parquet(p, numeric_table())),
                        ("npz", lambda p: np.savez(p, x=np.random.default_rng(0).normal(size=(40, 3)),
                                                   y=np.arange(40) % 4) or str(p))):  # fmt: skip
        path = write(tmp_path / f"t.{name}")
        ds = load_dataset(path)
        again = load_dataset(DatasetSpec(name=name, options=dict(ds.spec.options)))
        assert again.spec == ds.spec and again.fingerprint == ds.fingerprint
        with pytest.raises(DatasetError, match=f"the recorded dataset '{name}'"):
            load_dataset(DatasetSpec(name=name, options=dict(ds.spec.options) | {"test_fraction": "lots"}))


def test_parquet_standardize_off_keeps_values_and_constant_column_is_only_centred(tmp_path):
    cols = numeric_table()
    cols["const"] = np.full(40, 3.0)
    path = write_parquet(tmp_path / "t.parquet", cols)

    raw = load_dataset(path, {"standardize": "false"})
    np.testing.assert_allclose(raw.x[:, 0], cols["a"].astype(np.float32))
    np.testing.assert_array_equal(raw.x[:, 3], 3.0)

    ds = load_dataset(path)
    np.testing.assert_array_equal(ds.x[:, 3], 0.0)


def test_parquet_split_seed_changes_split_and_fingerprint(tmp_path):
    path = write_parquet(tmp_path / "t.parquet", numeric_table())
    a, b = load_dataset(path, {"seed": 0}), load_dataset(path, {"seed": 1})
    assert not np.array_equal(a.is_train, b.is_train)
    assert a.fingerprint != b.fingerprint
    assert load_dataset(path, {"seed": 0}).fingerprint == a.fingerprint


def test_parquet_list_feature_column(tmp_path):
    feats = [[float(i), float(i) * 2, -1.0] for i in range(8)]
    path = write_parquet(
        tmp_path / "t.parquet",
        {"emb": pa.array(feats, pa.list_(pa.float32(), 3)), "label": [0, 1] * 4, "other": ["x"] * 8},
    )
    ds = load_dataset(path, {"features": "emb", "standardize": False, "test_fraction": 0.5})
    assert ds.x.shape == (8, 3)
    np.testing.assert_array_equal(ds.x, np.array(feats, dtype=np.float32))

    # Variable-size list type with one length per row is accepted too.
    path = write_parquet(tmp_path / "v.parquet", {"emb": pa.array(feats, pa.list_(pa.int64())), "label": [0, 1] * 4})
    ds = load_dataset(path, {"features": "emb", "standardize": False, "test_fraction": 0.5})
    np.testing.assert_array_equal(ds.x, np.array(feats, dtype=np.float32))


def test_parquet_id_and_split_columns_are_honoured(tmp_path):
    ids = [40, 10, 30, 20, 50, 60]
    path = write_parquet(
        tmp_path / "t.parquet",
        {
            "id": ids,
            "split": ["train", "TEST", "Train", "train", "test", "train"],
            "f": [4.0, 1.0, 3.0, 2.0, 5.0, 6.0],
            "label": [1, 0, 1, 0, 1, 0],
        },
    )
    ds = load_dataset(path, {"standardize": False})
    np.testing.assert_array_equal(ds.ids, [10, 20, 30, 40, 50, 60])  # ordered by id
    np.testing.assert_array_equal(ds.is_train, [False, True, True, True, False, True])
    np.testing.assert_array_equal(ds.x[:, 0], [1, 2, 3, 4, 5, 6])  # rows travel with their ids
    np.testing.assert_array_equal(ds.y, [0, 0, 1, 1, 1, 0])
    assert ds.input_shape == (1,)  # id and split are not features

    # id= switches the id column off: rows are numbered and 'id' becomes a feature.
    ds = load_dataset(path, {"standardize": False, "id": ""})
    np.testing.assert_array_equal(ds.ids, np.arange(6))
    assert ds.input_shape == (2,)


def test_parquet_string_labels_are_mapped_in_sorted_order(tmp_path):
    labels = ["dog", "cat", "emu", "cat", "dog", "emu"] * 3
    path = write_parquet(tmp_path / "t.parquet", {"f": np.arange(18.0), "species": labels})
    ds = load_dataset(path, {"label": "species", "test_fraction": 0.34})
    assert ds.class_names == ("cat", "dog", "emu")
    np.testing.assert_array_equal(ds.y, [{"cat": 0, "dog": 1, "emu": 2}[s] for s in labels])


def test_parquet_gappy_integer_labels_are_remapped_and_named(tmp_path):
    labels = [3, 7, -1, 7, 3, -1] * 2
    cols = {"f": np.arange(12.0), "label": labels, "split": ["train", "test"] * 6}
    path = write_parquet(tmp_path / "t.parquet", cols)
    ds = load_dataset(path)
    assert ds.class_names == ("-1", "3", "7")
    np.testing.assert_array_equal(ds.y, [1, 2, 0, 2, 1, 0] * 2)


def test_parquet_pandas_index_column_is_not_a_feature(tmp_path):
    table = pa.table({"f": [1.0, 2.0, 3.0, 4.0], "label": [0, 1, 0, 1], "__index_level_0__": [7, 8, 9, 10]})
    pandas_meta = {"index_columns": ["__index_level_0__"], "columns": [], "column_indexes": []}
    table = table.replace_schema_metadata({b"pandas": json.dumps(pandas_meta).encode()})
    pq.write_table(table, tmp_path / "t.parquet")
    ds = load_dataset(str(tmp_path / "t.parquet"), {"test_fraction": 0.5})
    assert ds.input_shape == (1,)


def test_parquet_dictionary_encoded_labels(tmp_path):
    labels = pa.array(["b", "a", "b", "a"] * 2).dictionary_encode()
    path = write_parquet(tmp_path / "t.parquet", {"f": np.arange(8.0), "label": labels, "split": ["train", "test"] * 4})
    ds = load_dataset(path)
    assert ds.class_names == ("a", "b")
    np.testing.assert_array_equal(ds.y, [1, 0, 1, 0] * 2)


# ---------------------------------------------------------------------------
# Parquet: refusals


def test_parquet_missing_label_column_lists_columns(tmp_path):
    path = write_parquet(tmp_path / "t.parquet", {"f": [1.0, 2.0], "target": [0, 1]})
    with pytest.raises(DatasetError, match=r"t.parquet: no label column 'label'; columns: 'f', 'target'") as info:
        load_dataset(path)
    assert "label=COLUMN" in info.value.hint


def test_parquet_string_feature_column_is_named_with_its_type(tmp_path):
    cols = numeric_table(8)
    cols["city"] = ["Oslo"] * 8
    path = write_parquet(tmp_path / "t.parquet", cols)
    with pytest.raises(DatasetError, match=r"feature column 'city' has type string; feature columns must be numeric"):
        load_dataset(path)


@pytest.mark.parametrize(
    "a, count",
    [
        (pa.array([1.0, None, 3.0, None] * 2), 4),
        (pa.array([1.0, float("nan"), 3.0, 4.0] * 2), 2),
        (pa.array([1, None, 3, 4] * 2, pa.int64()), 2),
    ],
)
def test_parquet_null_or_nan_feature_is_counted(tmp_path, a, count):
    path = write_parquet(tmp_path / "t.parquet", {"ok": np.arange(8.0), "a": a, "label": [0, 1] * 4})
    with pytest.raises(DatasetError, match=rf"{count} missing or non-finite feature value\(s\).*first in column 'a'"):
        load_dataset(path)


def test_parquet_null_inside_list_features(tmp_path):
    feats = pa.array([[1.0, None], [2.0, 3.0]] * 4, pa.list_(pa.float64()))
    path = write_parquet(tmp_path / "t.parquet", {"emb": feats, "label": [0, 1] * 4})
    with pytest.raises(DatasetError, match=r"4 missing or non-finite feature value\(s\).*column 'emb'"):
        load_dataset(path, {"features": "emb"})


def test_parquet_variable_length_list_column(tmp_path):
    feats = [[1.0, 2.0], [1.0, 2.0, 3.0], [1.0], [1.0, 2.0]]
    path = write_parquet(tmp_path / "t.parquet", {"emb": feats, "label": [0, 1, 0, 1]})
    with pytest.raises(DatasetError, match=r"'emb' has lists of different lengths \(1, 2, 3\)"):
        load_dataset(path, {"features": "emb"})


def test_parquet_list_column_without_features_option_gets_a_hint(tmp_path):
    path = write_parquet(tmp_path / "t.parquet", {"emb": [[1.0, 2.0]] * 4, "label": [0, 1] * 2})
    with pytest.raises(DatasetError, match=r"feature column 'emb' has type list<") as info:
        load_dataset(path)
    assert "features=COLUMN" in info.value.hint


def test_parquet_bad_split_value_is_named(tmp_path):
    cols = {"f": np.arange(4.0), "label": [0, 1, 0, 1], "split": ["train", "valid", "test", "valid"]}
    path = write_parquet(tmp_path / "t.parquet", cols)
    with pytest.raises(DatasetError, match=r"split column 'split' has value 'valid' in 2 row\(s\)"):
        load_dataset(path)


@pytest.mark.parametrize(
    "ids, message",
    [
        ([1, 2, 2, 3], r"id column 'id' has 1 duplicated id\(s\), first 2"),
        ([1, -5, 2, 3], r"id column 'id' has 1 negative id\(s\), first -5"),
        ([1.0, 2.0, 3.0, 4.0], r"id column 'id' has type double; ids must be integers"),
        (pa.array([1, None, 3, 4]), r"id column 'id' has 1 null\(s\)"),
    ],
)
def test_parquet_bad_ids(tmp_path, ids, message):
    path = write_parquet(
        tmp_path / "t.parquet", {"id": ids, "f": np.arange(4.0), "label": [0, 1, 0, 1], "split": ["train", "test"] * 2}
    )
    with pytest.raises(DatasetError, match=message):
        load_dataset(path)


def test_parquet_corrupt_and_missing_files(tmp_path):
    bad = tmp_path / "bad.parquet"
    bad.write_text("id,label\n1,0\n")
    with pytest.raises(DatasetError, match=r"bad.parquet: not a readable Parquet file"):
        load_dataset(str(bad))

    good = write_parquet(tmp_path / "cut.parquet", numeric_table())
    data = (tmp_path / "cut.parquet").read_bytes()
    (tmp_path / "cut.parquet").write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match=r"cut.parquet: not a readable Parquet file"):
        load_dataset(good)

    with pytest.raises(DatasetError, match=r"data file not found: .*nope.parquet"):
        load_dataset(str(tmp_path / "nope.parquet"))
    with pytest.raises(UsageError, match="needs a file"):
        load_dataset("parquet")


def test_parquet_feature_option_naming_unknown_column(tmp_path):
    path = write_parquet(tmp_path / "t.parquet", numeric_table(8))
    with pytest.raises(DatasetError, match=r"no features column 'emb'; columns: 'a', 'b', 'flag', 'label'"):
        load_dataset(path, {"features": "emb"})


class RgbType(pa.ExtensionType):
    """A tiny extension type: three uint8 channels stored as a fixed-size list."""

    def __init__(self) -> None:
        super().__init__(pa.list_(pa.uint8(), 3), "test.rgb")

    def __arrow_ext_serialize__(self) -> bytes:
        return b""

    @classmethod
    def __arrow_ext_deserialize__(cls, storage_type, serialized):
        return cls()


@pytest.fixture
def rgb_type():
    rgb = RgbType()
    pa.register_extension_type(rgb)
    try:
        yield rgb
    finally:
        pa.unregister_extension_type("test.rgb")


def test_parquet_extension_type_column_is_refused(tmp_path, rgb_type):
    storage = pa.array([[1, 2, 3]] * 4, pa.list_(pa.uint8(), 3))
    colour = pa.ExtensionArray.from_storage(rgb_type, storage)
    path = write_parquet(tmp_path / "t.parquet", {"f": np.arange(4.0), "colour": colour, "label": [0, 1] * 2})
    assert isinstance(pq.read_table(path).schema.field("colour").type, RgbType)  # it round-trips as the extension
    with pytest.raises(DatasetError, match=r"extension type cannot be used: 'colour' \(test.rgb\)"):
        load_dataset(path)
    with pytest.raises(DatasetError, match=r"'colour' \(test.rgb\)"):
        load_dataset(path, {"features": "colour"})


# ---------------------------------------------------------------------------
# npz


def test_npz_x_y_loads_standardized(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.normal(3.0, 4.0, size=(40, 5))
    y = np.arange(40) % 2
    np.savez(tmp_path / "d.npz", x=x, y=y)
    ds = load_dataset(str(tmp_path / "d.npz"))
    assert ds.spec.name == "npz" and ds.modality == "tabular" and ds.x.shape == (40, 5)
    assert ds.is_train.sum() == 30
    np.testing.assert_array_equal(ds.y, y)
    mean, std = x[ds.is_train].mean(axis=0), x[ds.is_train].std(axis=0)
    np.testing.assert_allclose(ds.x, (x - mean) / std, rtol=1e-5, atol=1e-5)


def test_npz_ids_and_is_train_are_honoured(tmp_path):
    x = np.arange(12.0).reshape(6, 2)
    np.savez(
        tmp_path / "d.npz",
        x=x,
        y=np.array(["b", "a", "b", "a", "b", "a"]),
        ids=np.array([5, 3, 1, 0, 2, 4]),
        is_train=np.array([True, True, False, True, False, True]),
    )
    ds = load_dataset(str(tmp_path / "d.npz"), {"standardize": False})
    np.testing.assert_array_equal(ds.ids, np.arange(6))
    np.testing.assert_array_equal(ds.x[:, 0], [6, 4, 8, 2, 10, 0])
    np.testing.assert_array_equal(ds.is_train, [True, False, False, True, True, True])
    assert ds.class_names == ("a", "b")
    np.testing.assert_array_equal(ds.y, [0, 1, 1, 0, 0, 1])


def test_npz_train_test_layout_with_images(tmp_path):
    rng = np.random.default_rng(2)
    x_train = rng.random((6, 1, 4, 4)).astype(np.float32)
    x_test = rng.random((3, 1, 4, 4)).astype(np.float32)
    np.savez(tmp_path / "d.npz", x_train=x_train, y_train=[0, 1, 2] * 2, x_test=x_test, y_test=[2, 1, 0])
    ds = load_dataset(str(tmp_path / "d.npz"))
    assert ds.modality == "image" and ds.input_shape == (1, 4, 4)
    np.testing.assert_array_equal(ds.is_train, [True] * 6 + [False] * 3)
    np.testing.assert_array_equal(ds.x, np.concatenate([x_train, x_test]))  # images are not z-scored
    np.testing.assert_array_equal(ds.y, [0, 1, 2, 0, 1, 2, 2, 1, 0])


def test_npz_object_array_is_refused_as_unsafe(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.array([{"a": 1}, None], dtype=object), y=np.array([0, 1]))
    message = r"d.npz: array 'x' holds pickled objects; refused, nothing was loaded"
    with pytest.raises(UnsafeArtifactError, match=message):
        load_dataset(str(tmp_path / "d.npz"))


def test_npz_missing_keys_lists_what_was_found(tmp_path):
    np.savez(tmp_path / "d.npz", features=np.zeros((4, 2)), labels=np.zeros(4))
    with pytest.raises(DatasetError, match=r"needs arrays x and y, .*; found 'features', 'labels'"):
        load_dataset(str(tmp_path / "d.npz"))
    np.savez(tmp_path / "e.npz", x_train=np.zeros((4, 2)), y_train=np.zeros(4), x_test=np.zeros((2, 2)))
    with pytest.raises(DatasetError, match=r"found 'x_test', 'x_train', 'y_train'"):
        load_dataset(str(tmp_path / "e.npz"))


@pytest.mark.parametrize(
    "content, message",
    [
        (b"just some text\n", "not an .npz archive"),
        (b"PK\x03\x04" + b"\x00" * 40, "corrupt .npz archive"),
    ],
)
def test_npz_corrupt_files(tmp_path, content, message):
    (tmp_path / "d.npz").write_bytes(content)
    with pytest.raises(DatasetError, match=message):
        load_dataset(str(tmp_path / "d.npz"))


def test_npz_corrupt_member_is_a_dataset_error(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.arange(4000.0).reshape(1000, 4), y=np.arange(1000) % 2)
    data = bytearray((tmp_path / "d.npz").read_bytes())
    data[200:210] = b"\xff" * 10  # inside x's stored bytes: the zip CRC check fails
    (tmp_path / "d.npz").write_bytes(bytes(data))
    with pytest.raises(DatasetError, match=r"array 'x' is corrupt"):
        load_dataset(str(tmp_path / "d.npz"))


def test_npz_shape_mismatches(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((4, 2)), y=np.zeros(3, dtype=int))
    with pytest.raises(DatasetError, match=r"'x' has shape \(4, 2\) but 'y' has 3 labels"):
        load_dataset(str(tmp_path / "d.npz"))
    np.savez(tmp_path / "e.npz", x=np.zeros((4, 2, 3)), y=np.array([0, 1, 0, 1]), is_train=np.array([1, 0, 1, 1]))
    with pytest.raises(DatasetError, match=r"'is_train' is int64 with shape \(4,\), expected 4 booleans"):
        load_dataset(str(tmp_path / "e.npz"))
    np.savez(tmp_path / "f.npz", x=np.zeros((4, 2, 3)), y=np.array([0, 1, 0, 1]), is_train=np.array([1, 0, 1, 1], bool))
    with pytest.raises(DatasetError, match=r"features have shape \(4, 2, 3\); expected \(N, F\)"):
        load_dataset(str(tmp_path / "f.npz"))
