"""MPRU: the filter's formula, the fit of its redistribution, its file, and ``audit unlearn``'s plain function.

MPRU produces an output filter, not weights, so the weight conformance suite refuses it
(``OTHER_SUITES`` there points here). The formula tests compare with the definition
computed naively in float64; the fit is checked against a derivative-free optimum of the
same objective written out independently, so a wrong gradient would show.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file
from scipy.optimize import minimize
from scipy.special import softmax

from audit_cli.data import fingerprint_ids, load_dataset
from audit_cli.errors import CheckpointError, InputError, UsageError
from audit_cli.models.metadata import FILTER_METADATA_KEY
from audit_cli.models.sklearn_model import SklearnRecipe, sklearn_logits
from audit_cli.repair.train_checkpoint import TrainRequest, train_checkpoint
from audit_cli.repair.unlearn_checkpoint import unlearn_checkpoint
from audit_cli.repair.unlearn_request import UnlearnRequest, split_accuracy_from_logits
from audit_cli.unlearn import METHODS, parse_params
from audit_cli.unlearn.mpru import (
    LOG_FLOOR,
    FilterSpec,
    MPRUParams,
    apply_filter,
    check_filter_parent,
    fit_redistribution,
    load_filter,
    retain_sample,
    save_filter,
)

SAMPLES = Path(__file__).resolve().parents[2] / "sample_models"
FLOOR32 = float(np.float32(LOG_FLOOR))


def naive_filter(z: np.ndarray, c: int, a: np.ndarray) -> np.ndarray:
    """The definition, in probabilities: p'_j = p_j + p_c r_j, r_j ∝ p_j e^{a_j} over j != c."""
    p = softmax(z.astype(np.float64), axis=-1)
    keep = np.arange(z.shape[-1]) != c
    w = p * np.exp(a) * keep
    r = w / w.sum(-1, keepdims=True)
    out = p + p[..., c : c + 1] * r
    out[..., c] = 0.0
    return out


# --- the formula -------------------------------------------------------------------------------


def test_zero_bias_is_plain_renormalization():
    z = np.random.default_rng(0).normal(size=(50, 5)) * 3
    p = softmax(z, axis=1)
    out = apply_filter(z, 2, np.zeros(5))
    assert out.dtype == np.float32 and out.shape == (50, 5)
    keep = [0, 1, 3, 4]
    np.testing.assert_allclose(np.exp(out[:, keep]), p[:, keep] / (1 - p[:, [2]]), rtol=1e-6)
    assert (out[:, 2] == FLOOR32).all()
    np.testing.assert_allclose(np.exp(out[:, keep].astype(np.float64)).sum(1), 1.0, atol=1e-6)


def test_a_bias_tilts_the_redistribution_as_defined():
    rng = np.random.default_rng(1)
    z = rng.normal(size=(40, 4)) * 2
    a = np.array([0.7, 0.0, -1.3, 2.1])  # a_c (index 1) is ignored
    out = apply_filter(z, 1, a)
    want = naive_filter(z, 1, a)
    np.testing.assert_allclose(np.exp(out[:, [0, 2, 3]]), want[:, [0, 2, 3]], rtol=1e-6)
    np.testing.assert_allclose(np.exp(out[:, [0, 2, 3]].astype(np.float64)).sum(1), 1.0, atol=1e-6)
    # The tilt moves mass toward class 3 compared with renormalization.
    assert (np.exp(out[:, 3]) > np.exp(apply_filter(z, 1, np.zeros(4))[:, 3])).all()
    # a_c does not matter.
    np.testing.assert_array_equal(out, apply_filter(z, 1, a + np.array([0, 50.0, 0, 0])))


def test_a_model_sure_of_the_forgotten_class_still_gets_a_distribution():
    # p_c = 1 - 1e-40: renormalizing in probability space would divide 0 by 0.
    z = np.array([[0.0, 92.0, 1.0, -2.0], [3.0, 500.0, 3.0, 3.0]])
    out = apply_filter(z, 1, np.zeros(4))
    assert np.isfinite(out).all()
    retained = softmax(z[:, [0, 2, 3]], axis=1)
    np.testing.assert_allclose(np.exp(out[:, [0, 2, 3]]), retained, rtol=1e-6)
    assert (out[:, 1] == FLOOR32).all()


def test_any_leading_shape_is_filtered():
    z = np.random.default_rng(2).normal(size=(3, 7, 6))
    out = apply_filter(z, 5, np.linspace(-1, 1, 6))
    assert out.shape == (3, 7, 6)
    np.testing.assert_array_equal(out[1], apply_filter(z[1], 5, np.linspace(-1, 1, 6)))


