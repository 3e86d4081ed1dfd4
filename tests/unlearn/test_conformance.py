"""Conformance suite: every registered unlearning method against one contract.

One parametrized suite (STYLE.md: "a conformance test runs over every registered
estimator"), run over ``METHODS`` for every kind of forgetting each method supports:

The contract is about new weights: methods that produce something else (an output
filter: mpru) are refused by ``unlearn_models`` and have suites of their own, named in
``OTHER_SUITES`` so that a new one cannot go untested.

1. forget accuracy moves the expected way, 2. retain accuracy stays close to the
original's, 3. the stacked path gives the same models as K single runs, 4. the
originals are left alone, 5. ``unlearn_checkpoint`` writes complete metadata,
6. usage errors, 7. augmentation, 8. divergence.

The originals memorise their training set (train accuracy 1.0, test about 0.82), so a
random forget set has a real gap to close: a retrained model scores about 0.8 on it.
Because the originals already score 1.0 on every forget set, "forget accuracy does not
increase" cannot fail there on its own; the mean cross-entropy on the forget set, which
must rise, is what can.

Thresholds were set from measurements (torch 2.x, CPU, the seeds below) with margin;
the measured values are in the comments of ``EXPECT``.
"""

from __future__ import annotations

import hashlib
import math
import pathlib
import shutil
from dataclasses import dataclass, field, fields

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from audit_cli.data import DatasetSpec, fingerprint_ids, load_dataset, make_dataset, write_id_file
from audit_cli.errors import UsageError
from audit_cli.models.checkpoint import build_model_from_checkpoint, load_checkpoint
from audit_cli.models.recipe import Recipe
from audit_cli.repair.train_checkpoint import TrainRequest, train_checkpoint
from audit_cli.repair.unlearn_checkpoint import unlearn_checkpoint
from audit_cli.repair.unlearn_request import UnlearnRequest, split_accuracy
from audit_cli.training.loop import Ensemble, model_seeds, predict_logits, train_models
from audit_cli.unlearn import METHODS as REGISTRY
from audit_cli.unlearn import DivergedError, UnlearnTask, params_dict, parse_params, unlearn_models

# --- the setting ------------------------------------------------------------------------------

DATA = "synthetic"
# 800 examples (600 train / 200 test), 20 features, 4 classes, 5% flipped labels: an MLP
# memorises the training split (train 1.0) and generalises to about 0.82.
DATA_OPTIONS = {"n_samples": "800", "flip_y": "0.05", "class_sep": "1.5"}
RECIPE = Recipe(arch="mlp", arch_args={"hidden": (128,)}, optimizer="adam", lr=3e-3, epochs=40, batch_size=64)
K = 3
N_FORGET = 90  # 15% of the training split, per model
FORGET_CLASS = 1
KINDS = ("random", "class")
# Registered methods whose output is not weights, and the suite that tests each.
OTHER_SUITES = {"mpru": "test_mpru.py", "own": "test_own.py"}
# Weight methods that forget whole clients of a federated model, and the suite that tests each.
FEDERATED_SUITES = {"puf": "test_puf.py"}
METHODS = {name: entry for name, entry in REGISTRY.items()
           if entry.produces == "weights" and name not in FEDERATED_SUITES}  # fmt: skip


@dataclass(frozen=True)
class Expect:
    """What one method must do on the setting above (all accuracies are on the train split)."""

    params: dict[str, object]
    """Parameters strong enough to act within a few epochs."""
    class_drop: float
    """Minimum drop of the mean forget-class accuracy (originals: 1.0)."""
    removes_class: bool
    """Designed to remove a class: every model's forget-class accuracy must end <= 0.5."""
    random_loss_ratio: float = 1.2
    """Minimum ratio of mean forget-set cross-entropy after / before, random forgetting."""
    retain_drop: float = 0.10
    """Largest drop of any model's retain accuracy allowed (originals: 0.998..1.0)."""
    notes: str = ""


