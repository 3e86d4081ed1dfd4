"""The committed sample models are what their metadata says, and the build is deterministic."""

import hashlib
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from audit_cli.data import fingerprint_ids, read_id_file
from audit_cli.models.checkpoint import build_model_from_checkpoint, check_dataset, load_checkpoint

SAMPLES = Path(__file__).resolve().parents[1] / "sample_models"


def accuracy_on(model, digits, ids):
    rows = digits.rows(ids)
    with torch.no_grad():
        pred = model(torch.from_numpy(digits.x[rows])).argmax(-1).numpy()
    return float((pred == digits.y[rows]).mean())


def test_forget_lists_are_what_they_claim(digits):
    random10 = read_id_file(SAMPLES / "forget_random10.txt")
    random30 = read_id_file(SAMPLES / "forget_random30.txt")
    class3 = read_id_file(SAMPLES / "forget_class3.txt")
    assert len(random10) == round(0.1 * len(digits.train_ids)) == 135
    assert len(random30) == round(0.3 * len(digits.train_ids)) == 404
    assert np.isin(random10, digits.train_ids).all() and np.isin(random30, digits.train_ids).all()
    assert np.array_equal(class3, digits.ids_of_class(3, split="train"))


@pytest.mark.parametrize(
    "name,kind,forget",
    [
        ("digits_mlp_original.safetensors", "original", None),
        ("digits_mlp_retrained_random10.safetensors", "retrained", "forget_random10.txt"),
        ("digits_mlp_retrained_random30.safetensors", "retrained", "forget_random30.txt"),
        ("digits_mlp_retrained_class3.safetensors", "retrained", "forget_class3.txt"),
    ],
)
def test_sample_checkpoints_match_their_metadata(digits, name, kind, forget):
    ckpt = load_checkpoint(SAMPLES / name)
    meta = ckpt.meta
    assert meta.kind == kind and meta.recipe.epochs == 60
    check_dataset(meta, digits)  # trained on exactly this digits split
    trained = digits.train_ids
    if forget is not None:
        excluded = read_id_file(SAMPLES / forget)
        assert meta.excluded.ids_fingerprint == fingerprint_ids(excluded)
        trained = np.setdiff1d(trained, excluded)
    assert meta.trained_ids_fingerprint == fingerprint_ids(trained) and meta.n_trained == len(trained)
    model = build_model_from_checkpoint(ckpt).eval()
    # The recorded accuracies are recomputable from the weights.
    assert accuracy_on(model, digits, digits.test_ids) == pytest.approx(meta.metrics["test_accuracy"], abs=1e-9)
    assert meta.metrics["train_accuracy"] > 0.99 and meta.metrics["test_accuracy"] > 0.85
    if forget == "forget_class3.txt":
        assert accuracy_on(model, digits, read_id_file(SAMPLES / forget)) == 0.0


def test_build_script_is_deterministic(tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "0")  # build() sets it; restored after the test
    spec = importlib.util.spec_from_file_location("sample_build", SAMPLES / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    digests = []
    for run in ("a", "b"):
        out = tmp_path / run
        out.mkdir()
        paths = module.build(out, epochs=2)
        digests.append({p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths})
        for name in ("forget_random10.txt", "forget_random30.txt"):
            assert (out / name).read_bytes() == (SAMPLES / name).read_bytes()
    assert digests[0] == digests[1]
