"""The ``audit`` app through typer's CliRunner: exit codes, one-line errors, and the
train -> inspect round trip. The plain functions behind it are tested in tests/models."""

from __future__ import annotations

import hashlib
import os
import pickle
import re
import shutil
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from audit_cli import __version__
from audit_cli.app import app
from audit_cli.auditing.pipeline import run_audit
from audit_cli.auditing.request import AuditConfig
from audit_cli.data import fingerprint_ids
from audit_cli.errors import UsageError
from audit_cli.models.architectures import ARCHITECTURES
from tests.helpers import assert_error, assert_ok, inspect_json, invoke

N_TRAIN = 1347  # digits: 1,797 examples, 25% stratified test split


def train_args(out: Path, *extra: str, epochs: int = 1) -> list[str]:
    # A high learning rate so that one or two epochs give a model well above chance.
    return [
        "train",
        "--out",
        str(out),
        "--epochs",
        str(epochs),
        "--lr",
        "0.01",
        "--arch-arg",
        "hidden=16",
        "--device",
        "cpu",
        "-q",
        *extra,
    ]


@pytest.fixture(scope="module")
def trained(runner, tmp_path_factory):
    """``audit train`` once for the module: (path, result)."""
    out = tmp_path_factory.mktemp("cli") / "orig.safetensors"
    result = invoke(runner, *train_args(out, epochs=2))
    assert_ok(result)
    return out, result


def write_ids(path: Path, ids) -> Path:
    path.write_text("".join(f"{int(i)}\n" for i in ids))
    return path


# --- train and inspect --------------------------------------------------------------------


def test_train_original(trained):
    out, result = trained
    assert out.is_file()
    assert f"trained original: mlp on digits, {N_TRAIN} examples" in result.stdout
    m = re.search(r"train accuracy (\d\.\d{4})\s+test accuracy (\d\.\d{4})", result.stdout)
    assert m, result.stdout
    train_acc, test_acc = float(m.group(1)), float(m.group(2))
    assert 0.6 < train_acc <= 1.0 and 0.6 < test_acc <= 1.0  # trained: far above chance (0.1)
    sha = hashlib.sha256(out.read_bytes()).hexdigest()
    assert f"wrote {out} (sha256 {sha[:16]}...)" in result.stdout
    assert result.stderr == ""  # -q: no progress, nothing else


