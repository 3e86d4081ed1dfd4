"""scikit-learn models and MPRU through the CLI: ``audit train --arch <tree>`` and ``audit unlearn --method mpru``.

Success paths check what is printed and written; error paths check the CLI contract:
the exit code, one ``error:`` line (and at most a ``hint:``), nothing on stdout, no output.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import skops.io as sio

from audit_cli.data import DatasetSpec, load_dataset, make_dataset
from audit_cli.models.sklearn_model import load_sklearn
from audit_cli.models.sklearn_params import SKLEARN_ARCHS
from audit_cli.unlearn.mpru import load_filter
from tests.helpers import assert_error, assert_ok, invoke, table_row

DATA_OPTS = ["--data", "synthetic", "--data-opt", "n_samples=1200"]
SAMPLES = Path(__file__).resolve().parents[1] / "sample_models"


@pytest.fixture(scope="module")
def tree(runner, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tree") / "hgb.skops"
    result = invoke(runner, "train", "--arch", "hist-gradient-boosting", "--arch-arg", "max_iter=20", *DATA_OPTS,
                    "--out", out, "--seed", "2")  # fmt: skip
    assert_ok(result)
    assert "trained original: hist-gradient-boosting on synthetic, 900 examples" in result.stdout
    m = re.search(r"train accuracy ([0-9.]+)\s+test accuracy ([0-9.]+)", result.stdout)
    # Measured: train 0.9989 (1% flipped labels), test 0.7233.
    assert m and float(m.group(1)) >= 0.99 and 0.6 <= float(m.group(2)) <= 0.9, result.stdout
    return out


# --- audit train ---------------------------------------------------------------------------------


def test_train_writes_a_skops_model_with_metadata(tree):
    model = load_sklearn(tree)
    meta = model.meta
    assert meta.kind == "original" and meta.arch == "hist-gradient-boosting" and meta.recipe is None
    assert dict(meta.arch_args) == {"max_iter": 20, "random_state": 2}
    data = load_dataset("synthetic", {"n_samples": "1200"})
    assert meta.dataset == data.spec and meta.dataset_fingerprint == data.fingerprint
    assert meta.n_trained == len(data.train_ids) and meta.excluded is None
    assert model.estimator.max_iter == 20 and model.estimator.random_state == 2


def test_train_without_a_class(runner, tmp_path):
    out = tmp_path / "retrained.skops"
    result = invoke(runner, "train", "--arch", "random-forest", "--arch-arg", "n_estimators=5", *DATA_OPTS,
                    "--exclude-class", "3", "--out", out)  # fmt: skip
    assert_ok(result)
    assert "trained retrained without class 3" in result.stdout
    assert "accuracy on the left-out examples 0.0000" in result.stdout
    meta = load_sklearn(out).meta
    assert meta.kind == "retrained" and meta.excluded.forget_class == 3
    assert 3 not in load_sklearn(out).estimator.classes_


@pytest.mark.parametrize(
    "args,pattern",
    [
        (["--arch", "hist-gradient-boosting", "--out", "{tmp}/m.safetensors"], r"--output must end in \.skops"),
        (["--arch", "mlp", "--out", "{tmp}/m.skops"], r"--output must end in \.safetensors"),
        (["--arch", "hist-gradient-boosting", "--epochs", "3", "--out", "{tmp}/m.skops"], "--epochs trains networks"),
        (["--arch", "decision-tree", "--arch-arg", "depth=3", "--out", "{tmp}/m.skops"], "no parameter 'depth'"),
        (["--arch", "decision-tree", "--arch-arg", "max_depth=-3", "--out", "{tmp}/m.skops"], "decision-tree: The"),
        (["--arch", "decision-tree", "--arch-arg", "random_state=3", "--out", "{tmp}/m.skops"], "with --seed"),
    ],
    ids=["tree-to-safetensors", "net-to-skops", "epochs", "unknown-arg", "bad-value", "random-state"],
)
def test_train_usage_errors(runner, tmp_path, args, pattern):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    assert_error(invoke(runner, "train", *DATA_OPTS, *args), pattern)
    assert not list(tmp_path.iterdir())


def test_train_refuses_a_tree_on_images(runner, tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    images = make_dataset(DatasetSpec("tiny-images"), rng.normal(size=(40, 1, 4, 4)).astype(np.float32),
                          np.arange(40) % 2, np.arange(40) < 30, ["a", "b"], "image")  # fmt: skip
    monkeypatch.setattr("audit_cli.repair.train_checkpoint.load_dataset", lambda *a, **k: images)
    result = invoke(runner, "train", "--arch", "extra-trees", "--out", tmp_path / "m.skops")
    assert_error(result, "extra-trees takes flat features; 'tiny-images' is images")


def test_archs_lists_the_sklearn_models(runner):
    result = invoke(runner, "archs")
    assert_ok(result)
    for name in SKLEARN_ARCHS:
        assert re.search(rf"│ {name}\s", result.stdout), name


# --- audit unlearn --method mpru -----------------------------------------------------------------


@pytest.fixture()
def model(tree, tmp_path) -> Path:
    return Path(shutil.copyfile(tree, tmp_path / "hgb.skops"))


def test_mpru_fits_a_filter_for_a_tree(runner, model, tmp_path):
    before_bytes = model.read_bytes()
    out = tmp_path / "mpru.safetensors"
    result = invoke(runner, "unlearn", "--method", "mpru", "--model", model, "--forget-class", "1", "--out", out)
    assert_ok(result)
    assert "unlearned class 1 with mpru" in result.stdout
    forget_before, forget_after = table_row(result.stdout, "forget set")
    assert forget_before >= 0.99 and forget_after == 0.0
    assert table_row(result.stdout, "test, class 1")[1] == 0.0
    retain = table_row(result.stdout, "retain set")
    assert retain[0] >= 0.99 and retain[1] >= retain[0]
    test = table_row(result.stdout, "test (retained classes)")
    assert test[1] >= test[0]  # removing a class can only fix retained-class mistakes made toward it
    assert "parameters: fit=retain-sample, sample=200, l2=0.001" in result.stdout
    assert f"wrote output filter {out}" in result.stdout and "is unchanged" in result.stdout
    assert model.read_bytes() == before_bytes
    spec = load_filter(out)
    assert spec.parent_sha256 == hashlib.sha256(before_bytes).hexdigest() and spec.forget_class == 1
    assert spec.metrics["test_accuracy"] == pytest.approx(test[1], abs=5e-5)


def test_mpru_renormalize_on_a_users_own_model_needs_data(runner, tree, tmp_path):
    own = tmp_path / "own.skops"
    sio.dump(load_sklearn(tree).estimator, own)  # no metadata of ours
    out = tmp_path / "f.safetensors"
    assert_error(invoke(runner, "unlearn", "--method", "mpru", "--model", own, "--forget-class", "0", "--out", out),
                 "carries no metadata")  # fmt: skip
    result = invoke(runner, "unlearn", "--method", "mpru", "--model", own, "--forget-class", "0", "--out", out,
                    "--param", "fit=renormalize", *DATA_OPTS)  # fmt: skip
    assert_ok(result)
    spec = load_filter(out)
    assert (spec.bias == 0).all() and spec.retain_sample_fingerprint is None


def test_mpru_on_a_torch_checkpoint(runner, tmp_path):
    model = Path(shutil.copyfile(SAMPLES / "digits_mlp_original.safetensors", tmp_path / "m.safetensors"))
    out = tmp_path / "f.safetensors"
    result = invoke(runner, "unlearn", "--method", "mpru", "--model", model, "--forget-class", "3", "--out", out,
                    "--device", "cpu")  # fmt: skip
    assert_ok(result)
    assert table_row(result.stdout, "forget set")[1] == 0.0
    assert load_filter(out).parent_sha256 == hashlib.sha256(model.read_bytes()).hexdigest()


def test_a_filter_is_not_a_model(runner, tmp_path, model):
    out = tmp_path / "f.safetensors"
    assert_ok(invoke(runner, "unlearn", "--method", "mpru", "--model", model, "--forget-class", "1", "--out", out))
    result = invoke(runner, "unlearn", "--method", "finetune", "--model", out, "--forget-class", "1",
                    "--out", tmp_path / "g.safetensors")  # fmt: skip
    assert_error(result, "is an output filter \\(MPRU\\), not a model checkpoint")


def test_mpru_usage_errors(runner, model, tmp_path):
    out = tmp_path / "f.safetensors"
    forget = tmp_path / "ids.txt"
    forget.write_text("0\n")
    base = ["unlearn", "--model", model, "--out", out]
    assert_error(invoke(runner, *base, "--method", "mpru", "--forget", forget), "mpru forgets a class")
    assert_error(invoke(runner, *base, "--method", "mpru", "--forget-class", "1", "--param", "fit=guess"),
                 "fit must be one of")  # fmt: skip
    assert_error(invoke(runner, *base, "--method", "finetune", "--forget-class", "1"),
                 "is a scikit-learn model \\(skops file\\), not torch weights")  # fmt: skip
    assert not out.exists()


def test_methods_lists_mpru(runner):
    result = invoke(runner, "methods")
    assert_ok(result)
    assert re.search(r"│ mpru\s+│ class\s+│ fit=retain-sample, sample=200, l2=0.001", result.stdout), result.stdout


# --- hostile models through the CLI --------------------------------------------------------------


def test_a_skops_file_holding_a_function_exits_4(runner, tree, tmp_path):
    est = load_sklearn(tree).estimator
    est.callback_ = os.system  # stored by reference; never called
    evil = tmp_path / "evil.skops"
    sio.dump(est, evil)
    out = tmp_path / "f.safetensors"
    result = invoke(runner, "unlearn", "--method", "mpru", "--model", evil, "--forget-class", "1", "--out", out)
    assert_error(result, rf"refused: the skops file holds {os.system.__module__}\.system", code=4)
    assert not out.exists()


def test_a_truncated_skops_file_exits_2(runner, model, tmp_path):
    data = model.read_bytes()
    model.write_bytes(data[: len(data) // 3])
    out = tmp_path / "f.safetensors"
    result = invoke(runner, "unlearn", "--method", "mpru", "--model", model, "--forget-class", "1", "--out", out)
    assert_error(result, "corrupt or truncated skops file|not a skops file")
    assert not out.exists()


# --- audit inspect on the tool's own .skops models and filter files -------------------------------


def test_inspect_reads_skops_models_and_filters(runner, model, tmp_path):
    sha = hashlib.sha256(model.read_bytes()).hexdigest()
    doc = json.loads(invoke(runner, "inspect", model, "--format", "json").stdout)
    assert doc["kind"] == "scikit-learn model" and doc["format"] == "skops" and doc["sha256"] == sha
    assert doc["estimator"] == "hist-gradient-boosting" and doc["estimator_params"]["max_iter"] == 20
    assert doc["metadata"]["kind"] == "original" and doc["metadata"]["dataset"]["name"] == "synthetic"
    text = invoke(runner, "inspect", model)
    assert_ok(text)
    assert "skops (scikit-learn)" in text.stdout and sha in text.stdout and "hist-gradient-boosting" in text.stdout
    assert re.search(r"kind\s+│\s+original", text.stdout)

    out = tmp_path / "mpru.safetensors"
    assert_ok(invoke(runner, "unlearn", "--method", "mpru", "--model", model, "--forget-class", "1", "-o", out))
    doc = json.loads(invoke(runner, "inspect", out, "--format", "json").stdout)
    assert doc["kind"] == "output filter" and doc["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    assert len(doc["bias"]) == 4 and doc["bias"][1] == 0.0  # synthetic: 4 classes
    meta = doc["metadata"]
    assert meta["forget_class"] == 1 and meta["parent_sha256"] == sha and meta["method"] == "mpru"
    text = invoke(runner, "inspect", out)
    assert_ok(text)
    assert "output filter (MPRU)" in text.stdout and re.search(r"forgets\s+│\s+class 1 of 4", text.stdout)
    assert sha in text.stdout  # the model it applies to


def test_inspect_refuses_a_skops_file_with_untrusted_types(runner, tmp_path):
    evil = tmp_path / "evil.skops"
    sio.dump(np.random.RandomState(0), evil)  # a type outside the trusted list
    result = invoke(runner, "inspect", evil)
    assert result.exit_code in (2, 4) and result.stdout == "" and result.stderr.startswith("error: ")
