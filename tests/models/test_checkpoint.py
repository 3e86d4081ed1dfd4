"""Checkpoint io: safe loading (nothing from a file is ever executed), atomic saving,
metadata round trips, and fitting weights to architectures and datasets."""

from __future__ import annotations

import builtins
import hashlib
import json
import os
import pathlib
import pickle
import random
import struct
import subprocess
import sys
import uuid
import zipfile

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from audit_cli.data import fingerprint_ids, load_dataset
from audit_cli.errors import CheckpointError, UnsafeArtifactError, UsageError
from audit_cli.models.checkpoint import (
    MAX_HEADER_BYTES,
    build_model_from_checkpoint,
    check_dataset,
    fit_state_dict,
    load_checkpoint,
    save_checkpoint,
)
from audit_cli.models.metadata import FORMAT_VERSION, METADATA_KEY, CheckpointMeta, Exclusion
from audit_cli.models.networks import build_model
from audit_cli.models.recipe import Recipe
from audit_cli.repair.train_checkpoint import TrainRequest, train_checkpoint

# --- fixtures and helpers ----------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One small model trained on digits through the plain ``audit train`` function."""
    out = tmp_path_factory.mktemp("trained") / "orig.safetensors"
    recipe = Recipe(arch="mlp", arch_args={"hidden": "32"}, epochs=2, seed=3)
    return train_checkpoint(TrainRequest(out=out, recipe=recipe, device="cpu"))


def make_meta(dataset, **changes) -> CheckpointMeta:
    fields = dict(
        kind="retrained",
        arch="mlp",
        arch_args={"hidden": (8,)},
        num_classes=dataset.num_classes,
        input_shape=dataset.input_shape,
        dataset=dataset.spec,
        dataset_fingerprint=dataset.fingerprint,
        recipe=Recipe(arch="mlp", arch_args={"hidden": (8,)}, epochs=2, lr=0.01, seed=7),
        trained_ids_fingerprint=fingerprint_ids(dataset.train_ids[10:]),
        n_trained=len(dataset.train_ids) - 10,
        excluded=Exclusion(n_ids=10, ids_fingerprint=fingerprint_ids(dataset.train_ids[:10])),
        metrics={"train_accuracy": 0.75, "test_accuracy": 0.5},
    )
    fields.update(changes)
    return CheckpointMeta(**fields)


def tiny_state_dict(hidden: int = 8, seed: int = 0) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return build_model("mlp", (64,), 10, {"hidden": (hidden,)}).state_dict()


def write_raw_safetensors(path: pathlib.Path, header: dict | bytes, data: bytes = b"", header_len: int | None = None):
    """A safetensors file built by hand, so the header can lie."""
    hb = header if isinstance(header, bytes) else json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(hb) if header_len is None else header_len) + hb + data)
    return path


def f32(name: str, shape: list[int], start: int, end: int) -> dict:
    return {name: {"dtype": "F32", "shape": shape, "data_offsets": [start, end]}}