# Measured with the setting above, per model (3 models); F forget accuracy, CE mean
# forget-set cross-entropy, R retain accuracy, T test accuracy. Originals: random F 1.0,
# CE 0.048 0.043 0.060, R 1.0 0.998 0.998, T 0.815 0.825 0.815; class F 1.0,
# CE 0.035 0.039 0.039.
EXPECT: dict[str, Expect] = {
    # random: F 0.811 0.778 0.822 (T 0.840 0.820 0.790), CE ratio 14.4;
    # class: F 0.0, R 0.987 0.998 0.982
    "retrain": Expect({}, class_drop=0.9, removes_class=True, random_loss_ratio=5.0),
    # random: F 0.978 0.978 0.956, CE ratio 1.87; class: F 0.600 0.473 0.607 (drop 0.44),
    # R >= 0.984
    "finetune": Expect({"lr": 0.05, "epochs": 5}, class_drop=0.2, removes_class=False),
    # Gradient ascent drags retained accuracy down with the forget class: class R 0.911
    # 0.913 0.891 (drop up to 0.107), so its bound is 0.2.
    # random: F 0.944 0.922 0.944, CE ratio 3.96, R >= 0.982; class: F 0.0
    "neggrad": Expect(
        {"lr": 0.1, "epochs": 2}, class_drop=0.7, removes_class=True, random_loss_ratio=2.0, retain_drop=0.2
    ),
    # random: F 0.978 0.967 0.967, CE ratio 1.86; class: F 0.200 0.027 0.067 (drop 0.90),
    # R >= 0.978
    "neggrad+": Expect({"lr": 0.05, "epochs": 2, "alpha": 0.9}, class_drop=0.6, removes_class=True),
    # random: F 0.889 0.867 0.844, CE ratio 7.9, R 0.949 0.943 0.945 (drop up to 0.055);
    # class: F 0.0, R >= 0.978
    "random-label": Expect({"lr": 0.01, "epochs": 2}, class_drop=0.9, removes_class=True, random_loss_ratio=3.0),
    # random: F 0.956 0.811 0.889, CE ratio 6.4, R 0.967 0.945 0.965; class: F 0.0, R >= 0.987
    "salun": Expect({"lr": 0.01, "epochs": 2}, class_drop=0.9, removes_class=True, random_loss_ratio=3.0),
    # The L1 term barely acts on a model this size in a few epochs: it behaves like finetune.
    # random: F 0.978 0.978 0.956, CE ratio 1.97; class: F 0.573 0.447 0.600 (drop 0.46)
    "l1-sparse": Expect({"lr": 0.05, "epochs": 5, "gamma": 5e-4}, class_drop=0.2, removes_class=False),
    # random: F 0.989 0.978 0.989, CE ratio 1.58 (the weakest); class: F 0.0, R >= 0.967
    "scrub": Expect({"lr": 0.03, "epochs": 2}, class_drop=0.9, removes_class=True),
    # Pruning half the weights then two epochs of fine-tuning forgets little of a class.
    # random: F 0.978, CE ratio 2.61, R >= 0.980; class: F 0.960 0.913 0.940 (drop 0.062),
    # CE ratio 6.6, R >= 0.967
    "prune": Expect({"sparsity": 0.5, "lr": 0.01, "epochs": 2}, class_drop=0.02, removes_class=False),
    # One Newton step at the recipe's damping fallback (0.01). random: F 0.944 0.900 0.889,
    # CE ratio 6.5 8.0 6.6, R >= 0.994; class: F 0.627 0.447 0.327 (drop 0.53), R >= 0.995
    "influence": Expect({}, class_drop=0.3, removes_class=False, random_loss_ratio=3.0),
    # class: F 0.0, R 0.993 0.998 0.996
    "trw": Expect({"lr": 0.01, "epochs": 2}, class_drop=0.9, removes_class=True),
}

CASES = [(name, kind) for name, entry in METHODS.items() for kind in KINDS if kind in entry.supports]
UNSUPPORTED = [(name, kind) for name, entry in METHODS.items() for kind in KINDS if kind not in entry.supports]
CASE_IDS = [f"{name}-{kind}" for name, kind in CASES]
# Tiny models: one intra-op thread (tests/conftest.py says why).
pytestmark = pytest.mark.usefixtures("one_thread")

AUGMENTABLE = [name for name, entry in METHODS.items() if entry.augmentable]
NOT_AUGMENTABLE = [name for name, entry in METHODS.items() if not entry.augmentable]


def max_param_diff(a: Ensemble, ka: int, b: Ensemble, kb: int) -> float:
    diffs = [(a.params[n][ka] - b.params[n][kb]).abs().max().item() for n in a.params]
    diffs += [(a.buffers[n][ka] - b.buffers[n][kb]).abs().max().item() for n in a.buffers]
    return max(diffs)