@pytest.mark.parametrize(
    "logits,c,bias,match",
    [
        (np.zeros((2, 4)), 4, np.zeros(4), "class 4 does not exist"),
        (np.zeros((2, 4)), -1, np.zeros(4), "does not exist"),
        (np.zeros((2, 4)), 0, np.zeros(3), "does not fit 4 classes"),
        (np.zeros((2, 1)), 0, np.zeros(1), "at least two classes"),
    ],
)
def test_bad_filter_inputs_are_usage_errors(logits, c, bias, match):
    with pytest.raises(UsageError, match=match):
        apply_filter(logits, c, bias)


# --- the fit -------------------------------------------------------------------------------------


def confused_case(n: int = 200, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """4 classes, forget class 0. The model mistakes class-1 examples for class 0 (60% of
    their mass goes to 0, and 2 outranks 1 among the rest); class-2 and class-3 examples
    are recognised with little mass on 0. Renormalization hands class-1 examples to 2."""
    rng = np.random.default_rng(seed)
    y = rng.integers(1, 4, size=n)
    probs = np.where(
        (y == 1)[:, None],
        [0.6, 0.15, 0.2, 0.05],
        np.where((y == 2)[:, None], [0.05, 0.15, 0.7, 0.1], [0.05, 0.1, 0.15, 0.7]),
    )
    noise = rng.normal(scale=0.05, size=probs.shape)
    return np.log(probs) + noise, y


def loglik(logits: np.ndarray, y: np.ndarray, c: int, a: np.ndarray) -> float:
    p = naive_filter(logits, c, a)
    return float(np.log(p[np.arange(len(y)), y]).mean())


def test_the_fitted_redistribution_sends_the_mass_where_it_belongs():
    z, y = confused_case()
    params = MPRUParams(fit="retain-sample", l2=1e-3)
    a = fit_redistribution(z, y, 0, params)
    assert a.shape == (4,) and a[0] == 0.0
    renorm = apply_filter(z, 0, np.zeros(4)).argmax(1)
    fitted = apply_filter(z, 0, a).argmax(1)
    is1 = y == 1
    # Renormalization gets every class-1 example wrong (0.2 > 0.15); the fit gets them right.
    assert (renorm[is1] == 2).all()
    assert (fitted == y).mean() == 1.0
    assert (renorm == y).mean() == pytest.approx(1 - is1.mean())
    assert a[1] > a[2] + 0.5
    assert loglik(z, y, 0, a) > loglik(z, y, 0, np.zeros(4)) + 0.1


def test_the_fit_reaches_the_optimum_of_its_objective():
    z, y = confused_case(n=120, seed=3)
    l2 = 1e-2
    a = fit_redistribution(z, y, 0, MPRUParams(fit="retain-sample", l2=l2))

    def objective(ar: np.ndarray) -> float:
        full = np.concatenate([[0.0], ar])
        return -loglik(z, y, 0, full) + l2 * float(ar @ ar)

    best = minimize(objective, np.zeros(3), method="Nelder-Mead", options={"xatol": 1e-8, "fatol": 1e-12})
    assert objective(a[1:]) <= best.fun + 1e-6
    np.testing.assert_allclose(a[1:], best.x, atol=1e-3)


def test_renormalize_fits_nothing_and_forgotten_labels_are_ignored():
    z, y = confused_case(n=60)
    assert (fit_redistribution(z, y, 0, MPRUParams(fit="renormalize")) == 0).all()
    params = MPRUParams(fit="retain-sample")
    with_c = fit_redistribution(np.vstack([z, z[:5]]), np.concatenate([y, np.zeros(5, dtype=int)]), 0, params)
    np.testing.assert_allclose(with_c, fit_redistribution(z, y, 0, params), atol=1e-12)
    with pytest.raises(UsageError, match="empty"):
        fit_redistribution(z[:3], np.zeros(3, dtype=int), 0, params)


@pytest.mark.parametrize(
    "raw,match",
    [
        ({"fit": "magic"}, "fit must be one of"),
        ({"sample": "0"}, "sample must be"),
        ({"l2": "-1"}, "l2 must"),
        ({"l2": "nan"}, "l2 must"),
        ({"sample": "many"}, "expected int"),
        ({"alpha": "1"}, "no parameter 'alpha'"),
    ],
)
def test_bad_parameters_are_usage_errors(raw, match):
    with pytest.raises(UsageError, match=match):
        parse_params(METHODS["mpru"], raw)


def test_registry_entry_is_a_class_forgetting_filter():
    entry = METHODS["mpru"]
    assert entry.produces == "filter" and entry.supports == frozenset({"class"}) and not entry.augmentable
    assert entry.params() == MPRUParams(fit="retain-sample", sample=200, l2=1e-3)
    # A filter, not a weight update: the registry holds its filter and no run to misuse.
    assert entry.run is None and entry.filter_outputs is not None
    from audit_cli.unlearn import MethodEntry, unlearn_models

    with pytest.raises(UsageError, match="does not update weights here .it is an output filter"):
        unlearn_models(None, None, "mpru")
    with pytest.raises(ValueError, match="either update weights"):
        MethodEntry(name="x", params=MPRUParams, supports=frozenset({"class"}), description="")


def test_filter_outputs_is_what_audit_unlearn_fits(digits):
    """The shadows' filter (the registry's filter_outputs) equals fitting and applying the
    filter by hand on the same retain sample."""
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 2, (1, len(digits.ids), digits.num_classes)).astype(np.float32)
    retain = digits.train_ids[digits.y[digits.rows(digits.train_ids)] != 3]
    params = MPRUParams()
    out = METHODS["mpru"].filter_outputs(logits, digits, retain, 3, params, 5)
    rows = digits.rows(retain_sample(retain, params, 5))
    bias = fit_redistribution(logits[0][rows], digits.y[rows], 3, params)
    np.testing.assert_allclose(out, apply_filter(logits, 3, bias))
    assert (out[..., 3] < -20).all()  # the class is gone from every output


