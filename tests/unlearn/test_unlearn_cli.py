"""``audit unlearn`` and ``audit methods`` through typer's CliRunner, on the sample models.

The success paths check the before/after table and the written checkpoint; the error
paths check the CLI contract: exit 2, one ``error:`` line (and at most a ``hint:``), no
traceback, nothing on stdout and no output file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from audit_cli.data import fingerprint_ids, read_id_file
from audit_cli.models.checkpoint import load_checkpoint, save_checkpoint
from audit_cli.models.metadata import METADATA_KEY
from audit_cli.unlearn import METHODS
from tests.helpers import assert_error, assert_ok, inspect_json, invoke, table_row

SAMPLES = Path(__file__).resolve().parents[2] / "sample_models"
ORIGINAL = SAMPLES / "digits_mlp_original.safetensors"
FORGET_RANDOM = SAMPLES / "forget_random10.txt"
FORGET_CLASS = SAMPLES / "forget_class3.txt"

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture()
def model(tmp_path) -> Path:
    """A private copy of the sample original (the repo's file is never an output)."""
    return Path(shutil.copyfile(ORIGINAL, tmp_path / "original.safetensors"))


def unlearn(runner, model: Path, out: Path, *args: object):
    return invoke(runner, "unlearn", "--model", model, "--out", out, "--device", "cpu", *args)


def test_unlearn_a_random_set_with_finetune(runner, model, tmp_path):
    out = tmp_path / "ft.safetensors"
    result = unlearn(runner, model, out, "--forget", FORGET_RANDOM, "--method", "finetune", "--param", "epochs=1")
    assert_ok(result)
    forget = read_id_file(FORGET_RANDOM)
    assert f"unlearned {len(forget)} examples with finetune" in result.stdout
    rows = {label: table_row(result.stdout, label) for label in ("forget set", "retain set", "test")}
    # The sample original memorised its training split.
    assert rows["forget set"][0] == 1.0 and rows["retain set"][0] >= 0.99
    assert "epochs=1" in result.stdout and f"wrote {out}" in result.stdout
    assert result.stderr == ""

    doc = inspect_json(runner, out)
    meta = doc["metadata"]
    assert meta["kind"] == "unlearned"
    u = meta["unlearning"]
    assert u["method"] == "finetune"
    assert u["params"]["epochs"] == 1 and u["params"]["seed"] == 0 and u["params"]["augmentation"] == "none"
    assert u["n_forget"] == len(forget) and u["forget_class"] is None
    assert u["forget_fingerprint"] == fingerprint_ids(forget)
    assert u["parent_sha256"] == hashlib.sha256(ORIGINAL.read_bytes()).hexdigest()
    assert meta["recipe"] == inspect_json(runner, model)["metadata"]["recipe"]
    # The printed "after" column is what the metadata recorded.
    assert meta["metrics"]["forget_accuracy"] == pytest.approx(rows["forget set"][1], abs=5e-5)
    assert meta["metrics"]["retain_accuracy"] == pytest.approx(rows["retain set"][1], abs=5e-5)
    assert meta["metrics"]["test_accuracy"] == pytest.approx(rows["test"][1], abs=5e-5)
    assert model.read_bytes() == ORIGINAL.read_bytes()


def test_unlearn_a_class_with_trw(runner, model, tmp_path):
    out = tmp_path / "trw.safetensors"
    result = unlearn(runner, model, out, "--forget-class", "3", "--method", "trw", "--param", "epochs=2")
    assert_ok(result)
    assert "unlearned class 3 with trw" in result.stdout
    # Measured: forget 1.0000 -> 0.0000, retain 0.9975 -> 0.9901, class-3 test 1.0 -> 0.0.
    forget_before, forget_after = table_row(result.stdout, "forget set")
    assert forget_before >= 0.99 and forget_after <= 0.05
    assert table_row(result.stdout, "test, class 3")[1] <= 0.05
    assert table_row(result.stdout, "retain set")[1] >= 0.95
    assert table_row(result.stdout, "test (retained classes)")[1] >= 0.93
    u = inspect_json(runner, out)["metadata"]["unlearning"]
    assert u["forget_class"] == 3 and u["method"] == "trw"
    assert u["n_forget"] == len(read_id_file(FORGET_CLASS))
    assert u["forget_fingerprint"] == fingerprint_ids(read_id_file(FORGET_CLASS))
    assert "augmentation" not in u["params"]  # trw takes no augmentation policy


def test_overwrite_replaces_an_existing_output(runner, model, tmp_path):
    out = tmp_path / "again.safetensors"
    out.write_bytes(b"old")
    result = unlearn(runner, model, out, "--forget-class", "3", "--method", "trw", "--param", "epochs=1", "--overwrite")
    assert_ok(result)
    # This output's safetensors header length happens to start with byte 0x80, the
    # pickle protocol marker: it must still be read as safetensors.
    loaded = load_checkpoint(out)
    assert loaded.meta.kind == "unlearned"
    assert set(loaded.state_dict) == set(load_checkpoint(model).state_dict)


def test_methods_lists_every_method_and_what_it_forgets(runner):
    result = invoke(runner, "methods")
    assert_ok(result)
    listed = {}
    for line in result.stdout.splitlines():
        cells = [c.strip() for c in line.split("│")]
        if len(cells) > 3 and cells[1]:
            listed[cells[1]] = cells[2]
    for name, entry in METHODS.items():
        assert name in listed, f"{name} missing from:\n{result.stdout}"
        expected = ", ".join(k for k in ("random", "class") if k in entry.supports)
        assert listed[name] == expected, name
    assert listed["trw"] == "class"


# --- errors -------------------------------------------------------------------------------------


def test_test_split_ids_cannot_be_forgotten(runner, model, tmp_path, digits):
    ids = tmp_path / "mixed.txt"
    ids.write_text(f"{int(digits.train_ids[0])}\n{int(digits.test_ids[0])}\n")
    out = tmp_path / "u.safetensors"
    result = unlearn(runner, model, out, "--forget", ids, "--method", "finetune", "--param", "epochs=1")
    assert_error(result, rf"1 id\(s\) are not training examples, first {int(digits.test_ids[0])}")
    assert not out.exists()


ERRORS = {
    "both forget kinds": (
        ["--forget", FORGET_RANDOM, "--forget-class", "3", "--method", "finetune"],
        "exactly one of --forget",
        None,
    ),
    "neither forget kind": (["--method", "finetune"], "exactly one of --forget", None),
    "unknown method": (
        ["--forget-class", "3", "--method", "forgetful"],
        "unknown unlearning method 'forgetful'",
        "trw",
    ),
    "unknown param": (
        ["--forget-class", "3", "--method", "trw", "--param", "warp=9"],
        "no parameter 'warp'",
        "beta",
    ),
    "malformed param": (
        ["--forget-class", "3", "--method", "trw", "--param", "lr"],
        "--param expects name=value",
        None,
    ),
    "empty param name": (
        ["--forget-class", "3", "--method", "trw", "--param", "=3"],
        "--param expects name=value",
        None,
    ),
    "bad param type": (["--forget-class", "3", "--method", "trw", "--param", "lr=fast"], "expected float", None),
    "bad param value": (["--forget-class", "3", "--method", "trw", "--param", "lr=-1"], "lr must be a positive", None),
    "trw on a random set": (
        ["--forget", FORGET_RANDOM, "--method", "trw"],
        "does not support random forgetting",
        "--forget-class",
    ),
    "augmentation on tabular data": (
        ["--forget-class", "3", "--method", "finetune", "--augment", "crop+flip"],
        "needs image data",
        None,
    ),
    "unknown augmentation": (
        ["--forget-class", "3", "--method", "finetune", "--augment", "mixup"],
        "unknown augmentation 'mixup'",
        None,
    ),
    "class out of range": (["--forget-class", "10", "--method", "trw"], "class 10 does not exist", None),
    "momentum with adam": (
        ["--forget-class", "3", "--method", "finetune", "--param", "optimizer=adam", "--param", "momentum=0.5"],
        "momentum does nothing with optimizer adam",
        "drop momentum",
    ),
    "data options without data": (
        ["--forget-class", "3", "--method", "trw", "--data-opt", "test_fraction=0.5"],
        "--data-opt refines --data",
        "pass --data NAME",
    ),
    "missing id file": (["--forget", "no-such-ids.txt", "--method", "finetune"], "id file not found", None),
    "diverged": (
        ["--forget-class", "3", "--method", "neggrad", "--param", "lr=1e6"],
        r"neggrad diverged: model\(s\) \[0\]",
        "lower the learning rate",
    ),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_unlearn_errors_exit_2_with_one_line(runner, model, tmp_path, case):
    args, pattern, hint = ERRORS[case]
    out = tmp_path / "u.safetensors"
    result = unlearn(runner, model, out, *args)
    assert_error(result, pattern, hint=hint)
    assert not out.exists(), "nothing may be written on an error"
    assert not list(tmp_path.glob("*.tmp*")), "no temporary files left behind"


def test_out_must_be_safetensors(runner, model, tmp_path):
    out = tmp_path / "u.pt"
    assert_error(unlearn(runner, model, out, "--forget-class", "3", "--method", "trw"), r"must end in \.safetensors")
    assert not out.exists()


def test_existing_output_is_not_overwritten(runner, model, tmp_path):
    out = tmp_path / "u.safetensors"
    out.write_bytes(b"precious")
    result = unlearn(runner, model, out, "--forget-class", "3", "--method", "trw", "--param", "epochs=1")
    assert_error(result, "exists; not overwriting", hint="--overwrite")
    assert out.read_bytes() == b"precious"


PLUGIN_SOURCE = """
from pathlib import Path
Path(__file__).with_suffix(".imported").write_text("imported")
from torch import nn
def build(input_shape, num_classes, **kwargs):
    return nn.Sequential(nn.Flatten(), nn.Linear(input_shape[0], 8), nn.ReLU(), nn.Linear(8, num_classes))
"""


def test_retrain_does_not_import_a_plugin_named_only_in_the_checkpoint_recipe(runner, model, tmp_path, monkeypatch):
    name = f"audit_unlearn_plugin_{uuid.uuid4().hex}"
    (tmp_path / f"{name}.py").write_text(PLUGIN_SOURCE)
    marker = tmp_path / f"{name}.imported"
    monkeypatch.syspath_prepend(str(tmp_path))
    parent = load_checkpoint(model)
    # Written with safetensors directly: CheckpointMeta itself refuses to build this document.
    document = parent.meta.to_dict()
    document["recipe"] = {**document["recipe"], "arch": f"{name}:build", "arch_args": {}, "epochs": 1}
    crafted = tmp_path / "crafted.safetensors"
    save_file(dict(parent.state_dict), str(crafted), metadata={METADATA_KEY: json.dumps(document)})
    out = tmp_path / "u.safetensors"
    try:
        result = unlearn(runner, crafted, out, "--forget-class", "3", "--method", "retrain")
        imported = marker.exists()
    finally:
        sys.modules.pop(name, None)
    assert not imported, "a plug-in named by an untrusted checkpoint was imported"
    assert result.exit_code == 2 and "inconsistent" in result.stderr and result.stderr.startswith("error: ")
    assert not out.exists()


def test_the_sample_forget_lists_are_what_the_tests_assume(digits):
    random10 = read_id_file(FORGET_RANDOM)
    assert len(random10) == round(0.1 * len(digits.train_ids))
    assert np.isin(random10, digits.train_ids).all()
    assert np.array_equal(read_id_file(FORGET_CLASS), digits.ids_of_class(3, split="train"))


def test_a_safetensors_file_whose_header_length_starts_with_0x80_reads_back(tmp_path):
    parent = load_checkpoint(ORIGINAL)
    # Lengthen the metadata until the header length's low byte is 0x80 (safetensors pads
    # headers to 8 bytes, so some padding in 0..255 gets there).
    for pad in range(256):
        path = tmp_path / f"pad{pad}.safetensors"
        metrics = {**parent.meta.metrics, "pad_" + "x" * pad: 0.0}
        save_checkpoint(path, parent.state_dict, dataclasses.replace(parent.meta, metrics=metrics))
        if path.read_bytes()[:1] == b"\x80":
            break
        path.unlink()
    else:
        raise RuntimeError("no padding gave a header length of 128 mod 256")
    loaded = load_checkpoint(path)
    assert loaded.meta.metrics == metrics
    assert all(torch.equal(loaded.state_dict[n], t) for n, t in parent.state_dict.items())


@pytest.mark.parametrize(
    "method,given,inert",
    [("finetune", {"optimizer": "adamw", "momentum": "0.5"}, "momentum"),
     ("mpru", {"fit": "renormalize", "sample": "7"}, "sample"),
     ("puf", {"variant": "natural", "eta": "5"}, "eta")],
)
def test_a_parameter_the_others_make_inert_is_refused_only_when_given(method, given, inert):
    """Given, it would be recorded as if it had acted; at its default (as the checkpoint's
    declared parameters carry it) it is left alone."""
    from audit_cli.errors import UsageError
    from audit_cli.unlearn import check_inert, get_method, parse_params

    entry = get_method(method)
    params = parse_params(entry, given)
    with pytest.raises(UsageError, match=f"{inert} does nothing"):
        check_inert(entry, params, given)
    check_inert(entry, params, [k for k in given if k != inert])
    check_inert(entry, parse_params(entry, {k: v for k, v in given.items() if k != inert}), given.keys() - {inert})
    check_inert(entry, params, None)  # an API caller's UnlearnRequest(params=None)