# Stacked and single runs execute different kernels (one batched matmul over K models against
# one matmul, fused optimizer loops over K times the elements), which round apart by float32's
# eps (1.2e-7, relative) per operation; training carries that forward. Smoothly it grows about
# linearly: eps x |w| (<= 0.75 here) x optimizer steps = 3.6e-6 for the <= 40 steps of every
# method's run but retrain's; measured <= 8.9e-8 under the CPU code paths of
# tests/test_cpu_code_paths.py (ATen default/AVX2/AVX-512, oneDNN SSE4.1/AVX2, MKL AVX2 and
# COMPATIBLE, and two combinations). retrain runs the recipe's 40 epochs (320 Adam steps): 3.1e-7
# on some paths, but a ReLU input within rounding of 0 can fall on the other side on one path,
# so one example's gradient through that unit differs for a step and Adam carries it (measured
# 6.3e-5 with ATen's AVX2 and AVX-512 kernels, model 0 of class forgetting; 1e-5 failed there).
# Its bound, 1e-3, is 16x that and a third of one Adam step (lr 3e-3). Both bounds still fail
# the smallest wrong result: one example exchanged between the forget and the retain set moves
# the weights by 2.9e-4 (prune; 29x ROUNDING) to 0.21 (retrain; 200x ROUNDING_LONG_RUN)
# (test_one_exchanged_example_is_far_outside_the_stacking_tolerance asserts >= 10x).
ROUNDING = 1e-5
ROUNDING_LONG_RUN = 1e-3
LONG_RUNS = frozenset({"retrain"})


def stacking_tolerance(method: str) -> float:
    """How far a stacked model may be from the same model run alone (float rounding)."""
    return ROUNDING_LONG_RUN if method in LONG_RUNS else ROUNDING


def snapshot(ens: Ensemble) -> dict[str, torch.Tensor]:
    return {n: t.detach().clone() for n, t in {**ens.params, **ens.buffers}.items()}


def unchanged(ens: Ensemble, snap: dict[str, torch.Tensor]) -> bool:
    tensors = {**ens.params, **ens.buffers}
    return tensors.keys() == snap.keys() and all(torch.equal(tensors[n], snap[n]) for n in snap)


@dataclass
class Metrics:
    """Per-model accuracies (train split) and forget-set cross-entropy."""

    forget: np.ndarray
    retain: np.ndarray
    forget_loss: np.ndarray
    test: np.ndarray
    """Test accuracy; for class forgetting on the retained classes only."""


def measure(ens: Ensemble, task: UnlearnTask) -> Metrics:
    data = task.dataset
    logits = predict_logits(ens, data.x)
    y = torch.as_tensor(data.y)

    def acc(k: int, rows: np.ndarray) -> float:
        return float((logits[k, rows].argmax(-1) == y[rows]).double().mean())

    test_rows = data.rows(data.test_ids)
    if task.forget_class is not None:
        test_rows = test_rows[data.y[test_rows] != task.forget_class]
    out = Metrics(*(np.zeros(ens.size) for _ in range(4)))
    for k in range(ens.size):
        f, r = data.rows(task.forget_ids[k]), data.rows(task.retain_ids[k])
        out.forget[k], out.retain[k], out.test[k] = acc(k, f), acc(k, r), acc(k, test_rows)
        out.forget_loss[k] = float(F.cross_entropy(logits[k, f], y[f]))
    return out


@dataclass
class Run:
    """One stacked run of a method: what went in, what came out, and how it scored."""

    inputs: Ensemble
    before_run: dict[str, torch.Tensor]
    result: Ensemble
    before: Metrics
    after: Metrics


# --- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def data():
    return load_dataset(DATA, DATA_OPTIONS)


@pytest.fixture(scope="module")
def seeds():
    return model_seeds(11, K)


@pytest.fixture(scope="module")
def originals(data, seeds):
    """K models trained on the whole training split (different seeds)."""
    return train_models(data, RECIPE, [data.train_ids] * K, seeds)


@pytest.fixture(scope="module")
def tasks(data, seeds):
    rng = np.random.default_rng(0)
    forgets = [np.sort(rng.choice(data.train_ids, N_FORGET, replace=False)) for _ in range(K)]
    cls = data.ids_of_class(FORGET_CLASS, split="train")
    return {
        "random": UnlearnTask(data, forgets, [np.setdiff1d(data.train_ids, f) for f in forgets], RECIPE, seeds),
        "class": UnlearnTask(
            data, [cls] * K, [np.setdiff1d(data.train_ids, cls)] * K, RECIPE, seeds, forget_class=FORGET_CLASS
        ),
    }