# --- the filter file ---------------------------------------------------------------------------


def make_spec(**changes) -> FilterSpec:
    fields = dict(
        forget_class=2,
        num_classes=4,
        bias=np.array([0.5, -0.25, 0.0, 1.5]),
        params={"fit": "retain-sample", "sample": 200, "l2": 0.001, "seed": 0},
        parent_sha256="ab" * 32,
        dataset=load_dataset("synthetic").spec,
        dataset_fingerprint="cd" * 32,
        retain_sample_fingerprint="ef" * 32,
        n_retain_sample=200,
        metrics={"forget_accuracy": 0.0},
    )
    return FilterSpec(**(fields | changes))


def test_a_filter_file_round_trips(tmp_path):
    spec = make_spec()
    path = tmp_path / "f.safetensors"
    sha = save_filter(path, spec)
    assert sha == hashlib.sha256(path.read_bytes()).hexdigest()
    back = load_filter(path)
    assert back.to_dict() == spec.to_dict()
    np.testing.assert_array_equal(back.bias, spec.bias)
    assert back.bias.dtype == np.float64 and not back.bias.flags.writeable
    z = np.random.default_rng(0).normal(size=(5, 4))
    np.testing.assert_array_equal(back.apply(z), apply_filter(z, 2, spec.bias))
    with pytest.raises(UsageError, match="exists"):
        save_filter(path, spec)
    with pytest.raises(UsageError, match="must end in .safetensors"):
        save_filter(tmp_path / "f.json", spec)


def write_raw_filter(path: Path, bias: np.ndarray, doc: dict | str | None, **tensors) -> Path:
    metadata = None if doc is None else {FILTER_METADATA_KEY: doc if isinstance(doc, str) else json.dumps(doc)}
    save_file({"bias": bias, **tensors}, str(path), metadata=metadata)
    return path


TAMPERED = {
    "nan bias": (lambda d: (np.array([0.0, np.nan, 0.0, 0.0]), d, {}), "NaN or infinite"),
    "inf bias": (lambda d: (np.array([0.0, np.inf, 0.0, 0.0]), d, {}), "NaN or infinite"),
    "wrong shape": (lambda d: (np.zeros(3), d, {}), r"expected float \(4,\)"),
    "integer bias": (lambda d: (np.zeros(4, dtype=np.int64), d, {}), "expected float"),
    "no metadata": (lambda d: (np.zeros(4), None, {}), "not an output filter"),
    "not json": (lambda d: (np.zeros(4), "{oops", {}), "not valid JSON"),
    "newer format": (lambda d: (np.zeros(4), d | {"format_version": 99}, {}), "newer than this tool"),
    "other format": (lambda d: (np.zeros(4), d | {"format": "something/else"}, {}), "has format"),
    "missing field": (lambda d: (np.zeros(4), {k: v for k, v in d.items() if k != "parent_sha256"}, {}), "lacks field"),
    "class out of range": (lambda d: (np.zeros(4), d | {"forget_class": 7}, {}), "forget class 7"),
    "string class": (lambda d: (np.zeros(4), d | {"forget_class": "2"}, {}), "malformed"),
    "bad sha": (lambda d: (np.zeros(4), d | {"parent_sha256": "x"}, {}), "parent_sha256"),
    "extra tensor": (lambda d: (np.zeros(4), d, {"w": np.zeros(2)}), "one tensor"),
}