def files_in(folder: pathlib.Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# --- save / load round trip --------------------------------------------------------------


def test_save_load_roundtrip(tmp_path, digits):
    sd = tiny_state_dict()
    meta = make_meta(digits)
    path = tmp_path / "m.safetensors"
    sha = save_checkpoint(path, sd, meta)

    assert sha == hashlib.sha256(path.read_bytes()).hexdigest()
    assert files_in(tmp_path) == ["m.safetensors"]  # no temporary file left behind
    ckpt = load_checkpoint(path)
    assert ckpt.format == "safetensors"
    assert ckpt.sha256 == sha
    assert ckpt.path == path
    assert set(ckpt.state_dict) == set(sd)
    for k, v in sd.items():
        assert ckpt.state_dict[k].dtype == v.dtype
        assert torch.equal(ckpt.state_dict[k], v), k
    assert ckpt.meta is not None
    assert ckpt.meta.to_dict() == meta.to_dict()
    assert ckpt.meta.recipe == meta.recipe
    assert ckpt.meta.excluded == meta.excluded
    assert ckpt.meta.created == meta.created
    assert ckpt.meta.input_shape == (64,)
    assert ckpt.meta.format_version == FORMAT_VERSION
    model = build_model_from_checkpoint(ckpt, dataset=digits)
    assert model.state_dict()["1.weight"].shape == (8, 64)


def test_loaded_metadata_equals_saved_metadata(tmp_path, digits):
    meta = make_meta(digits)
    save_checkpoint(tmp_path / "m.safetensors", tiny_state_dict(), meta)
    loaded = load_checkpoint(tmp_path / "m.safetensors").meta
    assert loaded.arch_args == meta.arch_args
    assert loaded == meta


def test_trained_checkpoint_roundtrip(trained, digits):
    path = trained.path
    assert trained.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    ckpt = load_checkpoint(path)
    assert ckpt.sha256 == trained.sha256
    meta = ckpt.meta
    assert meta.to_dict() == trained.meta.to_dict()
    assert meta.kind == "original" and meta.excluded is None
    assert meta.n_trained == len(digits.train_ids) == 1347
    assert meta.trained_ids_fingerprint == fingerprint_ids(digits.train_ids)
    assert meta.dataset_fingerprint == digits.fingerprint
    assert meta.recipe == Recipe(arch="mlp", arch_args={"hidden": (32,)}, epochs=2, seed=3)
    # The saved weights are the trained ones: they reproduce the recorded accuracies.
    model = build_model_from_checkpoint(ckpt)
    model.eval()
    with torch.no_grad():
        pred = model(torch.from_numpy(digits.x)).argmax(-1).numpy()
    test_rows = digits.rows(digits.test_ids)
    test_acc = float((pred[test_rows] == digits.y[test_rows]).mean())
    assert test_acc == pytest.approx(trained.test_accuracy, abs=1e-9)
    assert meta.metrics["test_accuracy"] == pytest.approx(trained.test_accuracy)
    assert trained.test_accuracy > 0.3  # trained: well above chance (0.1)


def test_trained_retrained_records_the_exclusion(tmp_path, digits):
    ids_file = tmp_path / "forget.txt"
    forget = digits.train_ids[::10]
    ids_file.write_text("\n".join(str(i) for i in forget) + "\n")
    result = train_checkpoint(
        TrainRequest(
            out=tmp_path / "r.safetensors",
            recipe=Recipe(epochs=1, arch_args={"hidden": "8"}),
            exclude_ids=ids_file,
            device="cpu",
        )
    )
    meta = load_checkpoint(result.path).meta
    assert meta.kind == "retrained"
    assert meta.n_trained == 1347 - len(forget)
    assert meta.excluded == Exclusion(n_ids=len(forget), ids_fingerprint=fingerprint_ids(forget), forget_class=None)
    assert meta.trained_ids_fingerprint == fingerprint_ids(np.setdiff1d(digits.train_ids, forget))
    assert "excluded_accuracy" in meta.metrics


# --- save refusals -------------------------------------------------------------------------


def test_save_refuses_to_overwrite(tmp_path, digits):
    path = tmp_path / "m.safetensors"
    save_checkpoint(path, tiny_state_dict(seed=0), make_meta(digits))
    before = path.read_bytes()
    with pytest.raises(UsageError, match="exists; not overwriting") as info:
        save_checkpoint(path, tiny_state_dict(seed=1), make_meta(digits))
    assert "--overwrite" in info.value.hint
    assert path.read_bytes() == before
    assert files_in(tmp_path) == ["m.safetensors"]

    sha = save_checkpoint(path, tiny_state_dict(seed=1), make_meta(digits), overwrite=True)
    assert path.read_bytes() != before
    assert torch.equal(load_checkpoint(path).state_dict["1.weight"], tiny_state_dict(seed=1)["1.weight"])
    assert sha == hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("name", ["m.pt", "m.bin", "m"])
def test_save_refuses_other_suffixes(tmp_path, digits, name):
    with pytest.raises(UsageError, match="written as .safetensors"):
        save_checkpoint(tmp_path / name, tiny_state_dict(), make_meta(digits))
    assert files_in(tmp_path) == []


def test_save_refuses_missing_folder(tmp_path, digits):
    with pytest.raises(UsageError, match="does not exist"):
        save_checkpoint(tmp_path / "nope" / "m.safetensors", tiny_state_dict(), make_meta(digits))


# --- .pt files -----------------------------------------------------------------------------


def test_pt_bare_state_dict(tmp_path, digits):
    torch.manual_seed(0)
    original = build_model("mlp", (64,), 10)  # default hidden=(256,)
    path = tmp_path / "bare.pt"
    torch.save(original.state_dict(), path)

    ckpt = load_checkpoint(path)
    assert ckpt.format == "pt" and ckpt.meta is None
    assert ckpt.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(UsageError, match="carries no metadata") as info:
        build_model_from_checkpoint(ckpt, dataset=digits)
    assert "--arch" in info.value.hint
    with pytest.raises(UsageError, match="carries no metadata") as info:
        build_model_from_checkpoint(ckpt, arch="mlp")
    assert "--data" in info.value.hint

    model = build_model_from_checkpoint(ckpt, arch="mlp", dataset=digits)
    x = torch.from_numpy(digits.x[:5])
    with torch.no_grad():
        assert torch.equal(model(x), original(x))


def test_pt_legacy_format_state_dict(tmp_path):
    sd = tiny_state_dict()
    path = tmp_path / "legacy.pt"
    torch.save(sd, path, _use_new_zipfile_serialization=False)
    assert path.read_bytes()[:1] == b"\x80"
    ckpt = load_checkpoint(path)
    assert ckpt.format == "pt" and ckpt.meta is None
    assert all(torch.equal(ckpt.state_dict[k], v) for k, v in sd.items())


@pytest.mark.parametrize("as_json", [True, False], ids=["json-string", "dict"])
def test_pt_dict_with_metadata(tmp_path, digits, as_json):
    meta = make_meta(digits)
    sd = tiny_state_dict()
    path = tmp_path / "withmeta.pt"
    torch.save({"state_dict": sd, "metadata": meta.to_json() if as_json else meta.to_dict()}, path)
    ckpt = load_checkpoint(path)
    assert ckpt.format == "pt"
    assert ckpt.meta.to_dict() == meta.to_dict()
    assert all(torch.equal(ckpt.state_dict[k], v) for k, v in sd.items())
    model = build_model_from_checkpoint(ckpt)
    assert model.state_dict()["1.weight"].shape == (8, 64)


def test_safetensors_named_pt_is_sniffed_from_bytes(tmp_path, digits):
    save_checkpoint(tmp_path / "m.safetensors", tiny_state_dict(), make_meta(digits))
    st = tmp_path / "really_safetensors.pt"
    st.write_bytes((tmp_path / "m.safetensors").read_bytes())
    ckpt = load_checkpoint(st)
    assert ckpt.format == "safetensors" and ckpt.meta is not None


def test_pt_named_safetensors_is_sniffed_from_bytes(tmp_path):
    pt = tmp_path / "really_pt.safetensors"
    torch.save(tiny_state_dict(), pt)
    ckpt = load_checkpoint(pt)
    assert ckpt.format == "pt"
    assert torch.equal(ckpt.state_dict["1.weight"], tiny_state_dict()["1.weight"])


def test_malicious_pt_named_safetensors_is_refused_as_unsafe(tmp_path):
    marker = _marker(tmp_path)
    path = tmp_path / "evil.safetensors"
    torch.save({"w": SystemPayload(marker)}, path)
    try:
        with pytest.raises(UnsafeArtifactError):
            load_checkpoint(path)
    finally:
        assert not marker.exists()


def test_malicious_pt_named_safetensors_is_not_run(tmp_path):
    marker = _marker(tmp_path)
    path = tmp_path / "evil.safetensors"
    torch.save({"w": SystemPayload(marker)}, path)
    with pytest.raises((CheckpointError, UnsafeArtifactError)):
        load_checkpoint(path)
    assert not marker.exists()


@pytest.mark.parametrize(
    "obj",
    [[torch.zeros(2)], {}, {"w": torch.zeros(2), "step": 3}, {"state_dict": {"w": 1.0}}, torch.zeros(3)],
    ids=["list", "empty", "mixed", "non-tensor", "bare-tensor"],
)
def test_pt_that_is_not_a_state_dict(tmp_path, obj):
    path = tmp_path / "x.pt"
    torch.save(obj, path)
    with pytest.raises(CheckpointError, match="must hold a state_dict"):
        load_checkpoint(path)


# --- malicious pickles: refused and never executed -----------------------------------------


def _marker(tmp_path) -> pathlib.Path:
    return tmp_path / f"PWNED-{uuid.uuid4().hex}"


class SystemPayload:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class ExecPayload:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (builtins.exec, (f"open({self.marker!r}, 'w').close()",))


class EvalPayload:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (builtins.eval, (f"open({self.marker!r}, 'w').close()",))


class TouchPayload:
    def __init__(self, marker):
        self.marker = pathlib.Path(marker)

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


class SubprocessPayload:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (subprocess.call, (["touch", self.marker],))


PAYLOADS = [SystemPayload, ExecPayload, EvalPayload, TouchPayload, SubprocessPayload]


def _zip_with_data_pkl(path: pathlib.Path, payload_bytes: bytes) -> None:
    """A genuine torch.save archive of a state_dict whose data.pkl is swapped for a payload."""
    good = path.with_name("good_" + path.name)
    torch.save(tiny_state_dict(), good)
    with zipfile.ZipFile(good) as zf:
        entries = [(info.filename, zf.read(info.filename)) for info in zf.infolist()]
    assert any(n.endswith("/data.pkl") for n, _ in entries)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for name, data in entries:
            zf.writestr(name, payload_bytes if name.endswith("/data.pkl") else data)
    good.unlink()


def _write(shape: str, payload, path: pathlib.Path) -> None:
    if shape == "torch-save-zip":
        torch.save({"1.weight": torch.zeros(2), "evil": payload}, path)
    elif shape == "torch-save-zip-metadata":
        torch.save({"state_dict": tiny_state_dict(), "metadata": payload}, path)
    elif shape == "torch-save-legacy":
        torch.save(payload, path, _use_new_zipfile_serialization=False)
    elif shape == "raw-pickle-p2":
        path.write_bytes(pickle.dumps(payload, protocol=2))
    elif shape == "raw-pickle-p4":
        path.write_bytes(pickle.dumps(payload, protocol=4))
    elif shape == "zip-data-pkl-swapped":
        _zip_with_data_pkl(path, pickle.dumps({"1.weight": payload}, protocol=2))
    else:  # pragma: no cover
        raise AssertionError(shape)


SHAPES = [
    "torch-save-zip",
    "torch-save-zip-metadata",
    "torch-save-legacy",
    "raw-pickle-p2",
    "raw-pickle-p4",
    "zip-data-pkl-swapped",
]


@pytest.mark.parametrize("payload_cls", PAYLOADS, ids=lambda c: c.__name__)
def test_payloads_are_live(tmp_path, payload_cls):
    """Guard for the tests below: each payload really runs code when unpickled normally."""
    marker = _marker(tmp_path)
    pickle.loads(pickle.dumps(payload_cls(marker), protocol=2))
    assert marker.exists()


@pytest.mark.parametrize("payload_cls", PAYLOADS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("shape", SHAPES)
def test_malicious_pickle_is_refused_and_not_run(tmp_path, shape, payload_cls):
    marker = _marker(tmp_path)
    path = tmp_path / "evil.pt"
    _write(shape, payload_cls(marker), path)
    with pytest.raises(
        UnsafeArtifactError, match=r"refused: its pickle needs code to load.*nothing from it was run"
    ) as info:
        load_checkpoint(path)
    assert not marker.exists()
    assert info.value.exit_code == 4
    assert "safetensors" in info.value.hint


def test_malicious_pickle_message_names_the_global(tmp_path):
    marker = _marker(tmp_path)
    path = tmp_path / "evil.pt"
    torch.save({"w": SystemPayload(marker)}, path)
    with pytest.raises(UnsafeArtifactError, match=r"it imports (posix|os|nt)\.system"):
        load_checkpoint(path)
    assert not marker.exists()


def test_malicious_pickle_is_refused_by_build_path_too(tmp_path, digits):
    """build_model_from_checkpoint is only reachable through load_checkpoint: nothing runs."""
    marker = _marker(tmp_path)
    path = tmp_path / "evil.pt"
    _write("zip-data-pkl-swapped", TouchPayload(marker), path)
    with pytest.raises(UnsafeArtifactError):
        build_model_from_checkpoint(load_checkpoint(path), arch="mlp", dataset=digits)
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [0, 1])
def test_low_protocol_malicious_pickle_is_refused_as_unsafe(tmp_path, protocol):
    marker = _marker(tmp_path)
    path = tmp_path / "evil.pt"
    path.write_bytes(pickle.dumps(SystemPayload(marker), protocol=protocol))
    try:
        with pytest.raises(UnsafeArtifactError):
            load_checkpoint(path)
    finally:
        assert not marker.exists()


def test_low_protocol_malicious_pickle_is_not_run(tmp_path):
    """Whatever the exit code, a protocol-0 payload must not execute."""
    marker = _marker(tmp_path)
    path = tmp_path / "evil.pt"
    path.write_bytes(pickle.dumps(SystemPayload(marker), protocol=0))
    with pytest.raises((CheckpointError, UnsafeArtifactError)):
        load_checkpoint(path)
    assert not marker.exists()


# --- TorchScript ----------------------------------------------------------------------------


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(x)


@pytest.mark.parametrize("how", ["script", "trace"])
@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_torchscript_is_refused(tmp_path, how, suffix):
    module = torch.jit.script(Tiny()) if how == "script" else torch.jit.trace(Tiny(), torch.randn(1, 4))
    path = tmp_path / f"scripted{suffix}"
    module.save(str(path))
    with pytest.raises(UnsafeArtifactError, match="TorchScript archive; loading it would run its code"):
        load_checkpoint(path)


# --- corrupt safetensors --------------------------------------------------------------------


@pytest.fixture
def good_safetensors(tmp_path, digits) -> pathlib.Path:
    path = tmp_path / "good.safetensors"
    save_checkpoint(path, tiny_state_dict(), make_meta(digits))
    return path


def test_truncated_safetensors_half(tmp_path, good_safetensors):
    data = good_safetensors.read_bytes()
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        load_checkpoint(cut)


def test_truncated_safetensors_in_data(tmp_path, good_safetensors):
    data = good_safetensors.read_bytes()
    (header_len,) = struct.unpack("<Q", data[:8])
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(data[: 8 + header_len + 16])  # header intact, tensor bytes missing
    with pytest.raises(CheckpointError, match="corrupt or truncated safetensors"):
        load_checkpoint(cut)


def test_header_longer_than_file(tmp_path):
    path = write_raw_safetensors(tmp_path / "h.safetensors", b"{}", header_len=10_000)
    with pytest.raises(CheckpointError, match=r"truncated safetensors file \(header needs 10000 bytes, file has 2\)"):
        load_checkpoint(path)


def test_oversized_header_length_field(tmp_path):
    path = write_raw_safetensors(tmp_path / "h.safetensors", f32("a", [2], 0, 8), b"\0" * 8, header_len=2**40)
    with pytest.raises(CheckpointError, match=rf"claims {2**40} bytes, over the {MAX_HEADER_BYTES} limit"):
        load_checkpoint(path)


@pytest.mark.parametrize(
    ("header", "data"),
    [
        ({**f32("a", [2], 0, 8), **f32("b", [2], 4, 12)}, 12),  # overlapping
        ({**f32("a", [2], 0, 8), **f32("b", [2], 0, 8)}, 8),  # aliasing
        (f32("a", [2], 0, 800), 8),  # past the end of the file
        (f32("a", [3], 0, 8), 8),  # offsets disagree with the shape
        (f32("a", [2], 0, 8), 12),  # trailing bytes nobody owns
        ({"a": {"dtype": "XX", "shape": [2], "data_offsets": [0, 8]}}, 8),  # unknown dtype
        ({"a": {"dtype": "F32", "shape": [2]}}, 8),  # no offsets
    ],
    ids=["overlap", "alias", "out-of-range", "shape-mismatch", "uncovered", "bad-dtype", "no-offsets"],
)
def test_bad_offsets_are_checkpoint_errors(tmp_path, header, data):
    path = write_raw_safetensors(tmp_path / "h.safetensors", header, b"\0" * data)
    with pytest.raises(CheckpointError, match="corrupt or truncated safetensors file"):
        load_checkpoint(path)


@pytest.mark.parametrize("header", [b"{not json}", b"{\xff\xfe}", b'{"a":' * 50_000 + b"1" + b"}" * 50_000])
def test_non_json_header(tmp_path, header):
    path = write_raw_safetensors(tmp_path / "h.safetensors", header)
    with pytest.raises(CheckpointError, match="safetensors header is not valid JSON"):
        load_checkpoint(path)


def test_minimal_handmade_safetensors_loads(tmp_path):
    """The hand-built layout above is right: a consistent header loads."""
    path = write_raw_safetensors(tmp_path / "h.safetensors", f32("a", [2], 0, 8), struct.pack("<2f", 1.5, -2.0))
    ckpt = load_checkpoint(path)
    assert ckpt.meta is None
    assert torch.equal(ckpt.state_dict["a"], torch.tensor([1.5, -2.0]))


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("prefix", [b"", b"PK\x03\x04", struct.pack("<Q", 40) + b"{"], ids=["plain", "zip", "st"])
def test_random_bytes_are_checkpoint_errors(tmp_path, seed, prefix):
    rng = random.Random(seed)
    body = rng.randbytes(rng.choice([0, 1, 7, 30, 500, 4096]))
    if not prefix and body[:1] == b"\x80":  # that would be a pickle; covered below
        body = b"\x00" + body[1:]
    path = tmp_path / "random.bin"
    path.write_bytes(prefix + body)
    with pytest.raises(CheckpointError):
        load_checkpoint(path)


@pytest.mark.parametrize("seed", range(8))
def test_random_pickle_like_bytes_are_refused(tmp_path, seed):
    """Garbage behind a pickle opcode is refused (either way), and raises no other exception."""
    rng = random.Random(seed)
    path = tmp_path / "random.pt"
    path.write_bytes(b"\x80\x02" + rng.randbytes(rng.choice([1, 5, 50, 4096])))
    with pytest.raises((CheckpointError, UnsafeArtifactError)):
        load_checkpoint(path)


@pytest.mark.parametrize("what", ["empty", "directory", "missing"])
def test_not_a_checkpoint_file(tmp_path, what):
    path = tmp_path / "x.safetensors"
    if what == "empty":
        path.write_bytes(b"")
    elif what == "directory":
        path.mkdir()
    pattern = {
        "empty": "neither a safetensors file nor a torch .pt file",
        "directory": "is not a file",
        "missing": "checkpoint not found",
    }[what]
    with pytest.raises(CheckpointError, match=pattern):
        load_checkpoint(path)


def test_truncated_pt_files(tmp_path):
    zpath, lpath = tmp_path / "z.pt", tmp_path / "l.pt"
    torch.save({"w": torch.randn(1000)}, zpath)
    torch.save({"w": torch.randn(1000)}, lpath, _use_new_zipfile_serialization=False)
    for src in (zpath, lpath):
        data = src.read_bytes()
        for cut in (len(data) // 2, len(data) - 10):
            out = tmp_path / f"cut_{cut}_{src.name}"
            out.write_bytes(data[:cut])
            with pytest.raises(CheckpointError, match="corrupt"):
                load_checkpoint(out)


# --- non-finite weights -----------------------------------------------------------------------


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("fmt", ["safetensors", "pt"])
def test_non_finite_weights(tmp_path, digits, bad, fmt):
    sd = tiny_state_dict()
    sd["3.weight"][2, 5] = bad
    sd["3.weight"][0, 0] = bad
    path = tmp_path / f"m.{fmt}"
    if fmt == "safetensors":
        save_checkpoint(path, sd, make_meta(digits))
    else:
        torch.save(sd, path)
    with pytest.raises(CheckpointError, match=r"tensor '3\.weight' has 2 NaN or infinite value"):
        load_checkpoint(path)


def test_integer_tensors_pass_the_finite_check(tmp_path):
    path = tmp_path / "m.safetensors"
    save_file({"w": torch.randn(3), "steps": torch.tensor([1, 2], dtype=torch.int64)}, str(path))
    assert load_checkpoint(path).state_dict["steps"].tolist() == [1, 2]


def _write_typed(path: pathlib.Path, dtype: str, nbytes: int) -> pathlib.Path:
    return write_raw_safetensors(
        path, {"a": {"dtype": dtype, "shape": [8], "data_offsets": [0, nbytes]}}, b"\0" * nbytes
    )


@pytest.mark.parametrize(("dtype", "nbytes"), [("F8_E5M2", 8), ("BF16", 16), ("F16", 16), ("C64", 64), ("BOOL", 8)])
def test_other_dtypes_load(tmp_path, dtype, nbytes):
    ckpt = load_checkpoint(_write_typed(tmp_path / "t.safetensors", dtype, nbytes))
    assert ckpt.state_dict["a"].shape == (8,)


@pytest.mark.parametrize(("dtype", "nbytes"), [("F8_E4M3", 8), ("F4", 4)])
def test_low_precision_float_tensors_do_not_crash_the_finite_check(tmp_path, dtype, nbytes):
    path = _write_typed(tmp_path / "f8.safetensors", dtype, nbytes)
    try:
        ckpt = load_checkpoint(path)
    except CheckpointError:
        return
    assert "a" in ckpt.state_dict


# --- fitting weights to architectures ---------------------------------------------------------


def test_state_dict_with_wrong_hidden_size(tmp_path, digits):
    path = tmp_path / "m.safetensors"
    save_checkpoint(path, tiny_state_dict(hidden=8), make_meta(digits))
    ckpt = load_checkpoint(path)
    with pytest.raises(
        CheckpointError, match=r"1\.weight is \(8, 64\) in the checkpoint, \(16, 64\) in the model"
    ) as info:
        build_model_from_checkpoint(ckpt, arch="mlp", arch_args={"hidden": "16"})
    assert "1.bias is (8,) in the checkpoint, (16,) in the model" in info.value.message
    assert "(+1 more)" in info.value.message  # 3.weight differs too
    assert str(path) in info.value.message and "'mlp'" in info.value.message


def test_metadata_that_lies_about_the_architecture(tmp_path, digits):
    path = tmp_path / "m.safetensors"
    save_checkpoint(path, tiny_state_dict(hidden=8), make_meta(digits, arch_args={"hidden": (12,)}))
    with pytest.raises(CheckpointError, match=r"1\.weight is \(8, 64\) in the checkpoint, \(12, 64\) in the model"):
        build_model_from_checkpoint(load_checkpoint(path))


def test_missing_and_unexpected_keys():
    model = build_model("mlp", (64,), 10, {"hidden": (8,)})
    sd = tiny_state_dict()
    missing = {k: v for k, v in sd.items() if k != "3.bias"}
    with pytest.raises(CheckpointError, match=r"weights do not fit ckpt: missing 3\.bias$"):
        fit_state_dict(model, missing, label="ckpt")
    extra = {**sd, "extra.weight": torch.zeros(1)}
    with pytest.raises(CheckpointError, match=r"weights do not fit ckpt: unexpected extra\.weight$"):
        fit_state_dict(model, extra, label="ckpt")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointError):
        fit_state_dict(model, {**missing, "extra.weight": torch.zeros(1)}, label="ckpt")
    # A refused fit leaves the model untouched.
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())
    fit_state_dict(model, sd, label="ckpt")
    assert all(torch.equal(model.state_dict()[k], v) for k, v in sd.items())