@pytest.fixture(scope="module")
def before(originals, tasks):
    return {kind: measure(originals, task) for kind, task in tasks.items()}


@pytest.fixture(scope="module")
def runs(originals, tasks, before):
    """Stacked runs, computed once per (method, kind) on a fresh copy of the originals."""
    cache: dict[tuple[str, str], Run] = {}

    def get(method: str, kind: str) -> Run:
        if (method, kind) not in cache:
            inputs = originals.select(range(K))
            snap = snapshot(inputs)
            result = unlearn_models(inputs, tasks[kind], method, EXPECT[method].params)
            cache[method, kind] = Run(inputs, snap, result, before[kind], measure(result, tasks[kind]))
        return cache[method, kind]

    return get


def test_the_setting_is_what_the_thresholds_assume(before, tasks):
    # Originals memorise the training split and generalise clearly worse.
    for kind in KINDS:
        assert before[kind].forget.min() >= 0.99
        assert before[kind].retain.min() >= 0.99
    assert 0.7 <= before["random"].test.mean() <= 0.9
    assert all(len(f) == N_FORGET for f in tasks["random"].forget_ids)
    # Different forget sets per model, equally sized.
    f = tasks["random"].forget_ids
    assert not np.array_equal(f[0], f[1])


def test_methods_that_produce_no_weights_have_their_own_suite_and_are_refused_here(originals, tasks):
    others = {name: entry for name, entry in REGISTRY.items() if entry.produces != "weights"}
    assert sorted(others) == sorted(OTHER_SUITES), "a method producing no weights needs a suite of its own"
    for name, entry in others.items():
        assert (pathlib.Path(__file__).parent / OTHER_SUITES[name]).is_file(), OTHER_SUITES[name]
        kind = sorted(entry.supports)[0]
        with pytest.raises(UsageError, match="does not update weights here"):
            unlearn_models(originals, tasks[kind], name)


def test_federated_methods_have_their_own_suite():
    for name, suite in FEDERATED_SUITES.items():
        assert REGISTRY[name].produces == "weights"
        assert (pathlib.Path(__file__).parent / suite).is_file(), suite


def test_every_registered_method_has_expectations():
    missing = sorted(set(METHODS) - set(EXPECT))
    assert not missing, f"methods without conformance expectations (add them to EXPECT): {missing}"
    stale = sorted(set(EXPECT) - set(METHODS))
    assert not stale, f"expectations for methods that are not registered: {stale}"
    for name, entry in METHODS.items():
        assert entry.name == name
        assert entry.supports and set(entry.supports) <= set(KINDS), name
        assert entry.produces == "weights", f"{name} produces {entry.produces}: the suite only knows weights"
        parse_params(entry, EXPECT[name].params)  # the suite's parameters are valid


# --- 1. forgetting and 2. retaining ------------------------------------------------------------


@pytest.mark.parametrize("method,kind", CASES, ids=CASE_IDS)
def test_forget_accuracy_moves_the_expected_way(runs, method, kind):
    expect = EXPECT[method]
    run = runs(method, kind)
    b, a = run.before, run.after
    detail = f"forget acc {b.forget} -> {a.forget}, CE {b.forget_loss} -> {a.forget_loss}"
    if kind == "random":
        # Never more familiar than before (one example of 90 is 0.011) ...
        assert a.forget.mean() <= b.forget.mean() + 0.012, detail
        # ... and, since the originals are at 1.0, the loss on the forget set must rise.
        assert a.forget_loss.mean() >= expect.random_loss_ratio * b.forget_loss.mean(), detail
        if method == "retrain":
            # Exact unlearning: the forget set is as unfamiliar as the test set.
            assert abs(a.forget.mean() - a.test.mean()) <= 0.08, f"{detail}, test {a.test}"
            assert np.abs(a.forget - a.test).max() <= 0.15, f"{detail}, test {a.test}"
            assert a.forget.mean() <= b.forget.mean() - 0.1, detail
    else:
        assert (a.forget <= b.forget + 1e-9).all(), detail
        assert a.forget.mean() <= b.forget.mean() - expect.class_drop, detail
        assert a.forget_loss.mean() >= 2.0 * b.forget_loss.mean(), detail  # measured >= 6.6 (prune)
        if expect.removes_class:
            assert a.forget.max() <= 0.5, detail
        if method == "retrain":
            assert a.forget.max() <= 0.05, detail  # it never saw the class