@pytest.mark.parametrize("case", list(TAMPERED))
def test_a_tampered_filter_is_refused_in_one_line(tmp_path, case):
    make, match = TAMPERED[case]
    bias, doc, extra = make(make_spec().to_dict())
    path = write_raw_filter(tmp_path / "f.safetensors", bias, doc, **extra)
    with pytest.raises(CheckpointError, match=match) as info:
        load_filter(path)
    assert info.value.exit_code == 2
    assert str(path) in info.value.message and "\n" not in info.value.message


@pytest.mark.parametrize("cut", [4, 20, -3])
def test_a_truncated_filter_is_refused(tmp_path, cut):
    path = tmp_path / "f.safetensors"
    save_filter(path, make_spec())
    data = path.read_bytes()
    path.write_bytes(data[:cut] if cut > 0 else data[:cut])
    with pytest.raises(CheckpointError):
        load_filter(path)


def test_a_model_or_a_missing_file_is_not_a_filter(tmp_path):
    with pytest.raises(CheckpointError, match="not an output filter"):
        load_filter(SAMPLES / "digits_mlp_original.safetensors")
    with pytest.raises(CheckpointError, match="not found"):
        load_filter(tmp_path / "nope.safetensors")
    huge = tmp_path / "huge.safetensors"
    huge.write_bytes(struct.pack("<Q", 10**12) + b"{}")
    with pytest.raises(CheckpointError, match="header does not fit"):
        load_filter(huge)


def test_a_filter_belongs_to_one_model_file():
    spec = make_spec()
    check_filter_parent(spec, "ab" * 32, "f.safetensors")
    with pytest.raises(UsageError, match="fitted for the model with sha256 abababab"):
        check_filter_parent(spec, "00" * 32, "f.safetensors")


# --- audit unlearn --method mpru as a plain function -------------------------------------------

DATA_OPTIONS = {"n_samples": "1200", "n_classes": "4", "class_sep": "1.0"}
FORGET_CLASS = 1


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tree") / "hgb.skops"
    recipe = SklearnRecipe("hist-gradient-boosting", {"max_iter": 20}, seed=0)
    train_checkpoint(TrainRequest(out=out, data="synthetic", data_options=DATA_OPTIONS, recipe=recipe))
    return out


@pytest.mark.parametrize("fit", ["retain-sample", "renormalize"])
def test_unlearn_checkpoint_fits_and_writes_a_filter_for_a_tree(tree, tmp_path, fit):
    from audit_cli.models.sklearn_model import load_sklearn

    model = Path(shutil.copyfile(tree, tmp_path / "hgb.skops"))
    model_bytes = model.read_bytes()
    out = tmp_path / "mpru.safetensors"
    result = unlearn_checkpoint(
        UnlearnRequest(model=model, out=out, method="mpru", params={"fit": fit}, forget_class=FORGET_CLASS, seed=4)
    )
    assert model.read_bytes() == model_bytes
    spec = load_filter(out)
    assert result.sha256 == hashlib.sha256(out.read_bytes()).hexdigest()
    assert spec.parent_sha256 == hashlib.sha256(model_bytes).hexdigest()
    assert spec.forget_class == FORGET_CLASS and spec.num_classes == 4
    assert dict(spec.params) == {"fit": fit, "sample": 200, "l2": 0.001, "seed": 4}
    data = load_dataset("synthetic", DATA_OPTIONS)
    assert spec.dataset == data.spec and spec.dataset_fingerprint == data.fingerprint
    forget = data.ids_of_class(FORGET_CLASS, split="train")
    retain = np.setdiff1d(data.train_ids, forget)
    if fit == "retain-sample":
        sample = np.sort(np.random.default_rng(4).choice(retain, 200, replace=False))
        assert spec.retain_sample_fingerprint == fingerprint_ids(sample) and spec.n_retain_sample == 200
        assert np.abs(spec.bias).max() > 0
    else:
        assert spec.retain_sample_fingerprint is None and (spec.bias == 0).all()
    # The class is gone from the outputs; the model's other predictions survive.
    assert result.before.forget >= 0.9 and result.after.forget == 0.0 and result.after.forget_class_test == 0.0
    assert result.after.retain >= result.before.retain
    assert result.after.test >= result.before.test
    # The reported "after" accuracies are those of the saved filter on the model's outputs.
    logits = sklearn_logits(load_sklearn(model).estimator, data.x, 4)
    again = split_accuracy_from_logits(spec.apply(logits), data, forget, retain, FORGET_CLASS)
    assert again == result.after
    assert spec.metrics["test_accuracy"] == pytest.approx(again.test, abs=1e-12)