# --- dataset checks -------------------------------------------------------------------------


def test_check_dataset_accepts_the_training_dataset(trained, digits):
    check_dataset(trained.meta, digits)
    check_dataset(None, digits)  # foreign weights: nothing to compare


def test_check_dataset_other_number_of_classes(trained):
    synthetic = load_dataset("synthetic", {"n_samples": 200, "n_classes": 4})
    with pytest.raises(CheckpointError, match="predicts 10 classes but dataset 'synthetic' has 4"):
        check_dataset(trained.meta, synthetic, path="orig.safetensors")


def test_check_dataset_other_input_shape(trained):
    synthetic = load_dataset("synthetic", {"n_samples": 300, "n_classes": 10, "n_features": 20})
    with pytest.raises(CheckpointError, match=r"takes inputs of shape \(64,\) but dataset 'synthetic' has \(20,\)"):
        check_dataset(trained.meta, synthetic)


def test_check_dataset_same_shape_other_content(trained):
    other_split = load_dataset("digits", {"test_fraction": "0.3"})
    with pytest.raises(CheckpointError, match="was trained on a different dataset") as info:
        check_dataset(trained.meta, other_split)
    assert "0.25" in info.value.hint  # the hint says what the checkpoint recorded


# --- metadata edge cases -------------------------------------------------------------------