@pytest.mark.parametrize("method,kind", CASES, ids=CASE_IDS)
def test_retain_accuracy_stays_close_to_the_original(runs, method, kind):
    run = runs(method, kind)
    bound = EXPECT[method].retain_drop
    assert (run.after.retain >= run.before.retain - bound).all(), (
        f"retain acc {run.before.retain} -> {run.after.retain} (allowed drop {bound})"
    )


# --- 3. stacked == single, 4. originals untouched ----------------------------------------------


@pytest.mark.numerics
@pytest.mark.parametrize("method,kind", CASES, ids=CASE_IDS)
def test_stacked_run_equals_single_runs(runs, originals, tasks, method, kind):
    stacked = runs(method, kind).result
    tolerance = stacking_tolerance(method)  # float rounding, grown by the run (see ROUNDING)
    for k in range(K):
        alone = unlearn_models(originals.select([k]), tasks[kind].select([k]), method, EXPECT[method].params)
        assert alone.size == 1
        assert max_param_diff(stacked, k, alone, 0) < tolerance, f"model {k}"
    # The K models really differ (different seeds and, for random forgetting, sets).
    assert max_param_diff(stacked, 0, stacked, 1) > 1e-3


def exchange_one_example(task: UnlearnTask, k: int) -> UnlearnTask:
    """Model k's task with one forget id and one retain id swapped: same sizes, same data
    order, one example on the wrong side (the smallest wrong input a stack could give)."""
    forget, retain = task.forget_ids[k].copy(), task.retain_ids[k].copy()
    i, j = len(forget) // 2, len(retain) // 2
    forget[i], retain[j] = retain[j], forget[i]
    return UnlearnTask(task.dataset, [np.sort(forget)], [np.sort(retain)], task.recipe, [task.seeds[k]],
                       forget_class=task.forget_class)  # fmt: skip


@pytest.mark.parametrize("method,kind", CASES, ids=CASE_IDS)
def test_one_exchanged_example_is_far_outside_the_stacking_tolerance(runs, originals, tasks, method, kind):
    """The stacking tolerance keeps its power: model 0 run alone with one example on the
    wrong side differs from the stacked model 0 by 10x the tolerance or more (measured:
    2.9e-4 prune, 7.7e-4 scrub, 8e-4 neggrad+ for random forgetting; 0.2 and 0.25 retrain)."""
    stacked = runs(method, kind).result
    wrong = unlearn_models(originals.select([0]), exchange_one_example(tasks[kind], 0), method, EXPECT[method].params)
    assert max_param_diff(stacked, 0, wrong, 0) > 10 * stacking_tolerance(method)


@pytest.mark.parametrize("method,kind", CASES, ids=CASE_IDS)
def test_originals_untouched_and_result_well_formed(runs, method, kind):
    run = runs(method, kind)
    assert unchanged(run.inputs, run.before_run), "unlearn_models modified the originals passed in"
    res, inp = run.result, run.inputs
    assert res.size == K
    assert res.arch == inp.arch and res.num_classes == inp.num_classes
    assert {n: t.shape for n, t in res.params.items()} == {n: t.shape for n, t in inp.params.items()}
    for n, t in res.params.items():
        assert t.data_ptr() != inp.params[n].data_ptr(), f"{n} shares memory with the originals"
        assert torch.isfinite(t).all(), n
        assert not t.requires_grad, f"{n} still requires grad"
    # Unlearning changed every model (no method may return its input).
    assert all(max_param_diff(res, k, inp, k) > 1e-4 for k in range(K))


@pytest.mark.numerics
@pytest.mark.parametrize("method", [m for m in METHODS if "random" in METHODS[m].supports])
def test_unequal_forget_sets_are_grouped_and_returned_in_order(originals, tasks, method):
    task = tasks["random"]
    # Model 1's forget set is smaller: it runs in its own chunk, and must still land at 1.
    forgets = [task.forget_ids[0], task.forget_ids[1][:60], task.forget_ids[2]]
    mixed = UnlearnTask(
        task.dataset, forgets, [np.setdiff1d(task.dataset.train_ids, f) for f in forgets], RECIPE, task.seeds
    )
    params = EXPECT[method].params
    together = unlearn_models(originals, mixed, method, params, chunk_size=1)
    for k in (1, 2):
        alone = unlearn_models(originals.select([k]), mixed.select([k]), method, params)
        # chunk_size=1 runs every model alone (measured 0): the stacking bound is ample.
        assert max_param_diff(together, k, alone, 0) < stacking_tolerance(method), f"model {k}"