def test_inspect_json(runner, trained, digits):
    out, result = trained
    doc = inspect_json(runner, out)
    assert doc["path"] == str(out)
    assert doc["format"] == "safetensors"
    assert doc["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    assert doc["tensors"] == {"1.weight": [16, 64], "1.bias": [16], "3.weight": [10, 16], "3.bias": [10]}
    assert doc["parameters"] == 64 * 16 + 16 + 16 * 10 + 10
    meta = doc["metadata"]
    assert meta["kind"] == "original"
    assert meta["n_trained"] == N_TRAIN
    assert meta["excluded"] is None
    assert meta["arch"] == "mlp" and meta["arch_args"] == {"hidden": [16]}
    assert meta["num_classes"] == 10 and meta["input_shape"] == [64]
    assert meta["dataset"] == {"name": "digits", "options": {"test_fraction": 0.25}}
    assert meta["dataset_fingerprint"] == digits.fingerprint
    assert meta["trained_ids_fingerprint"] == fingerprint_ids(digits.train_ids)
    assert meta["recipe"]["epochs"] == 2 and meta["recipe"]["seed"] == 0 and meta["recipe"]["lr"] == 0.01
    assert meta["tool_version"] == __version__
    # The accuracies printed by train are the ones recorded in the checkpoint.
    assert f"train accuracy {meta['metrics']['train_accuracy']:.4f}" in result.stdout
    assert f"test accuracy {meta['metrics']['test_accuracy']:.4f}" in result.stdout


def test_inspect_table(trained):
    out, _ = trained
    # Wide enough that rich does not wrap the 64-character digests inside the table.
    result = CliRunner(env={"COLUMNS": "200"}).invoke(app, ["inspect", str(out)])
    assert_ok(result)
    text = result.stdout
    assert hashlib.sha256(out.read_bytes()).hexdigest() in text
    assert re.search(r"kind\s+│?\s*original", text)
    assert f"{N_TRAIN} examples" in text
    assert "mlp" in text and "digits" in text
    assert "4 (1,210 values)" in text


def test_inspect_bare_pt(runner, tmp_path):
    path = tmp_path / "bare.pt"
    torch.save({"w": torch.ones(2, 3)}, path)
    doc = inspect_json(runner, path)
    assert doc["format"] == "pt" and doc["metadata"] is None and doc["tensors"] == {"w": [2, 3]}
    result = invoke(runner, "inspect", path)
    assert_ok(result)
    assert "none (pass --arch and --data" in result.stdout


def test_train_excluding_ids(runner, tmp_path, digits):
    forget = digits.train_ids[::50]
    ids = write_ids(tmp_path / "forget.txt", forget)
    out = tmp_path / "retrained.safetensors"
    result = invoke(runner, *train_args(out, "--exclude", ids))
    assert_ok(result)
    assert f"trained retrained without a forget set ({len(forget)} examples)" in result.stdout
    assert f"{N_TRAIN - len(forget)} examples" in result.stdout
    assert "accuracy on the left-out examples" in result.stdout
    meta = inspect_json(runner, out)["metadata"]
    assert meta["kind"] == "retrained"
    assert meta["n_trained"] == N_TRAIN - len(forget)
    assert meta["excluded"] == {"n_ids": len(forget), "ids_fingerprint": fingerprint_ids(forget), "forget_class": None}
    assert meta["trained_ids_fingerprint"] == fingerprint_ids(np.setdiff1d(digits.train_ids, forget))


def test_train_excluding_a_class(runner, tmp_path, digits):
    out = tmp_path / "noclass3.safetensors"
    result = invoke(runner, *train_args(out, "--exclude-class", "3"))
    assert_ok(result)
    n3 = int(((digits.y == 3) & digits.is_train).sum())
    assert f"without class 3 ({n3} examples)" in result.stdout
    meta = inspect_json(runner, out)["metadata"]
    assert meta["kind"] == "retrained"
    assert meta["excluded"]["forget_class"] == 3
    assert meta["excluded"]["n_ids"] == n3
    assert meta["n_trained"] == N_TRAIN - n3
    # A model that never saw class 3 does not predict it for its training examples.
    assert meta["metrics"]["excluded_accuracy"] < 0.2


# --- train refusals (all before any training) ------------------------------------------------


def _id_case(kind: str, tmp_path: Path, digits) -> list[str]:
    if kind == "test-split":
        return ["--exclude", write_ids(tmp_path / "ids.txt", [*digits.train_ids[:3], *digits.test_ids[:2]])]
    if kind == "not-integer":
        (tmp_path / "ids.txt").write_text("5\n7\nabc\n")
        return ["--exclude", tmp_path / "ids.txt"]
    if kind == "negative":
        (tmp_path / "ids.txt").write_text("# forget\n5\n-7\n")
        return ["--exclude", tmp_path / "ids.txt"]
    if kind == "duplicate":
        (tmp_path / "ids.txt").write_text("5\n6\n5\n")
        return ["--exclude", tmp_path / "ids.txt"]
    if kind == "empty":
        (tmp_path / "ids.txt").write_text("# nothing\n\n")
        return ["--exclude", tmp_path / "ids.txt"]
    if kind == "unknown-id":
        return ["--exclude", write_ids(tmp_path / "ids.txt", [1, 99999])]
    if kind == "missing":
        return ["--exclude", tmp_path / "nope.txt"]
    if kind == "both":
        return ["--exclude", write_ids(tmp_path / "ids.txt", digits.train_ids[:3]), "--exclude-class", "3"]
    if kind == "bad-class":
        return ["--exclude-class", "10"]
    raise AssertionError(kind)


ID_CASES = {
    "test-split": (r"ids\.txt: 2 id\(s\) are in the test split, first \d+; only training examples", None),
    "not-integer": (r"ids\.txt:3: 'abc' is not an integer id", None),
    "negative": (r"ids\.txt:3: id -7 is negative", None),
    "duplicate": (r"ids\.txt:3: id 5 repeats line 1", None),
    "empty": (r"ids\.txt: no ids", None),
    "unknown-id": (r"1 id\(s\) not in dataset 'digits': 99999", r"valid ids are 0\.\.1796"),
    "missing": (r"id file not found: .*nope\.txt", None),
    "both": (r"either --exclude or --exclude-class, not both", None),
    "bad-class": (r"class 10 does not exist in 'digits'", None),
}


@pytest.mark.parametrize("kind", list(ID_CASES))
def test_train_bad_exclusions(runner, tmp_path, digits, kind):
    out = tmp_path / "m.safetensors"
    pattern, hint = ID_CASES[kind]
    assert_error(invoke(runner, *train_args(out, *_id_case(kind, tmp_path, digits))), pattern, hint=hint)
    assert not out.exists()


def test_error_message_with_markup_like_input_closing_tag(runner, tmp_path):
    (tmp_path / "ids.txt").write_text("1\n[/oops]\n")
    line = assert_error(
        invoke(runner, *train_args(tmp_path / "m.safetensors", "--exclude", tmp_path / "ids.txt")), r"ids\.txt:2:"
    )
    assert "[/oops]" in line


def test_error_message_with_markup_like_input_is_printed_verbatim(runner, tmp_path):
    (tmp_path / "ids.txt").write_text("1\n[bold]x\n")
    assert_error(
        invoke(runner, *train_args(tmp_path / "m.safetensors", "--exclude", tmp_path / "ids.txt")),
        re.escape("ids.txt:2: '[bold]x' is not an integer id"),
    )


BAD_OPTIONS = {
    "unknown-dataset": (["--data", "nope"], r"unknown dataset 'nope'", r"digits"),
    "unknown-data-opt": (["--data-opt", "size=3"], r"dataset 'digits' has no option 'size'", r"test_fraction"),
    "bad-data-opt-value": (["--data-opt", "test_fraction=lots"], r"option test_fraction='lots': expected float", None),
    "data-opt-no-equals": (["--data-opt", "test_fraction"], r"--data-opt expects name=value", None),
    "bad-arch-arg-value": (["--arch-arg", "hidden=abc"], r"hidden='abc': expected tuple", None),
    "unknown-arch-arg": (["--arch-arg", "width=3"], r"architecture 'mlp' has no argument 'width'", r"hidden"),
    "arch-arg-no-equals": (["--arch-arg", "hidden"], r"--arch-arg expects name=value", None),
    "unknown-arch": (["--arch", "transformer"], r"unknown architecture 'transformer'", r"mlp"),
    "bad-optimizer": (["--optimizer", "lion"], r"unknown optimizer 'lion'", r"adam"),
    "zero-epochs": (["--epochs", "0"], r"epochs must lie in 1..10000 and batch size in 1..1000000, got 0", None),
    "augment-tabular": (["--augment", "flip"], r"augmentation 'flip' needs image data", None),
}


@pytest.mark.parametrize("case", list(BAD_OPTIONS))
def test_train_bad_options(runner, tmp_path, case):
    extra, pattern, hint = BAD_OPTIONS[case]
    out = tmp_path / "m.safetensors"
    args = train_args(out)
    if "--epochs" in extra:  # replace, do not repeat, the option
        i = args.index("--epochs")
        del args[i : i + 2]
    if "--arch-arg" in extra:
        i = args.index("--arch-arg")
        del args[i : i + 2]
    assert_error(invoke(runner, *args, *extra), pattern, hint=hint)
    assert not out.exists()


@pytest.mark.parametrize(
    ("name", "pattern"),
    [("m.pt", r"--output must end in \.safetensors"), ("missing/m.safetensors", r"folder .*missing does not exist")],
)
def test_train_bad_out(runner, tmp_path, name, pattern):
    assert_error(invoke(runner, *train_args(tmp_path / name)), pattern)
    assert list(tmp_path.iterdir()) == []


def test_train_refuses_to_overwrite(runner, tmp_path, trained):
    out = tmp_path / "orig.safetensors"
    shutil.copy(trained[0], out)
    before = out.read_bytes()
    assert_error(invoke(runner, *train_args(out)), r"orig\.safetensors exists; not overwriting it", hint=r"--overwrite")
    assert out.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["orig.safetensors"]

    result = invoke(runner, *train_args(out, "--overwrite", "--seed", "5"))
    assert_ok(result)
    assert out.read_bytes() != before
    assert inspect_json(runner, out)["metadata"]["recipe"]["seed"] == 5


@pytest.mark.parametrize(
    "args,pattern,hint",
    [
        (["train", "-q"], r"Missing option '--output'", r"see audit train --help"),
        (["run", "--model", "m.pt", "--shadows", "many"], r"'--shadows': 'many' is not a valid integer", r"audit run"),
        (["run", "--bogus"], r"No such option '--bogus'", r"audit run --help"),
        (["runn"], r"No such command 'runn'\. Did you mean 'run'\?$", r"see audit --help"),
        (["bank", "ls", "--nope"], r"No such option '--nope'", r"audit bank ls --help"),
        (["fl", "train", "--clients", "x"], r"'--clients': 'x' is not a valid integer", r"audit fl train --help"),
    ],
)
def test_parse_errors_are_one_line_like_every_usage_error(runner, args, pattern, hint):
    """click's own errors (a bad value, an unknown option or command) follow the error
    contract too: exit 2, one line and a hint on stderr, no boxed panel."""
    assert_error(invoke(runner, *args), pattern, hint=hint)


def test_no_arguments_print_the_help_and_exit_2(runner):
    result = invoke(runner)
    assert result.exit_code == 2 and "Usage: audit" in result.stdout and "run" in result.stdout


PLUGIN_SOURCE = """
from torch import nn


def build(input_shape, num_classes, width=12):
    return nn.Sequential(nn.Flatten(), nn.Linear(input_shape[0], int(width)), nn.ReLU(), nn.Linear(int(width), num_classes))
"""


def test_train_with_a_plugin_arch_named_on_the_command_line(runner, tmp_path, monkeypatch):
    name = f"audit_cli_plugin_{uuid.uuid4().hex}"
    (tmp_path / f"{name}.py").write_text(PLUGIN_SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    out = tmp_path / "plug.safetensors"
    try:
        result = invoke(
            runner, "train", "--out", out, "--epochs", "1", "--device", "cpu", "-q", "--arch", f"{name}:build"
        )
        assert_ok(result)
        assert inspect_json(runner, out)["metadata"]["arch"] == f"{name}:build"
    finally:
        sys.modules.pop(name, None)


# --- inspect refusals ------------------------------------------------------------------------


class TouchPayload:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


class SystemPayload:
    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("payload_cls", [TouchPayload, SystemPayload])
@pytest.mark.parametrize("shape", ["torch-save", "raw-pickle"])
def test_inspect_malicious_pt_exits_4_without_running_it(runner, tmp_path, payload_cls, shape):
    marker = tmp_path / "PWNED"
    path = tmp_path / "evil.pt"
    if shape == "torch-save":
        torch.save({"1.weight": torch.zeros(2), "x": payload_cls(marker)}, path)
    else:
        path.write_bytes(pickle.dumps(payload_cls(marker), protocol=2))
    for extra in ([], ["--json"]):
        assert_error(
            invoke(runner, "inspect", path, *extra),
            r"evil\.pt: refused: its pickle needs code to load",
            code=4,
            hint=r"safetensors",
        )
    assert not marker.exists()
    # The payload is live: a plain unpickle would have run it.
    pickle.loads(pickle.dumps(payload_cls(marker), protocol=2))
    assert marker.exists()


def test_inspect_torchscript_exits_4(runner, tmp_path):
    path = tmp_path / "scripted.pt"
    torch.jit.trace(torch.nn.Linear(3, 2), torch.randn(1, 3)).save(str(path))
    assert_error(invoke(runner, "inspect", path), r"TorchScript archive", code=4, hint=r"state_dict")


def test_inspect_truncated_safetensors_exits_2(runner, tmp_path, trained):
    data = trained[0].read_bytes()
    path = tmp_path / "cut.safetensors"
    path.write_bytes(data[: len(data) // 2])
    assert_error(invoke(runner, "inspect", path), r"cut\.safetensors: .*truncated")


@pytest.mark.parametrize(
    ("setup", "pattern"),
    [
        ("missing", r"checkpoint not found: .*nope\.safetensors"),
        ("directory", r"is not a file"),
        ("text", r"neither a safetensors file nor a torch \.pt file"),
        ("nan", r"tensor 'w' has 1 NaN or infinite value"),
    ],
)
def test_inspect_bad_files_exit_2(runner, tmp_path, setup, pattern):
    path = tmp_path / "nope.safetensors"
    if setup == "directory":
        path.mkdir()
    elif setup == "text":
        path.write_text("hello, I am not a checkpoint\n")
    elif setup == "nan":
        from safetensors.torch import save_file

        save_file({"w": torch.tensor([1.0, float("nan")])}, str(path))
    assert_error(invoke(runner, "inspect", path), pattern)


# --- listings and version ----------------------------------------------------------------------


def test_datasets_lists_builtins(runner):
    result = invoke(runner, "datasets")
    assert_ok(result)
    for name in ("digits", "mnist1d", "synthetic"):
        assert re.search(rf"│ {name}\s", result.stdout), name
    assert "test_fraction=0.25" in result.stdout


def test_archs_lists_every_architecture(runner):
    result = invoke(runner, "archs")
    assert_ok(result)
    for name in ARCHITECTURES:
        assert re.search(rf"│ {name}\s", result.stdout), name
    assert "hidden=(256,)" in result.stdout


def test_version(runner):
    result = invoke(runner, "--version")
    assert_ok(result)
    assert result.stdout.strip() == f"unlearning-audit {__version__}"


def test_no_arguments_shows_help(runner):
    result = invoke(runner)
    assert "Traceback" not in result.output
    assert "Usage" in result.output and "Exit codes" in result.output


def test_an_arch_flag_that_contradicts_the_checkpoint_is_refused_before_any_shadow(tmp_path):
    """--arch on a checkpoint the tool wrote would build its weights as another (maybe
    plug-in) architecture only after the whole bank was trained."""
    samples = Path(__file__).resolve().parents[1] / "sample_models"
    with pytest.raises(UsageError, match="is a mlp model"):
        run_audit(AuditConfig(model=samples / "digits_mlp_retrained_random10.safetensors", arch="os:system",
                              forget=samples / "forget_random10.txt", method="retrain", shadows=4,
                              bank=tmp_path / "bank", allow_underpowered=True, device="cpu"))  # fmt: skip
    assert not (tmp_path / "bank").exists()