def _save_with_raw_meta(path: pathlib.Path, doc: dict | str) -> pathlib.Path:
    text = doc if isinstance(doc, str) else json.dumps(doc)
    save_file({k: v.contiguous() for k, v in tiny_state_dict().items()}, str(path), metadata={METADATA_KEY: text})
    return path


def test_newer_format_version_is_refused(tmp_path, digits):
    doc = make_meta(digits).to_dict()
    doc["format_version"] = FORMAT_VERSION + 1
    path = _save_with_raw_meta(tmp_path / "m.safetensors", doc)
    with pytest.raises(
        CheckpointError, match=f"format {FORMAT_VERSION + 1} is newer than this tool understands"
    ) as info:
        load_checkpoint(path)
    assert "upgrade" in info.value.hint
    pt = tmp_path / "m.pt"
    torch.save({"state_dict": tiny_state_dict(), "metadata": json.dumps(doc)}, pt)
    with pytest.raises(CheckpointError, match="newer than this tool understands"):
        load_checkpoint(pt)


@pytest.mark.parametrize(
    ("mutate", "pattern"),
    [
        (lambda d: d.pop("format_version"), "no integer format_version"),
        (lambda d: d.pop("arch"), "lacks field 'arch'"),
        (lambda d: d.update(kind="stolen"), "unknown kind 'stolen'"),
        (lambda d: d["recipe"].update(optimiser="adam"), "recipe has unknown field 'optimiser'"),
        (lambda d: d.update(num_classes="ten"), "malformed"),
        (lambda d: d.update(excluded={"n_ids": 3, "surprise": 1}), "malformed"),
    ],
    ids=["no-version", "no-arch", "bad-kind", "bad-recipe", "bad-classes", "bad-exclusion"],
)
def test_malformed_metadata_is_a_checkpoint_error(tmp_path, digits, mutate, pattern):
    doc = make_meta(digits).to_dict()
    mutate(doc)
    path = _save_with_raw_meta(tmp_path / "m.safetensors", doc)
    with pytest.raises(CheckpointError, match=pattern):
        load_checkpoint(path)