# --- method-specific invariants the contract relies on ----------------------------------------


def test_prune_keeps_the_pruned_weights_at_zero(runs):
    result = runs("prune", "random").result
    weights = [t for t in result.params.values() if t.dim() >= 3]
    for k in range(K):
        flat = torch.cat([t[k].reshape(-1) for t in weights])
        assert (flat == 0).double().mean().item() >= EXPECT["prune"].params["sparsity"] - 1e-3


def test_salun_changes_only_the_salient_fraction(runs):
    run = runs("salun", "random")
    q = parse_params(METHODS["salun"], EXPECT["salun"].params).q
    for k in range(K):
        moved = torch.cat([(run.result.params[n][k] != run.before_run[n][k]).reshape(-1) for n in run.result.params])
        assert 0 < moved.double().mean().item() <= q + 0.01


# --- 5. metadata of `audit unlearn` -----------------------------------------------------------


@pytest.fixture(scope="module")
def parent(tmp_path_factory):
    """A small original checkpoint on the same data, and its forget list."""
    folder = tmp_path_factory.mktemp("parent")
    result = train_checkpoint(
        TrainRequest(
            out=folder / "original.safetensors", data=DATA, data_options=DATA_OPTIONS, recipe=RECIPE, device="cpu"
        )
    )
    data = load_dataset(DATA, DATA_OPTIONS)
    forget = np.sort(np.random.default_rng(5).choice(data.train_ids, N_FORGET, replace=False))
    write_id_file(folder / "forget.txt", forget, header="conformance forget set")
    return result.path, folder / "forget.txt", forget


@pytest.mark.parametrize("method,kind", CASES, ids=CASE_IDS)
def test_unlearn_checkpoint_metadata_is_complete(parent, data, tmp_path, method, kind):
    src, forget_file, forget_ids = parent
    model = tmp_path / "parent.safetensors"
    shutil.copyfile(src, model)
    parent_bytes = model.read_bytes()
    entry = METHODS[method]
    raw = {k: str(v) for k, v in EXPECT[method].params.items()}  # as --param gives them
    request = UnlearnRequest(
        model=model,
        out=tmp_path / "unlearned.safetensors",
        method=method,
        params=raw,
        forget=forget_file if kind == "random" else None,
        forget_class=FORGET_CLASS if kind == "class" else None,
        seed=7,
        device="cpu",
    )
    result = unlearn_checkpoint(request)
    assert model.read_bytes() == parent_bytes, "the parent checkpoint was modified"

    forget = forget_ids if kind == "random" else data.ids_of_class(FORGET_CLASS, split="train")
    saved = load_checkpoint(request.out)
    assert saved.sha256 == result.sha256
    meta, parent_meta = saved.meta, load_checkpoint(model).meta
    assert meta.kind == "unlearned"
    assert meta.recipe == parent_meta.recipe == RECIPE
    assert (meta.arch, dict(meta.arch_args)) == (parent_meta.arch, dict(parent_meta.arch_args))
    assert meta.dataset == parent_meta.dataset and meta.dataset_fingerprint == data.fingerprint
    u = meta.unlearning
    assert u.method == method
    names = {f.name for f in fields(entry.params)}
    extra = {"seed"} | ({"augmentation"} if entry.augmentable else set())
    assert set(u.params) == names | extra
    expected = params_dict(parse_params(entry, raw)) | {"seed": 7}
    if entry.augmentable:
        expected["augmentation"] = "none"
    assert dict(u.params) == expected
    assert dict(u.params) == {**result.params, "seed": 7}
    assert u.forget_fingerprint == fingerprint_ids(forget)
    assert u.n_forget == len(forget) == result.n_forget
    assert u.parent_sha256 == hashlib.sha256(parent_bytes).hexdigest()
    assert u.forget_class == (FORGET_CLASS if kind == "class" else None)

    # The saved weights reproduce the reported after-accuracies.
    ens = Ensemble.from_modules(
        [build_model_from_checkpoint(saved)], meta.arch, meta.arch_args, data.input_shape, data.num_classes
    )
    retain = np.setdiff1d(data.train_ids, forget)
    again = split_accuracy(ens, data, forget, retain, u.forget_class)
    assert again == result.after
    assert meta.metrics["forget_accuracy"] == pytest.approx(again.forget, abs=1e-12)
    assert meta.metrics["retain_accuracy"] == pytest.approx(again.retain, abs=1e-12)
    assert meta.metrics["test_accuracy"] == pytest.approx(again.test, abs=1e-12)
    # ... and they are not the parent's weights.
    assert any(not torch.equal(saved.state_dict[n], t) for n, t in load_checkpoint(model).state_dict.items())


