"""scikit-learn models: the registry, fitting, logits, and skops files loaded against a trusted-type list.

The hostile files are built with skops itself (so they are well-formed skops) and hold a
type from a module whose import leaves a marker file: a refused load must name the type,
exit 4, and leave neither the marker nor the module behind.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import skops.io as sio
import torch
from scipy.special import softmax
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from audit_cli.data import fingerprint_ids, load_dataset
from audit_cli.errors import CheckpointError, UnsafeArtifactError, UsageError
from audit_cli.models.checkpoint import load_checkpoint
from audit_cli.models.metadata import CheckpointMeta
from audit_cli.models.recipe import Recipe
from audit_cli.models.sklearn_model import (
    LOG_FLOOR,
    META_MEMBER,
    SklearnRecipe,
    estimator_params,
    fit_sklearn,
    load_sklearn,
    looks_like_skops,
    save_sklearn,
    sklearn_logits,
)
from audit_cli.models.sklearn_params import SKLEARN_ARCHS, is_sklearn_arch, resolve_sklearn_params

SMALL = {"hist-gradient-boosting": {"max_iter": 5}, "random-forest": {"n_estimators": 3},
         "extra-trees": {"n_estimators": 3}, "decision-tree": {"max_depth": 4}}  # fmt: skip


@pytest.fixture(scope="module")
def data():
    return load_dataset("synthetic", {"n_samples": "400"})


def train_xy(data, exclude_class: int | None = None):
    rows = data.rows(data.train_ids)
    if exclude_class is not None:
        rows = rows[data.y[rows] != exclude_class]
    return data.x[rows], data.y[rows], rows


def meta_for(data, arch: str, arch_args: dict, rows) -> CheckpointMeta:
    return CheckpointMeta(
        kind="original",
        arch=arch,
        arch_args=arch_args,
        num_classes=data.num_classes,
        input_shape=data.input_shape,
        dataset=data.spec,
        dataset_fingerprint=data.fingerprint,
        recipe=None,
        trained_ids_fingerprint=fingerprint_ids(data.ids[rows]),
        n_trained=len(rows),
    )


@pytest.fixture(scope="module")
def hgb(data):
    x, y, rows = train_xy(data)
    recipe = SklearnRecipe("hist-gradient-boosting", {"max_iter": "5"}, seed=1)
    est = fit_sklearn(recipe.arch, recipe.params, x, y, recipe.seed)
    return est, meta_for(data, recipe.arch, recipe.arch_args, rows)


@pytest.fixture()
def saved(hgb, tmp_path) -> Path:
    est, meta = hgb
    path = tmp_path / "m.skops"
    save_sklearn(est, meta, path)
    return path


# --- registry and fitting ----------------------------------------------------------------------


def test_the_registry():
    assert set(SKLEARN_ARCHS) == {"hist-gradient-boosting", "random-forest", "extra-trees", "decision-tree"}
    assert is_sklearn_arch("random-forest") and not is_sklearn_arch("mlp")


def test_parameters_are_typed_against_the_estimator_defaults():
    typed = resolve_sklearn_params(
        "hist-gradient-boosting",
        {"max_iter": "7", "learning_rate": "1", "max_depth": "none", "early_stopping": "false", "l2_regularization": 2},
    )
    assert typed == {"max_iter": 7, "learning_rate": 1.0, "max_depth": None, "early_stopping": False,
                     "l2_regularization": 2.0}  # fmt: skip
    assert type(typed["learning_rate"]) is float and type(typed["l2_regularization"]) is float
    rf = resolve_sklearn_params("random-forest", {"max_features": "0.5", "min_samples_leaf": "0.1", "bootstrap": "no"})
    assert rf == {"max_features": 0.5, "min_samples_leaf": 0.1, "bootstrap": False}
    assert resolve_sklearn_params("random-forest", {"max_features": "log2"}) == {"max_features": "log2"}


@pytest.mark.parametrize(
    "params,match",
    [
        ({"n_trees": "5"}, "no parameter 'n_trees'"),
        ({"max_iter": "lots"}, "max_iter='lots'"),
        ({"learning_rate": "nan"}, "must be finite"),
        ({"max_iter": [1, 2]}, "only numbers, strings"),
    ],
)
def test_bad_parameters_are_usage_errors(params, match):
    with pytest.raises(UsageError, match=match):
        resolve_sklearn_params("hist-gradient-boosting", params)


def test_fit_uses_the_seed_and_reports_invalid_values_in_one_line(data):
    x, y, _ = train_xy(data)
    est = fit_sklearn("random-forest", {"n_estimators": 2, "random_state": 99}, x, y, seed=5)
    assert est.random_state == 5 and est.n_estimators == 2
    again = fit_sklearn("random-forest", {"n_estimators": 2}, x, y, seed=5)
    np.testing.assert_array_equal(est.predict_proba(x), again.predict_proba(x))
    with pytest.raises(UsageError, match=r"^random-forest: The 'max_features' parameter") as info:
        fit_sklearn("random-forest", {"max_features": "2.5x"}, x, y, seed=0)
    assert "\n" not in info.value.message
    with pytest.raises(UsageError, match="--seed"):
        SklearnRecipe("decision-tree", {"random_state": "3"})
    assert SklearnRecipe("decision-tree", {"max_depth": "3"}, seed=2).arch_args == {"max_depth": 3, "random_state": 2}


# --- logits ------------------------------------------------------------------------------------


def test_logits_are_log_probabilities_in_dataset_columns(data, hgb):
    est, _ = hgb
    z = sklearn_logits(est, data.x, data.num_classes)
    assert z.dtype == np.float32 and z.shape == (len(data.x), data.num_classes)
    np.testing.assert_allclose(softmax(z.astype(np.float64), axis=1), est.predict_proba(data.x), atol=1e-6)
    np.testing.assert_array_equal(z.argmax(1), est.predict(data.x))


def test_a_class_the_model_never_saw_gets_the_floor(data):
    x, y, _ = train_xy(data, exclude_class=2)
    est = fit_sklearn("decision-tree", {}, x, y, seed=0)
    assert list(est.classes_) == [0, 1, 3]
    z = sklearn_logits(est, data.x, data.num_classes)
    assert (z[:, 2] == np.float32(LOG_FLOOR)).all() and np.isfinite(z).all()
    # A fully grown tree is certain: zero probabilities are floored, not -inf.
    assert (z == np.float32(LOG_FLOOR)).sum() > len(z)


def test_logits_refuse_a_model_that_does_not_fit_the_data(data, hgb):
    est, _ = hgb
    with pytest.raises(CheckpointError, match="takes 20 features but the data has 5"):
        sklearn_logits(est, data.x[:, :5], data.num_classes)
    with pytest.raises(CheckpointError, match="predicts class 3, the dataset has 3 classes"):
        sklearn_logits(est, data.x, 3)
    x, y, _ = train_xy(data)
    strings = fit_sklearn("decision-tree", {"max_depth": 2}, x, np.array(list("abcd"))[y], seed=0)
    with pytest.raises(CheckpointError, match="integer labels"):
        sklearn_logits(strings, x, 4)


# --- files -------------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", list(SKLEARN_ARCHS))
def test_every_registered_model_round_trips_with_its_metadata(data, tmp_path, arch):
    x, y, rows = train_xy(data)
    recipe = SklearnRecipe(arch, SMALL[arch], seed=3)
    est = fit_sklearn(arch, recipe.params, x, y, recipe.seed)
    meta = meta_for(data, arch, recipe.arch_args, rows)
    path = tmp_path / "m.skops"
    sha = save_sklearn(est, meta, path)
    assert sha == hashlib.sha256(path.read_bytes()).hexdigest()
    model = load_sklearn(path)
    assert model.meta == meta and model.sha256 == sha and model.arch == arch and model.path == path
    assert model.meta.recipe is None and dict(model.meta.arch_args) == {**recipe.params, "random_state": 3}
    np.testing.assert_array_equal(model.estimator.predict_proba(data.x), est.predict_proba(data.x))
    # skops itself still reads the file (our metadata is one more zip member it ignores).
    with zipfile.ZipFile(path) as zf:
        assert META_MEMBER in zf.namelist()
    plain = sio.load(path, trusted=sio.get_untrusted_types(file=path))
    np.testing.assert_array_equal(plain.predict_proba(data.x), est.predict_proba(data.x))


def test_a_users_own_skops_file_loads_without_metadata(data, hgb, tmp_path):
    est, _ = hgb
    path = tmp_path / "own.skops"
    sio.dump(est, path)
    model = load_sklearn(path)
    assert model.meta is None and model.arch == "hist-gradient-boosting"
    assert estimator_params(model.estimator) == {"max_iter": 5, "random_state": 1}
    assert looks_like_skops(path)


def test_saving_checks_the_path_and_the_estimator(hgb, tmp_path, data):
    est, meta = hgb
    with pytest.raises(UsageError, match="must end in .skops"):
        save_sklearn(est, meta, tmp_path / "m.safetensors")
    x, y, _ = train_xy(data)
    with pytest.raises(CheckpointError, match="not a registered scikit-learn model"):
        save_sklearn(LogisticRegression(max_iter=50).fit(x, y), meta, tmp_path / "lr.skops")
    path = tmp_path / "m.skops"
    save_sklearn(est, meta, path)
    with pytest.raises(UsageError, match="exists"):
        save_sklearn(est, meta, path)
    assert not list(tmp_path.glob("*.tmp"))


def test_metadata_must_name_the_estimator_in_the_file(data, hgb, tmp_path):
    est, meta = hgb
    with pytest.raises(UsageError, match="metadata names 'random-forest'"):
        save_sklearn(est, meta_for(data, "random-forest", {}, data.rows(data.train_ids)), tmp_path / "m.skops")


def test_sklearn_metadata_rules():
    base = dict(kind="original", num_classes=4, input_shape=(20,), dataset=load_dataset("synthetic").spec,
                dataset_fingerprint="x", trained_ids_fingerprint=None, n_trained=None)  # fmt: skip
    meta = CheckpointMeta(arch="random-forest", arch_args={"n_estimators": 3}, recipe=None, **base)
    assert CheckpointMeta.from_json(meta.to_json()) == meta
    doc = meta.to_dict() | {"arch_args": {"n_trees": 3}}
    with pytest.raises(CheckpointError, match="no parameter 'n_trees'"):
        CheckpointMeta.from_dict(doc)
    with pytest.raises(CheckpointError, match="inconsistent"):
        CheckpointMeta(arch="random-forest", arch_args={}, recipe=Recipe(arch="mlp"), **base)


# --- hostile files -----------------------------------------------------------------------------

MARKER_MODULE = "audit_skops_marker_mod"


@pytest.fixture()
def marker_module(tmp_path, monkeypatch):
    """A module whose import writes a marker file; yields (module, marker path)."""
    src = tmp_path / "mods"
    src.mkdir()
    marker = tmp_path / "imported.marker"
    (src / f"{MARKER_MODULE}.py").write_text(
        f"open({str(marker)!r}, 'w').write('imported')\n\nclass Payload:\n    def __init__(self):\n        self.x = 1\n"
    )
    monkeypatch.syspath_prepend(str(src))
    import importlib

    mod = importlib.import_module(MARKER_MODULE)
    yield mod, marker
    sys.modules.pop(MARKER_MODULE, None)


def forget_module(marker: Path) -> None:
    sys.modules.pop(MARKER_MODULE, None)
    marker.unlink()


def test_a_foreign_type_is_refused_before_anything_is_imported(hgb, tmp_path, marker_module):
    mod, marker = marker_module
    est, _ = hgb
    est = sio.loads(sio.dumps(est), trusted=sio.get_untrusted_types(data=sio.dumps(est)))
    est.payload_ = mod.Payload()
    path = tmp_path / "evil.skops"
    sio.dump(est, path)
    forget_module(marker)
    with pytest.raises(
        UnsafeArtifactError, match=rf"holds {MARKER_MODULE}\.Payload, which is not on the trusted"
    ) as info:
        load_sklearn(path)
    assert info.value.exit_code == 4
    assert not marker.exists() and MARKER_MODULE not in sys.modules


def test_a_function_is_refused(hgb, tmp_path):
    est, _ = hgb
    est = sio.loads(sio.dumps(est), trusted=sio.get_untrusted_types(data=sio.dumps(est)))
    est.callback_ = os.system  # stored by reference; never called
    path = tmp_path / "fn.skops"
    sio.dump(est, path)
    with pytest.raises(UnsafeArtifactError, match=rf"holds {os.system.__module__}\.system"):
        load_sklearn(path)


def test_a_pipeline_with_a_function_transformer_is_refused(tmp_path, data):
    x, y, _ = train_xy(data)
    pipe = Pipeline([("f", FunctionTransformer(os.system)), ("lr", LogisticRegression())])
    path = tmp_path / "pipe.skops"
    sio.dump(pipe, path)  # unfitted: nothing runs os.system
    with pytest.raises(UnsafeArtifactError, match=r"holds sklearn\.pipeline\.Pipeline"):
        load_sklearn(path)


def rewrite_schema(src: Path, dst: Path, edit) -> Path:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename == "schema.json":
                schema = json.loads(data)
                edit(schema)
                data = json.dumps(schema).encode()
            zout.writestr(info, data)
    return dst


def test_a_hand_edited_schema_naming_os_system_is_refused(saved, tmp_path):
    def edit(schema):
        schema["content"]["content"]["max_iter"] = {"__class__": "system", "__module__": "os",
                                                    "__loader__": "FunctionNode", "content": {}}  # fmt: skip

    path = rewrite_schema(saved, tmp_path / "edited.skops", edit)
    with pytest.raises(UnsafeArtifactError, match=r"holds os\.system"):
        load_sklearn(path)


def test_a_trusted_type_that_is_not_a_model_is_not_loaded_as_one(tmp_path):
    path = tmp_path / "array.skops"
    sio.dump(np.arange(3), path)
    with pytest.raises(CheckpointError, match="holds a numpy.ndarray, not a scikit-learn classifier"):
        load_sklearn(path)


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def zip_with(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda p, good: write(p, good[: len(good) // 2]), "corrupt or truncated"),
        (lambda p, good: write(p, good[:100]), "corrupt or truncated"),
        (lambda p, good: write(p, b"not a zip at all"), "not a zip archive"),
        (lambda p, good: zip_with(p, {"weights.bin": b"x"}), "not a skops file"),
        (lambda p, good: zip_with(p, {"archive/data.pkl": b"x"}), "torch .pt archive, not a skops file"),
        (lambda p, good: zip_with(p, {"schema.json": b"{oops"}), "schema.json is not valid JSON"),
        (lambda p, good: zip_with(p, {"schema.json": b"[1]"}), "not a JSON object"),
        (lambda p, good: zip_with(p, {"schema.json": b'{"__class__": 3}'}), "malformed schema.json"),
        (lambda p, good: zip_with(p, {"schema.json": b"[" * 100000 + b"]" * 100000}), "not valid JSON"),
    ],
    ids=["half", "head", "not-zip", "foreign-zip", "torch-zip", "bad-json", "json-list", "bad-node", "deep-json"],
)
def test_corrupt_files_are_one_line_checkpoint_errors(saved, tmp_path, make, match):
    path = make(tmp_path / "bad.skops", saved.read_bytes())
    with pytest.raises(CheckpointError, match=match) as info:
        load_sklearn(path)
    assert info.value.exit_code == 2 and "\n" not in info.value.message


def test_a_missing_npy_member_is_a_checkpoint_error(saved, tmp_path):
    with zipfile.ZipFile(saved) as zin:
        members = {n: zin.read(n) for n in zin.namelist()}
    dropped = next(n for n in members if n.endswith(".npy"))
    del members[dropped]
    with pytest.raises(CheckpointError, match="corrupt"):
        load_sklearn(zip_with(tmp_path / "missing.skops", members))


@pytest.mark.parametrize(
    "meta_bytes,match",
    [(b"{not json", "not valid JSON"), (b'{"format_version": 99}', "newer"), (b" " * 2_000_000, "byte limit"),
     (b"\xff\xfe", "corrupt")],
)  # fmt: skip
def test_bad_embedded_metadata_is_refused(saved, tmp_path, meta_bytes, match):
    with zipfile.ZipFile(saved) as zin:
        members = {n: zin.read(n) for n in zin.namelist()}
    members[META_MEMBER] = meta_bytes
    with pytest.raises(CheckpointError, match=match):
        load_sklearn(zip_with(tmp_path / "meta.skops", members))


def test_the_checkpoint_loader_points_skops_files_to_sklearn(saved, tmp_path):
    # Sniffed from the bytes: the same file under a torch name is still recognised.
    for name in ("m.skops", "m.pt", "m.safetensors"):
        path = tmp_path / "renamed" / name
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(saved.read_bytes())
        with pytest.raises(CheckpointError, match="is a scikit-learn model \\(skops file\\), not torch weights"):
            load_checkpoint(path)
    assert not looks_like_skops(Path(__file__).resolve().parents[2] / "sample_models/digits_mlp_original.safetensors")


def test_a_truncated_skops_file_is_still_sniffed_as_skops(saved, tmp_path):
    cut = write(tmp_path / "cut.bin", saved.read_bytes()[:200])
    assert looks_like_skops(cut)
    pt = tmp_path / "w.pt"
    torch.save({"w": torch.zeros(2)}, pt)
    assert not looks_like_skops(write(tmp_path / "cut.pt", pt.read_bytes()[:200]))


def test_a_torch_zip_is_neither_skops_nor_refused_as_one(tmp_path):
    path = tmp_path / "w.pt"
    torch.save({"w": torch.zeros(2)}, path)
    assert not looks_like_skops(path)
    assert set(load_checkpoint(path).state_dict) == {"w"}
    with pytest.raises(CheckpointError, match="torch .pt archive"):
        load_sklearn(path)


def test_the_file_hash_is_of_the_bytes_that_were_checked(saved):
    assert load_sklearn(saved).sha256 == hashlib.sha256(saved.read_bytes()).hexdigest()
    assert io.BytesIO(saved.read_bytes()).read(4) == b"PK\x03\x04"