@pytest.mark.parametrize("text", ["{bad", "[1, 2]", '"a string"'])
def test_metadata_that_is_not_a_json_object(tmp_path, text):
    path = _save_with_raw_meta(tmp_path / "m.safetensors", text)
    with pytest.raises(CheckpointError, match="checkpoint metadata is not"):
        load_checkpoint(path)


PLUGIN_SOURCE = """
import pathlib
from torch import nn

pathlib.Path({marker!r}).write_text("imported")


def build(input_shape, num_classes, hidden=(8,)):
    return nn.Sequential(nn.Flatten(), nn.Linear(input_shape[0], hidden[0]), nn.ReLU(), nn.Linear(hidden[0], num_classes))
"""


def test_plugin_named_by_metadata_is_never_imported(tmp_path, monkeypatch, digits):
    name = f"audit_ckpt_plugin_{uuid.uuid4().hex}"
    marker = tmp_path / "imported.marker"
    plugin_dir = tmp_path / "plugins"
    plugin_dir.mkdir()
    (plugin_dir / f"{name}.py").write_text(PLUGIN_SOURCE.format(marker=str(marker)))
    monkeypatch.syspath_prepend(str(plugin_dir))
    arch = f"{name}:build"
    try:
        meta = make_meta(digits, arch=arch, arch_args={"hidden": [8]}, recipe=Recipe(arch=arch, epochs=2))
        path = tmp_path / "plug.safetensors"
        save_checkpoint(path, tiny_state_dict(hidden=8), meta)

        ckpt = load_checkpoint(path)  # loading the file imports nothing
        assert ckpt.meta.arch == arch and ckpt.meta.recipe.arch == arch
        with pytest.raises(
            UnsafeArtifactError, match="names plug-in architecture .*importing it would run code"
        ) as info:
            build_model_from_checkpoint(ckpt)
        assert f"--arch {arch}" in info.value.hint
        assert name not in sys.modules
        assert not marker.exists()

        # Named by the user on the command line: trusted, imported, and the weights fit.
        model = build_model_from_checkpoint(ckpt, arch=arch)
        assert marker.exists()
        assert torch.equal(model.state_dict()["1.weight"], tiny_state_dict(hidden=8)["1.weight"])
    finally:
        sys.modules.pop(name, None)