# --- 6. usage errors --------------------------------------------------------------------------


@pytest.mark.parametrize("method,kind", UNSUPPORTED, ids=[f"{m}-{k}" for m, k in UNSUPPORTED])
def test_unsupported_kind_is_a_usage_error(originals, tasks, method, kind):
    with pytest.raises(UsageError, match=f"does not support {kind} forgetting"):
        unlearn_models(originals, tasks[kind], method, EXPECT[method].params)


def test_trw_on_a_random_set_is_a_usage_error(originals, tasks):
    with pytest.raises(UsageError, match="does not support random") as info:
        unlearn_models(originals, tasks["random"], "trw")
    assert "--forget-class" in (info.value.hint or "")


@pytest.mark.parametrize("method", list(METHODS))
def test_unknown_parameter_is_a_usage_error_naming_it(originals, tasks, method):
    kind = sorted(METHODS[method].supports)[0]
    with pytest.raises(UsageError, match="no parameter 'warp_factor'") as info:
        unlearn_models(originals, tasks[kind], method, {"warp_factor": "9"})
    first = fields(METHODS[method].params)[0].name
    assert first in (info.value.hint or ""), "the hint lists the valid parameters"


@pytest.mark.parametrize("method", list(METHODS))
def test_bad_parameter_value_type_is_a_usage_error(originals, tasks, method):
    kind = sorted(METHODS[method].supports)[0]
    defaults = METHODS[method].params()
    numeric = [f.name for f in fields(defaults) if type(getattr(defaults, f.name)) in (int, float)]
    assert numeric
    with pytest.raises(UsageError, match=f"parameter {numeric[0]}='many'"):
        unlearn_models(originals, tasks[kind], method, {numeric[0]: "many"})


@pytest.mark.parametrize("params", [{"epochs": 2.5}, {"batch_size": 2.5}, {"lr": "fast"}, {"q": True}])
def test_non_string_parameter_of_the_wrong_type_is_a_usage_error(originals, tasks, params):
    with pytest.raises(UsageError):
        unlearn_models(originals, tasks["random"], "finetune", params)


@pytest.mark.parametrize("params", [{"lr": "-1"}, {"lr": "nan"}, {"epochs": "0"}, {"optimizer": "lbfgs"}])
def test_bad_parameter_value_is_a_usage_error(originals, tasks, params):
    with pytest.raises(UsageError, match="method 'finetune'"):
        unlearn_models(originals, tasks["random"], "finetune", params)


def test_unknown_method_is_a_usage_error(originals, tasks):
    with pytest.raises(UsageError, match="unknown unlearning method 'forgetful'"):
        unlearn_models(originals, tasks["random"], "forgetful")


def test_model_and_task_counts_must_match(originals, tasks):
    with pytest.raises(UsageError, match="2 models but 3"):
        unlearn_models(originals.select([0, 1]), tasks["random"], "finetune", {"epochs": 1})


def test_empty_forget_set_is_a_usage_error(data, seeds):
    with pytest.raises(UsageError, match="empty"):
        UnlearnTask(data, [np.array([], dtype=np.int64)], [data.train_ids], RECIPE, seeds[:1])


@pytest.mark.parametrize("policy", ["crop+flip", "trivialaugment"])
def test_augmentation_on_tabular_data_is_a_usage_error(tasks, policy):
    task = tasks["random"]
    with pytest.raises(UsageError, match="needs image data"):
        UnlearnTask(task.dataset, task.forget_ids, task.retain_ids, RECIPE, task.seeds, augmentation=policy)


def test_unknown_augmentation_is_a_usage_error(tiny):
    with pytest.raises(UsageError, match="unknown augmentation"):
        tiny_task(tiny, augmentation="mixup")


# --- 7. augmentation (tiny image dataset) ----------------------------------------------------

TINY_RECIPE = Recipe(arch="cnn", arch_args={"channels": 4, "hidden": 8}, epochs=3, batch_size=8)


@dataclass
class Tiny:
    data: object
    originals: Ensemble
    seeds: list[int] = field(default_factory=lambda: [5, 6])