def test_unlearn_checkpoint_fits_a_filter_for_a_torch_model(tmp_path):
    model = Path(shutil.copyfile(SAMPLES / "digits_mlp_original.safetensors", tmp_path / "m.safetensors"))
    out = tmp_path / "f.safetensors"
    result = unlearn_checkpoint(UnlearnRequest(model=model, out=out, method="mpru", forget_class=3, device="cpu"))
    spec = load_filter(out)
    assert spec.parent_sha256 == hashlib.sha256(model.read_bytes()).hexdigest()
    # Measured: forget 1.0 -> 0.0, retain 0.9975 -> 0.9975, retained-class test 0.9752 -> 0.9802.
    assert result.after.forget == 0.0 and result.after.retain >= result.before.retain - 1e-12
    assert result.after.test >= result.before.test


def test_weights_saved_through_a_wrapper_get_the_same_filter_with_strip_prefix(tmp_path):
    """--strip-prefix and --recipe reach the filter fit: a DataParallel-style checkpoint
    without metadata, its architecture's arguments from a recipe file, fits the filter the
    original checkpoint fits."""
    import torch
    from safetensors.torch import load_file

    original = SAMPLES / "digits_mlp_original.safetensors"
    weights = load_file(original)
    torch.save({f"module.{k}": v for k, v in weights.items()}, tmp_path / "ddp.pt")
    recipe = tmp_path / "r.toml"
    recipe.write_text('format = 1\narch = "mlp"\n[arch_args]\nhidden = [256]\n')
    fitted = {}
    for name, changes in {"plain": dict(model=original),
                          "wrapped": dict(model=tmp_path / "ddp.pt", strip_prefix="module.", recipe=recipe,
                                          arch="mlp", data="digits")}.items():  # fmt: skip
        out = tmp_path / f"{name}.safetensors"
        unlearn_checkpoint(UnlearnRequest(out=out, method="mpru", forget_class=3, device="cpu", **changes))
        fitted[name] = load_filter(out)
    assert np.array_equal(fitted["plain"].bias, fitted["wrapped"].bias)
    drop = lambda metrics: {k: v for k, v in metrics.items() if k != "seconds"}  # noqa: E731
    assert drop(fitted["plain"].metrics) == drop(fitted["wrapped"].metrics)
    with pytest.raises(CheckpointError, match="does not start with it"):
        unlearn_checkpoint(UnlearnRequest(model=tmp_path / "ddp.pt", out=tmp_path / "x.safetensors", method="mpru",
                                          forget_class=3, strip_prefix="model.", recipe=recipe, arch="mlp",
                                          data="digits"))  # fmt: skip


@pytest.mark.parametrize(
    "changes,match",
    [
        ({"forget": SAMPLES / "forget_random10.txt", "forget_class": None}, "mpru forgets a class"),
        ({"forget_class": None}, "pass --forget-class"),
        ({"augmentation": "crop+flip"}, "takes no augmentation"),
        ({"arch": "mlp"}, "--arch is for torch"),
        ({"strip_prefix": "module."}, "--strip-prefix is for torch"),
        ({"recipe": SAMPLES / "recipe.toml"}, "--recipe is for torch"),
        ({"forget_clients": (0,)}, "--forget-client and --retrained are for a federated"),
        ({"retrained": SAMPLES / "digits_mlp_retrained.safetensors"}, "--forget-client and --retrained"),
        ({"forget_class": 9}, "class 9 does not exist"),
    ],
)
def test_unlearn_checkpoint_usage_errors(tree, tmp_path, changes, match):
    out = tmp_path / "f.safetensors"
    request = dict(model=tree, out=out, method="mpru", forget_class=FORGET_CLASS) | changes
    with pytest.raises((UsageError, InputError), match=match) as info:
        unlearn_checkpoint(UnlearnRequest(**request))
    assert info.value.exit_code == 2
    assert not out.exists()


def test_math_floor_is_the_documented_one():
    assert LOG_FLOOR == math.log(1e-12)
