"""Malformed and malicious inputs through the CLI, as they would arrive in a stranger's PR.

Every case runs a command that would write an output file and asserts four things: the
exit code, a one-line error (plus at most a hint line) naming the problem, that no code
from the input ran (a payload would create a marker file), and that nothing was
written (the folder holds exactly the inputs afterwards). Lower-level variants of most
cases live beside the code they exercise (tests/models, tests/data, tests/test_config.py).
"""

from __future__ import annotations

import io
import json
import os
import pickle
import struct
import zipfile
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from typer.testing import CliRunner

from audit_cli.app import app

SAMPLES = Path(__file__).resolve().parents[2] / "sample_models"
ORIGINAL = SAMPLES / "digits_mlp_original.safetensors"


class Payload:
    """Unpickling this runs ``os.system`` (in a real attack: anything)."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


class ExecPayload(Payload):
    def __reduce__(self):
        import builtins

        return (builtins.exec, (f"open({self.command!r}, 'w').write('ran')",))


def touch(marker: Path) -> str:
    return f"touch {marker}"


# -- checkpoint builders: (folder, marker) -> path ---------------------------------------------


def pt_system(d: Path, marker: Path) -> Path:
    torch.save({"state_dict": {"w": torch.zeros(2)}, "metadata": Payload(touch(marker))}, d / "m.pt")
    return d / "m.pt"


def pt_exec(d: Path, marker: Path) -> Path:
    torch.save(OrderedDict(w=torch.zeros(2), x=ExecPayload(str(marker))), d / "m.pt")
    return d / "m.pt"


def pickle_protocol0(d: Path, marker: Path) -> Path:
    (d / "m.pt").write_bytes(pickle.dumps(Payload(touch(marker)), protocol=0))
    return d / "m.pt"


def pickle_protocol4(d: Path, marker: Path) -> Path:
    (d / "m.pt").write_bytes(pickle.dumps({"state_dict": Payload(touch(marker))}, protocol=4))
    return d / "m.pt"


def zip_swapped_data_pkl(d: Path, marker: Path) -> Path:
    buf = io.BytesIO()
    torch.save({"w": torch.zeros(2)}, buf)
    src = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
    with zipfile.ZipFile(d / "m.pt", "w") as out:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename.endswith("data.pkl"):
                data = pickle.dumps(Payload(touch(marker)), protocol=2)
            out.writestr(item, data)
    return d / "m.pt"


def torchscript(d: Path, marker: Path) -> Path:
    torch.jit.script(torch.nn.Linear(64, 10)).save(str(d / "m.pt"))
    return d / "m.pt"


def safetensors_bytes(header: dict, data: bytes) -> bytes:
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + data


def truncated(d: Path, marker: Path) -> Path:
    data = ORIGINAL.read_bytes()
    (d / "m.safetensors").write_bytes(data[: len(data) // 2])
    return d / "m.safetensors"


def overlapping(d: Path, marker: Path) -> Path:
    header = {
        "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
        "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]},
    }
    (d / "m.safetensors").write_bytes(safetensors_bytes(header, b"\0" * 12))
    return d / "m.safetensors"


def oversized_header(d: Path, marker: Path) -> Path:
    (d / "m.safetensors").write_bytes(struct.pack("<Q", 2**40) + b'{"a": 1}' + b"\0" * 64)
    return d / "m.safetensors"


def with_weights(change: Callable[[dict], None], meta_change: Callable[[dict], None] | None = None):
    def build(d: Path, marker: Path) -> Path:
        from safetensors import safe_open
        from safetensors.torch import save_file

        with safe_open(str(ORIGINAL), "pt") as fh:
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}
            metadata = dict(fh.metadata())
        change(tensors)
        if meta_change is not None:
            doc = json.loads(metadata["unlearning_audit"])
            meta_change(doc)
            metadata["unlearning_audit"] = json.dumps(doc)
        save_file(tensors, str(d / "m.safetensors"), metadata=metadata)
        return d / "m.safetensors"

    return build


def set_nan(t: dict) -> None:
    t["1.weight"][0, 0] = float("nan")


def set_inf(t: dict) -> None:
    t["3.weight"][1, 2] = float("inf")


def wrong_shape(t: dict) -> None:
    t["1.weight"] = torch.zeros(128, 64)


def no_change(t: dict) -> None:
    pass


def four_classes(doc: dict) -> None:
    doc["num_classes"] = 4


def dataset_option(value: object) -> Callable[[dict], None]:
    def change(doc: dict) -> None:
        doc["dataset"]["options"] = {"test_fraction": value}

    return change


def unknown_dataset_option(doc: dict) -> None:
    doc["dataset"]["options"]["bogus"] = 1


CHECKPOINTS = {
    "pt-os-system": (pt_system, 4, "needs code to load"),
    "pt-exec": (pt_exec, 4, "needs code to load"),
    "pickle-protocol-0": (pickle_protocol0, 4, "imports posix.system|imports os.system"),
    "pickle-protocol-4": (pickle_protocol4, 4, "needs code to load"),
    "zip-swapped-data-pkl": (zip_swapped_data_pkl, 4, "needs code to load"),
    "torchscript": (torchscript, 4, "TorchScript"),
    "truncated-safetensors": (truncated, 2, "truncated"),
    "overlapping-offsets": (overlapping, 2, "corrupt or truncated safetensors"),
    "oversized-header": (oversized_header, 2, "over the 100000000 limit"),
    "nan-weights": (with_weights(set_nan), 2, "NaN or infinite"),
    "inf-weights": (with_weights(set_inf), 2, "NaN or infinite"),
    "wrong-shapes": (with_weights(wrong_shape), 2, r"1\.weight is \(128, 64\) in the checkpoint"),
    "class-count-mismatch": (with_weights(no_change, four_classes), 2, "predicts 4 classes"),
    # The metadata's dataset options are the file's word, checked like typed options.
    "dataset-option-not-a-number": (with_weights(no_change, dataset_option("abc")), 2,
                                    "recorded dataset 'digits': option test_fraction='abc': expected float"),
    "dataset-option-out-of-range": (with_weights(no_change, dataset_option(5.0)), 2, "test_fraction must lie"),
    "dataset-option-unknown": (with_weights(no_change, unknown_dataset_option), 2, "has no option 'bogus'"),
}


# -- id file builders --------------------------------------------------------------------------


def id_file(content: bytes) -> Callable[[Path, Path], Path]:
    def build(d: Path, marker: Path) -> Path:
        (d / "ids.txt").write_bytes(content)
        return d / "ids.txt"

    return build


def huge_id_file(d: Path, marker: Path) -> Path:
    with open(d / "ids.txt", "wb") as fh:
        fh.truncate(64 * 1024 * 1024 + 1)  # sparse: no disk spent
    return d / "ids.txt"


def ids_from_test_split(d: Path, marker: Path) -> Path:
    from audit_cli.data import load_dataset

    ids = load_dataset("digits").test_ids[:5]
    (d / "ids.txt").write_text("\n".join(str(i) for i in ids) + "\n")
    return d / "ids.txt"


ID_FILES = {
    "non-integer": (id_file(b"1\n2\nthree\n"), 2, r"ids\.txt:3: 'three' is not an integer"),
    "negative": (id_file(b"1\n-2\n"), 2, "id -2 is negative"),
    "out-of-range": (id_file(b"1\n99999\n"), 2, "not in dataset 'digits'"),
    "duplicate": (id_file(b"1\n3\n1\n"), 2, "id 1 repeats line 1"),
    "empty": (id_file(b""), 2, "no ids"),
    "test-split-ids": (ids_from_test_split, 2, "are in the test split"),
    "binary-garbage": (id_file(b"\xff\xfe\x00\x01"), 2, "not UTF-8"),
    "very-large": (huge_id_file, 2, "byte limit"),
}  # fmt: skip


# -- dataset builders --------------------------------------------------------------------------


def parquet(table: pa.Table) -> Callable[[Path, Path], Path]:
    def build(d: Path, marker: Path) -> Path:
        pq.write_table(table, d / "data.parquet")
        return d / "data.parquet"

    return build


class Opaque(pa.ExtensionType):
    def __init__(self) -> None:
        super().__init__(pa.binary(), "hostile.opaque")

    def __arrow_ext_serialize__(self) -> bytes:
        return b""

    @classmethod
    def __arrow_ext_deserialize__(cls, storage_type, serialized):
        return cls()


def extension_column(d: Path, marker: Path) -> Path:
    try:
        pa.register_extension_type(Opaque())
    except pa.ArrowKeyError:  # registered by an earlier case in this process
        pass
    storage = pa.array([b"x"] * 40, type=pa.binary())
    table = pa.table({"label": [i % 2 for i in range(40)], "f": pa.ExtensionArray.from_storage(Opaque(), storage)})
    pq.write_table(table, d / "data.parquet")
    return d / "data.parquet"


def pickled_npz(d: Path, marker: Path) -> Path:
    np.savez(d / "data.npz", x=np.array([Payload(touch(marker))] * 4, dtype=object), y=np.zeros(4, dtype=int))
    return d / "data.npz"


def npz(**arrays: np.ndarray) -> Callable[[Path, Path], Path]:
    def build(d: Path, marker: Path) -> Path:
        np.savez(d / "data.npz", **arrays)
        return d / "data.npz"

    return build


X40 = np.random.default_rng(0).normal(size=(40, 3))


def corrupt_parquet(d: Path, marker: Path) -> Path:
    (d / "data.parquet").write_bytes(b"PAR1 not really parquet PAR1")
    return d / "data.parquet"


LABELS = [i % 2 for i in range(40)]
DATASETS = {
    "parquet-missing-label": (parquet(pa.table({"f": list(range(40))})), 2, "no label column 'label'"),
    "parquet-string-feature": (parquet(pa.table({"label": LABELS, "f": ["a"] * 40})), 2, "'f'"),
    "parquet-nan-feature": (parquet(pa.table({"label": LABELS, "f": [float("nan")] + [1.0] * 39})), 2, "non-finite"),
    "parquet-extension-column": (extension_column, 2, "extension"),
    "parquet-corrupt": (corrupt_parquet, 2, "not a readable Parquet file"),
    "npz-pickled-objects": (pickled_npz, 4, "pickled objects"),
    "npz-no-rows": (npz(x=np.zeros((0, 3)), y=np.zeros(0, dtype=int)), 2, "no rows"),
    "npz-inf-feature": (npz(x=np.where(np.arange(40)[:, None] == 3, np.inf, X40), y=np.array(LABELS)), 2,
                        "3 missing or non-finite"),
    "npz-beyond-float32": (npz(x=X40 * 1e300, y=np.array(LABELS)), 2, "beyond float32's range"),
    "parquet-beyond-float32": (parquet(pa.table({"label": LABELS, "f": [1e300] + [1.0] * 39})), 2,
                               "1 feature value\\(s\\) beyond float32's range .* in column 'f'"),
}

CONFIGS = {
    "toml-malformed": (b"fail_above = [", 2, "malformed TOML"),
    "toml-unknown-key": (b"fail_abov = 0.2\n", 2, "unknown setting 'fail_abov'"),
    "toml-wrong-type": (b'shadows = "many"\n', 2, "expected int"),
    "toml-unknown-threshold": (b"[thresholds]\nmia = 0.1\n", 2, "no gated check 'mia'"),
    "toml-key-twice": (b"fail-above = 0.2\nfail_above = 0.3\n", 2, "'fail_above' is given twice"),
}


def run_isolated(tmp_path: Path, args: list[str]):
    before = set(tmp_path.rglob("*"))
    result = CliRunner().invoke(app, args)
    after = set(tmp_path.rglob("*"))
    return result, after - before


def assert_refused(result, code: int, pattern: str) -> None:
    import re

    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("error: ") and len(lines) <= 2, result.stderr
    assert len(lines) == 1 or lines[1].startswith("hint: ")
    assert re.search(pattern, result.stderr), result.stderr


@pytest.mark.parametrize("case", CHECKPOINTS)
def test_hostile_checkpoint(tmp_path, case):
    build, code, pattern = CHECKPOINTS[case]
    marker = tmp_path / "MARKER"
    model = build(tmp_path, marker)
    out = tmp_path / "out.safetensors"
    args = ["unlearn", "--model", str(model), "--forget-class", "3", "--method", "finetune", "--out", str(out)]
    if model.suffix == ".pt":
        args += ["--arch", "mlp", "--data", "digits"]
    result, written = run_isolated(tmp_path, args)
    assert_refused(result, code, pattern)
    assert not marker.exists(), "a payload ran"
    assert written == set(), f"wrote {written}"


@pytest.mark.parametrize("case", ID_FILES)
def test_hostile_id_file(tmp_path, case):
    build, code, pattern = ID_FILES[case]
    ids = build(tmp_path, tmp_path / "MARKER")
    out = tmp_path / "out.safetensors"
    result, written = run_isolated(tmp_path, ["train", "--exclude", str(ids), "--out", str(out), "--epochs", "1", "-q"])
    assert_refused(result, code, pattern)
    assert written == set()


@pytest.mark.parametrize("case", DATASETS)
def test_hostile_dataset(tmp_path, case):
    build, code, pattern = DATASETS[case]
    marker = tmp_path / "MARKER"
    data = build(tmp_path, marker)
    out = tmp_path / "out.safetensors"
    result, written = run_isolated(tmp_path, ["train", "--data", str(data), "--out", str(out), "--epochs", "1", "-q"])
    assert_refused(result, code, pattern)
    assert not marker.exists()
    assert written == set()


@pytest.mark.parametrize("case", CONFIGS)
def test_hostile_config(tmp_path, case, monkeypatch):
    text, code, pattern = CONFIGS[case]
    (tmp_path / "audit.toml").write_bytes(text)
    monkeypatch.chdir(tmp_path)
    args = ["run", "--model", str(ORIGINAL), "--forget", str(SAMPLES / "forget_random10.txt"), "-f", "json=r.json"]
    result, written = run_isolated(tmp_path, args)
    assert_refused(result, code, pattern)
    assert written == set(), "no bank, no report"


def test_there_are_at_least_25_hostile_cases():
    assert len(CHECKPOINTS) + len(ID_FILES) + len(DATASETS) + len(CONFIGS) >= 25


@pytest.mark.parametrize("content", [b"\xef\xbb\xbf5\r\n17\r\n", b"# forget\r\n5\r\n\r\n17 # two\r\n"])
def test_bom_and_crlf_id_files_are_accepted(tmp_path, content):
    (tmp_path / "ids.txt").write_bytes(content)
    out = tmp_path / "out.safetensors"
    result = CliRunner().invoke(
        app, ["train", "--exclude", str(tmp_path / "ids.txt"), "--out", str(out), "--epochs", "1", "-q"]
    )
    assert result.exit_code == 0, result.output
    assert "(2 examples)" in result.stdout and out.exists()


# -- scikit-learn models and output filters ----------------------------------------------------


def skops_function_payload(d: Path, marker: Path) -> Path:
    import skops.io as sio
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    # Unfitted, so dumping runs nothing; loading it untrusted would hand os.system to the model.
    sio.dump(Pipeline([("f", FunctionTransformer(os.system)), ("lr", LogisticRegression())]), d / "m.skops")
    return d / "m.skops"


def skops_truncated(d: Path, marker: Path) -> Path:
    import skops.io as sio
    from sklearn.tree import DecisionTreeClassifier

    x = np.random.default_rng(0).normal(size=(40, 64))
    sio.dump(DecisionTreeClassifier().fit(x, np.arange(40) % 10), d / "full.skops")
    data = (d / "full.skops").read_bytes()
    (d / "full.skops").unlink()
    (d / "m.skops").write_bytes(data[: len(data) // 2])
    return d / "m.skops"


SKLEARN_MODELS = {
    "skops-function-payload": (skops_function_payload, 4, "not on the trusted-type list; nothing from it was run"),
    "skops-truncated": (skops_truncated, 2, "skops|scikit-learn|zip"),
}


@pytest.mark.parametrize("case", SKLEARN_MODELS)
def test_hostile_sklearn_model(tmp_path, case):
    build, code, pattern = SKLEARN_MODELS[case]
    marker = tmp_path / "MARKER"
    model = build(tmp_path, marker)
    out = tmp_path / "filter.safetensors"
    args = ["unlearn", "--model", str(model), "--forget-class", "3", "--method", "mpru", "--data", "digits",
            "--out", str(out)]  # fmt: skip
    result, written = run_isolated(tmp_path, args)
    assert_refused(result, code, pattern)
    assert not marker.exists(), "a payload ran"
    assert written == set(), f"wrote {written}"


@pytest.fixture(scope="module")
def sample_filter(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("filter") / "mpru.safetensors"
    args = ["unlearn", "--model", str(ORIGINAL), "--forget-class", "3", "--method", "mpru", "--out", str(path)]
    assert CliRunner().invoke(app, args).exit_code == 0
    return path


def filter_nan_bias(src: Path, d: Path) -> Path:
    from safetensors import safe_open
    from safetensors.numpy import load_file, save_file

    with safe_open(str(src), "np") as f:
        metadata = f.metadata()
    bias = load_file(str(src))["bias"]
    bias[1] = np.nan
    save_file({"bias": bias}, str(d / "f.safetensors"), metadata=metadata)
    return d / "f.safetensors"


def filter_other_model(src: Path, d: Path) -> tuple[Path, Path]:
    return src, SAMPLES / "digits_mlp_retrained_class3.safetensors"


@pytest.mark.parametrize(
    "case, code, pattern",
    [("nan-bias", 2, "NaN or infinite"), ("other-model", 2, "was fitted for the model with sha256")],
)
def test_hostile_filter(tmp_path, sample_filter, case, code, pattern):
    model = ORIGINAL
    if case == "nan-bias":
        path = filter_nan_bias(sample_filter, tmp_path)
    else:
        path, model = filter_other_model(sample_filter, tmp_path)
    bank = tmp_path / "bank"
    args = ["run", "--model", str(model), "--filter", str(path), "--bank", str(bank), "-q"]
    result, written = run_isolated(tmp_path, args)
    assert_refused(result, code, pattern)
    assert not bank.exists() and written == set(), f"wrote {written}"