@pytest.fixture(scope="module")
def tiny():
    rng = np.random.default_rng(0)
    n = 60
    y = np.arange(n) % 3
    x = (rng.normal(size=(n, 1, 8, 8)) * 0.5 + y[:, None, None, None]).astype(np.float32)
    data = make_dataset(
        DatasetSpec("tiny"), x, y, np.arange(n) < 48, ["a", "b", "c"], "image", pixel_stats=((0.5,), (0.25,))
    )
    return Tiny(data, train_models(data, TINY_RECIPE, [data.train_ids] * 2, [1, 2]))


def tiny_task(tiny: Tiny, augmentation: str, models=(0, 1)) -> UnlearnTask:
    ids = tiny.data.train_ids
    forgets = [ids[:8], ids[10:18]]
    task = UnlearnTask(
        tiny.data,
        forgets,
        [np.setdiff1d(ids, f) for f in forgets],
        TINY_RECIPE,
        tiny.seeds,
        augmentation=augmentation,
    )
    return task.select(list(models))


@pytest.mark.parametrize("method", NOT_AUGMENTABLE)
def test_non_augmentable_method_refuses_augmentation(tiny, method):
    task = tiny_task(tiny, "crop+flip")
    if "random" not in METHODS[method].supports:
        ids = tiny.data.train_ids
        cls = ids[tiny.data.y[tiny.data.rows(ids)] == 0]
        task = UnlearnTask(
            tiny.data,
            [cls] * 2,
            [np.setdiff1d(ids, cls)] * 2,
            TINY_RECIPE,
            tiny.seeds,
            forget_class=0,
            augmentation="crop+flip",
        )
    with pytest.raises(UsageError, match="takes no augmentation"):
        unlearn_models(tiny.originals, task, method, {"epochs": "1"} if method != "retrain" else {})


def test_the_augmentable_methods_are_the_documented_ones():
    assert set(AUGMENTABLE) == {"finetune", "random-label", "salun"}


@pytest.mark.parametrize("policy", ["crop+flip", "trivialaugment"])
@pytest.mark.parametrize("method", AUGMENTABLE)
def test_augmentation_runs_and_changes_the_result(tiny, method, policy):
    params = {"epochs": 1}
    plain = unlearn_models(tiny.originals, tiny_task(tiny, "none"), method, params)
    augmented = unlearn_models(tiny.originals, tiny_task(tiny, policy), method, params)
    assert all(torch.isfinite(t).all() for t in augmented.params.values())
    for k in range(2):
        assert max_param_diff(augmented, k, tiny.originals, k) > 1e-4
        # Same seeds, same data order: only the augmentation differs, and it was applied.
        assert max_param_diff(augmented, k, plain, k) > 1e-4


@pytest.mark.numerics
@pytest.mark.parametrize("policy", ["crop+flip", "trivialaugment"])
def test_augmented_stacked_run_equals_single_runs(tiny, policy):
    params = {"epochs": 2}
    stacked = unlearn_models(tiny.originals, tiny_task(tiny, policy), "random-label", params)
    for k in range(2):
        alone = unlearn_models(tiny.originals.select([k]), tiny_task(tiny, policy, [k]), "random-label", params)
        # A grouped convolution (oneDNN) against a plain one, 12 SGD steps: measured <= 3e-8
        # under every CPU code path; the augmentation alone moves weights by >= 1.4e-3.
        assert max_param_diff(stacked, k, alone, 0) < ROUNDING, f"model {k}"


# --- 8. divergence ----------------------------------------------------------------------------


def test_neggrad_with_an_absurd_learning_rate_raises_diverged(originals, tasks):
    inputs = originals.select(range(K))
    snap = snapshot(inputs)
    # Measured: lr 1e6 gives finite (1e11-sized) weights after one epoch, NaN after five.
    with pytest.raises(DivergedError, match=r"neggrad diverged: model\(s\) \[0, 1, 2\]") as info:
        unlearn_models(inputs, tasks["random"], "neggrad", {"lr": 1e6, "epochs": 5})
    assert "lr" in (info.value.hint or "")
    assert isinstance(info.value, UsageError)  # exit code 2 at the CLI
    assert unchanged(inputs, snap)


def test_a_large_but_survivable_learning_rate_gives_finite_weights(originals, tasks):
    result = unlearn_models(originals, tasks["random"], "neggrad", {"lr": 1e6, "epochs": 1})
    biggest = max(t.abs().max().item() for t in result.params.values())
    assert math.isfinite(biggest) and biggest > 1e3  # it really went wild, and survived
