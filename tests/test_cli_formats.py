"""One meaning for -o (--output, with --out kept) and --format json on every listing,
inspect and result command: each prints one valid JSON document with the expected keys."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from audit_cli.data import DATASETS
from audit_cli.models.architectures import ARCHITECTURES
from audit_cli.unlearn import METHODS
from tests.helpers import invoke

SAMPLES = Path(__file__).resolve().parents[1] / "sample_models"
TRAIN = ["--epochs", "1", "--lr", "0.01", "--arch-arg", "hidden=16", "--device", "cpu", "-q"]


def json_of(runner, *args: object):
    result = invoke(runner, *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_listings_print_json(runner):
    methods = json_of(runner, "methods", "--format", "json")
    assert [m["name"] for m in methods] == list(METHODS)
    assert set(methods[0]) == {"name", "forgets", "params", "produces", "augmentable", "description"}
    assert next(m for m in methods if m["name"] == "finetune")["params"]["epochs"] > 0
    datasets = json_of(runner, "datasets", "--format", "json")
    assert [d["name"] for d in datasets] == list(DATASETS)
    assert set(datasets[0]) == {"name", "description", "options", "needs_root"}
    archs = json_of(runner, "archs", "--format", "json")
    assert [a["name"] for a in archs][: len(ARCHITECTURES)] == list(ARCHITECTURES)
    assert {a["family"] for a in archs} == {"network", "scikit-learn"}
    assert next(a for a in archs if a["name"] == "mlp")["arguments"]["hidden"] == [256]
    assert invoke(runner, "methods", "--format", "yaml").exit_code == 2


def test_train_and_unlearn_take_output_and_print_a_json_result(runner, tmp_path):
    out = tmp_path / "m.safetensors"
    doc = json_of(runner, "train", "-o", out, *TRAIN, "--format", "json")
    assert set(doc) == {"path", "sha256", "kind", "arch", "dataset", "n_trained", "excluded", "train_accuracy",
                        "test_accuracy", "metrics", "seconds"}  # fmt: skip
    assert doc["path"] == str(out) and doc["kind"] == "original" and doc["n_trained"] == 1347 and out.is_file()
    assert doc["excluded"] is None and 0.1 < doc["test_accuracy"] <= 1
    # --output and the older --out name the same option.
    assert invoke(runner, "train", "--output", tmp_path / "a.safetensors", *TRAIN).exit_code == 0
    assert invoke(runner, "train", "--out", tmp_path / "b.safetensors", *TRAIN).exit_code == 0
    model = shutil.copyfile(SAMPLES / "digits_mlp_original.safetensors", tmp_path / "original.safetensors")
    unlearned = tmp_path / "u.safetensors"
    doc = json_of(runner, "unlearn", "-m", model, "-o", unlearned, "--method", "finetune", "--param", "epochs=1",
                  "--forget", SAMPLES / "forget_random10.txt", "--device", "cpu", "--format", "json")  # fmt: skip
    assert set(doc) == {"path", "sha256", "kind", "method", "params", "forget_class", "n_forget", "accuracy", "seconds",
                            "clients"}
    assert doc["path"] == str(unlearned) and doc["kind"] == "checkpoint" and doc["method"] == "finetune"
    assert doc["clients"] is None  # a centrally trained model forgets no clients
    assert doc["params"]["epochs"] == 1 and doc["n_forget"] == 135
    assert set(doc["accuracy"]) == {"forget", "retain", "test"} and doc["accuracy"]["forget"]["before"] == 1.0


def test_inspect_prints_json_with_format_or_the_older_flag(runner):
    path = SAMPLES / "digits_mlp_original.safetensors"
    doc = json_of(runner, "inspect", path, "--format", "json")
    assert set(doc) == {"kind", "path", "format", "sha256", "tensors", "parameters", "metadata"}
    assert doc["kind"] == "checkpoint" and doc["metadata"]["kind"] == "original"
    assert json_of(runner, "inspect", path, "--json") == doc
    assert "--json" not in invoke(runner, "inspect", "--help").stdout  # kept, but not advertised


@pytest.mark.parametrize("command", ["forget-list", "bank export", "train", "unlearn"])
def test_o_is_output_everywhere(runner, command):
    text = invoke(runner, *command.split(), "--help").stdout
    assert "--output" in text and "-o" in text
