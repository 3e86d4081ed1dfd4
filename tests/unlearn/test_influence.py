"""Influence-function unlearning (audit_cli/unlearn/influence_solver.py, audit_cli/unlearn/influence.py).

The mathematics is checked where it has a closed form: on L2-regularised least squares
one Newton step is the retrained model exactly; the primal and the dual form are the same
step written two ways, so they must agree to solver precision on logistic regression and
on an MLP; CG must stop on its residual. Then the method end to end: stacked equals
single, it refuses what it cannot do, and on logistic regression fitted to its optimum
it lands next to the exact retrain.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.func import functional_call, vmap

from audit_cli.data import load_dataset
from audit_cli.errors import UsageError
from audit_cli.models.recipe import Recipe
from audit_cli.training.loop import Ensemble, model_seeds, predict_logits, train_models
from audit_cli.unlearn import UnlearnTask, unlearn_models
from audit_cli.unlearn.influence import InfluenceParams, influence_step
from audit_cli.unlearn.influence_solver import Examples, cg, flatten, kernel_bytes, newton_fit, removal_step, unflatten
from tests.helpers import assert_error, assert_ok, invoke

pytestmark = pytest.mark.usefixtures("one_thread")
F64 = torch.float64


def stack_forward(module: nn.Module):
    module = module.to(F64)
    call = vmap(lambda p, b, x: functional_call(module, (p, b), (x,)))
    return call


def random_params(module: nn.Module, k: int, scale: float, seed: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {n: scale * torch.randn(k, *p.shape, generator=gen, dtype=F64) for n, p in module.named_parameters()}


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


# --- least squares: the step is the retrain ----------------------------------------------------


def ridge(x: torch.Tensor, y: torch.Tensor, n_total: int, lam: float) -> dict[str, torch.Tensor]:
    """argmin (1/N) Σ ½‖Wx + b − y‖² + (λ/2)(‖W‖² + ‖b‖²) over the rows given (N fixed)."""
    a = torch.cat([x, torch.ones(len(x), 1, dtype=F64)], 1)
    w = torch.linalg.solve(a.T @ a / n_total + lam * torch.eye(a.shape[1], dtype=F64), a.T @ y / n_total)
    return {"weight": w[:-1].T[None].contiguous(), "bias": w[-1][None].contiguous()}


@pytest.mark.parametrize("form", ["primal", "dual"])
def test_on_least_squares_the_step_is_the_closed_form_retrain(form):
    gen = torch.Generator().manual_seed(0)
    n, d, c, n_forget, lam = 60, 6, 3, 15, 0.05
    x, y = torch.randn(n, d, generator=gen, dtype=F64), torch.randn(n, c, generator=gen, dtype=F64)
    full, retrained = ridge(x, y, n, lam), ridge(x[n_forget:], y[n_forget:], n, lam)
    forward = stack_forward(nn.Linear(d, c))
    step = removal_step(forward, full, {}, Examples.stacked(x[None, :n_forget], y[None, :n_forget]),
                        Examples.stacked(x[None, n_forget:], y[None, n_forget:]), n_total=n, damping=lam,
                        loss="squared", form=form, tol=1e-12)  # fmt: skip
    assert step.form == form
    moved = flatten(full) + flatten(step.delta)
    assert relative(moved, flatten(retrained)) < 1e-6
    # Not trivially: the forget set moved the model.
    assert relative(flatten(full), flatten(retrained)) > 1e-2


def test_newton_fit_reaches_the_closed_form_minimiser():
    gen = torch.Generator().manual_seed(1)
    x, y = torch.randn(40, 4, generator=gen, dtype=F64), torch.randn(40, 2, generator=gen, dtype=F64)
    forward = stack_forward(nn.Linear(4, 2))
    zero = {"weight": torch.zeros(1, 2, 4, dtype=F64), "bias": torch.zeros(1, 2, dtype=F64)}
    fitted, gradient = newton_fit(forward, zero, {}, Examples.stacked(x[None], y[None]), n_total=40, damping=0.1,
                                  center=zero, loss="squared")  # fmt: skip
    assert relative(flatten(fitted), flatten(ridge(x, y, 40, 0.1))) < 1e-9 and gradient < 1e-9


# --- primal and dual are one step ---------------------------------------------------------------


def classification(k: int, n: int, d: int, c: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(k, n, d, generator=gen, dtype=F64), torch.randint(0, c, (k, n), generator=gen)


@pytest.mark.numerics
@pytest.mark.parametrize(
    "module",
    [nn.Linear(5, 3), nn.Sequential(nn.Linear(5, 16), nn.Tanh(), nn.Linear(16, 3))],
    ids=["logreg", "mlp"],
)
def test_primal_and_dual_give_the_same_step(module):
    x, y = classification(2, 40, 5, 3, seed=2)
    forward, params = stack_forward(module), random_params(module, 2, 0.5, seed=3)
    forget, retain = Examples.stacked(x[:, :10], y[:, :10]), Examples.stacked(x[:, 10:], y[:, 10:])
    steps = {form: removal_step(forward, params, {}, forget, retain, n_total=40, damping=0.01, form=form, tol=1e-12)
             for form in ("primal", "dual")}  # fmt: skip
    primal, dual = flatten(steps["primal"].delta), flatten(steps["dual"].delta)
    assert relative(dual, primal) < 1e-8
    assert float(primal.norm()) > 1e-3
    # Each of the two models got its own step (K systems, not one).
    assert relative(primal[0], primal[1]) > 0.1


@pytest.mark.numerics
def test_the_stacked_step_equals_single_model_steps():
    module = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 3))
    x, y = classification(3, 30, 5, 3, seed=4)
    forward, params = stack_forward(module), random_params(module, 3, 0.5, seed=5)
    stacked = removal_step(forward, params, {}, Examples.stacked(x[:, :6], y[:, :6]), Examples.stacked(x[:, 6:], y[:, 6:]),
                           n_total=30, damping=0.02, form="primal", tol=1e-10)  # fmt: skip
    for k in range(3):
        one = {n: t[k : k + 1] for n, t in params.items()}
        single = removal_step(forward, one, {}, Examples.stacked(x[k : k + 1, :6], y[k : k + 1, :6]),
                              Examples.stacked(x[k : k + 1, 6:], y[k : k + 1, 6:]), n_total=30, damping=0.02,
                              form="primal", tol=1e-10)  # fmt: skip
        assert relative(flatten(stacked.delta)[k], flatten(single.delta)[0]) < 1e-7


# --- CG stops on its residual -------------------------------------------------------------------


def test_cg_stops_on_the_residual_not_the_iteration_count():
    # Three distinct eigenvalues: exact CG converges in three iterations, whatever max_iter.
    eigen = torch.tensor([[1.0, 1.0, 4.0, 4.0, 9.0, 9.0], [2.0, 2.0, 2.0, 2.0, 2.0, 2.0]], dtype=F64)
    b = torch.arange(1.0, 13.0, dtype=F64).reshape(2, 6)
    x, solve = cg(lambda v: eigen * v, b, tol=1e-12, max_iter=1000)
    assert solve.iterations.tolist() == [3, 1]
    assert torch.allclose(x, b / eigen, rtol=1e-12) and float(solve.residual.max()) <= 1e-12
    # Too few iterations leave a residual the caller can see.
    _, short = cg(lambda v: eigen * v, b, tol=1e-12, max_iter=2)
    assert short.iterations.tolist() == [2, 1] and float(short.residual[0]) > 1e-3
    # A zero right-hand side is solved by zero, in no iterations.
    x0, none = cg(lambda v: eigen * v, torch.zeros(2, 6, dtype=F64), tol=1e-9, max_iter=10)
    assert none.iterations.tolist() == [0, 0] and not x0.any()


def test_an_unconverged_solve_is_refused():
    module = nn.Linear(5, 3)
    x, y = classification(1, 40, 5, 3, seed=6)
    with pytest.raises(UsageError, match="did not converge in 2 iterations"):
        removal_step(stack_forward(module), random_params(module, 1, 0.5, 7), {}, Examples.stacked(x[:, :5], y[:, :5]),
                     Examples.stacked(x[:, 5:], y[:, 5:]), n_total=40, damping=1e-4, form="primal", tol=1e-10,
                     max_iter=2)  # fmt: skip


# --- choosing and bounding the dual -------------------------------------------------------------


def test_auto_is_the_primal_and_the_dual_refuses_a_kernel_over_its_budget():
    wide = nn.Sequential(nn.Linear(5, 64), nn.Tanh(), nn.Linear(64, 3))  # 579 parameters > N·C = 60
    x, y = classification(1, 20, 5, 3, seed=8)
    forward, params = stack_forward(wide), random_params(wide, 1, 0.3, 9)
    forget, retain = Examples.stacked(x[:, :4], y[:, :4]), Examples.stacked(x[:, 4:], y[:, 4:])
    common = dict(n_total=20, damping=0.01, tol=1e-10)
    assert removal_step(forward, params, {}, forget, retain, **common).form == "primal"
    size = kernel_bytes(4, 16, 3)
    assert size == 8 * 48 * 60
    assert removal_step(forward, params, {}, forget, retain, form="dual", memory_bytes=size, **common).form == "dual"
    with pytest.raises(UsageError, match=r"needs a .* GiB kernel .*N·C = 60"):
        removal_step(forward, params, {}, forget, retain, form="dual", memory_bytes=size - 1, **common)


def test_the_dual_recomputes_jacobians_that_do_not_fit_and_gets_the_same_step():
    module = nn.Sequential(nn.Linear(5, 32), nn.Tanh(), nn.Linear(32, 3))
    x, y = classification(1, 30, 5, 3, seed=10)
    forward, params = stack_forward(module), random_params(module, 1, 0.3, 11)
    forget, retain = Examples.stacked(x[:, :6], y[:, :6]), Examples.stacked(x[:, 6:], y[:, 6:])
    common = dict(n_total=30, damping=0.01, form="dual", tol=1e-11)
    held = removal_step(forward, params, {}, forget, retain, **common)
    # Room for the kernel and a few examples' Jacobians only: chunks recomputed per block.
    tight = kernel_bytes(6, 24, 3) + 4 * 8 * 3 * 10 * flatten(params).shape[1] // 10
    chunked = removal_step(forward, params, {}, forget, retain, memory_bytes=tight, **common)
    assert relative(flatten(chunked.delta), flatten(held.delta)) < 1e-9


# --- the method ----------------------------------------------------------------------------------


def test_influence_on_fitted_logistic_regression_lands_next_to_the_exact_retrain():
    """Logistic regression fitted to the optimum of its regularised objective; the method's
    one step against Newton's method run to convergence on the retain set."""
    data = load_dataset("synthetic", {"n_samples": "300", "n_features": "8", "n_classes": "3"})
    recipe = Recipe(arch="logreg", weight_decay=0.02, epochs=1)
    train = data.train_ids
    ens = train_models(data, recipe, [train], [0])
    forward = stack_forward(ens.base)
    x = torch.as_tensor(data.x, dtype=F64)
    y = torch.as_tensor(data.y)
    zero = {n: torch.zeros_like(t, dtype=F64) for n, t in ens.params.items()}

    def fit(ids: np.ndarray) -> dict[str, torch.Tensor]:
        rows = torch.as_tensor(data.rows(ids))
        params, gradient = newton_fit(forward, zero, {}, Examples(x, y, rows[None]), n_total=len(train), damping=0.02,
                                      center=zero)  # fmt: skip
        assert gradient < 1e-9
        return params

    forget = train[:22]  # 10% of the training set
    original, retrained = fit(train), fit(train[22:])
    fitted = Ensemble(**{**ens.__dict__, "params": {n: t.float() for n, t in original.items()}})
    task = UnlearnTask(data, [forget], [train[22:]], recipe, [0])
    # damping 0 = the recipe's weight decay: the objective the model was fitted to.
    step = influence_step(fitted, task, InfluenceParams(tol=1e-10))
    moved = flatten(original) + flatten(step.delta)
    error, nothing = relative(moved, flatten(retrained)), relative(flatten(original), flatten(retrained))
    # Measured: error 0.0093 against 0.152 for doing nothing (0.061 of it); the error is
    # second order in the step (0.17 of doing nothing at a 20% forget set).
    assert nothing > 0.1 and error < 0.1 * nothing
    unlearned = unlearn_models(fitted, task, "influence", {"tol": "1e-10"})
    assert relative(flatten({n: t.double() for n, t in unlearned.params.items()}), moved) < 1e-6
    assert unlearned.params["1.weight"].dtype == torch.float32


@pytest.mark.numerics
def test_the_method_stacks_like_every_method():
    data = load_dataset("synthetic", {"n_samples": "240", "n_features": "6", "n_classes": "3"})
    recipe = Recipe(arch="mlp", arch_args={"hidden": (16,)}, epochs=5)
    seeds = model_seeds(3, 2)
    train = data.train_ids
    ens = train_models(data, recipe, [train, train], seeds)
    forgets = [train[:20], train[30:50]]
    task = UnlearnTask(data, forgets, [np.setdiff1d(train, f) for f in forgets], recipe, seeds)
    both = unlearn_models(ens, task, "influence", {"tol": "1e-10"})
    for k in range(2):
        one = unlearn_models(ens.select([k]), task.select([k]), "influence", {"tol": "1e-10"})
        for name in both.params:
            assert torch.allclose(both.params[name][k], one.params[name][0], atol=1e-6)
    # The forget sets' loss rose: the step removed them.
    before, after = predict_logits(ens, data.x), predict_logits(both, data.x)
    for k, f in enumerate(forgets):
        rows, labels = data.rows(f), torch.as_tensor(data.y[data.rows(f)])
        ce = [torch.nn.functional.cross_entropy(lg[k, rows], labels) for lg in (before, after)]
        assert ce[1] > 1.2 * ce[0]


def test_parameters_are_checked():
    for raw, pattern in (({"form": "kernel"}, "form must be one of"), ({"damping": "-1"}, "non-negative"),
                         ({"damping": "nan"}, "non-negative number, got nan"),
                         ({"tol": "0"}, "tol must be a positive"), ({"memory_gb": "nan"}, "memory_gb")):  # fmt: skip
        with pytest.raises(UsageError, match=pattern):
            from audit_cli.unlearn import get_method, parse_params

            parse_params(get_method("influence"), raw)


def test_unflatten_inverts_flatten():
    params = {"a": torch.randn(2, 3, 4), "b": torch.randn(2, 5)}
    back = unflatten(flatten(params), params)
    assert all(torch.equal(back[n], params[n]) for n in params)


# --- the command line ------------------------------------------------------------------------


def test_audit_unlearn_with_influence_in_both_forms(runner, tmp_path):
    model = tmp_path / "small.safetensors"
    assert_ok(invoke(runner, "train", "--data", "synthetic", "--data-opt", "n_samples=200", "--data-opt",
                     "n_features=6", "--arch-arg", "hidden=32", "--epochs", "5", "--out", model, "-q"))  # fmt: skip
    forget = tmp_path / "forget.txt"
    train = load_dataset("synthetic", {"n_samples": "200", "n_features": "6"}).train_ids
    forget.write_text("".join(f"{i}\n" for i in train[::10]))
    outs = {}
    for form in ("primal", "dual"):
        out = tmp_path / f"{form}.safetensors"
        result = invoke(runner, "unlearn", "--model", model, "--forget", forget, "--method", "influence",
                        "--param", f"form={form}", "--param", "tol=1e-9", "-o", out)  # fmt: skip
        assert_ok(result)
        assert f"form={form}" in result.stdout and "with influence" in result.stdout
        outs[form] = out
    from safetensors.torch import load_file

    a, b, before = load_file(outs["primal"]), load_file(outs["dual"]), load_file(model)
    assert all(torch.allclose(a[n], b[n], atol=1e-5) for n in a)
    assert any(not torch.allclose(a[n], before[n], atol=1e-3) for n in a)
    refused = tmp_path / "refused.safetensors"
    result = invoke(runner, "unlearn", "--model", model, "--forget", forget, "--method", "influence",
                    "--param", "form=dual", "--param", "memory_gb=0.0001", "-o", refused)  # fmt: skip
    assert_error(result, r"the dual form needs a .* GiB kernel", hint="form=primal")
    assert not refused.exists()


def test_the_estimate_error_bound_holds_for_logistic_regression(tmp_path):
    """--estimate-retrained on logreg states ‖θ̂ − θ_R‖ ≤ ‖∇L_R(θ̂)‖ / λ; check it against
    the exact minimiser of the retained objective (Newton's method to convergence)."""
    from audit_cli.auditing.audited import load_audited
    from audit_cli.auditing.estimate import estimate_retrained
    from audit_cli.auditing.request import AuditConfig
    from audit_cli.repair.train_checkpoint import TrainRequest, train_checkpoint

    options = {"n_samples": "300", "n_features": "8", "n_classes": "3"}
    recipe = Recipe(arch="logreg", weight_decay=0.01, epochs=20, lr=0.05)
    path = tmp_path / "logreg.safetensors"
    train_checkpoint(TrainRequest(out=path, data="synthetic", data_options=options, recipe=recipe, device="cpu"))
    original, data = load_audited(AuditConfig(model=path))
    forget = data.train_ids[::10]
    retain = np.setdiff1d(data.train_ids, forget)
    estimate = estimate_retrained(original, data, forget, retain, None, "cpu", 0)
    bound = estimate.details["parameter_error_bound"]
    assert estimate.details["method"] == "influence" and estimate.details["damping"] == 0.01
    assert 0 < bound < float("inf") and estimate.view_logits.shape == (1, len(data.ids), 3)

    ens = original.model.ensemble(data, "cpu")
    forward = stack_forward(ens.base)
    x, y = torch.as_tensor(data.x, dtype=F64), torch.as_tensor(data.y)
    zero = {n: torch.zeros_like(t, dtype=F64) for n, t in ens.params.items()}
    rows = torch.as_tensor(data.rows(retain))[None]
    exact, gradient = newton_fit(forward, zero, {}, Examples(x, y, rows), n_total=len(data.train_ids), damping=0.01,
                                 center=zero)  # fmt: skip
    assert gradient < 1e-9
    # θ̂ from the estimate's logits: logreg is linear, so compare outputs through θ.
    estimated = unlearn_models(ens, UnlearnTask(data, [forget], [retain], recipe, [0]), "influence")
    distance = float((flatten({n: t.double() for n, t in estimated.params.items()}) - flatten(exact)).norm())
    assert distance <= bound * (1 + 1e-6)
    # Measured: distance 0.69, bound 8.7, ‖θ_R‖ 1.14. A model trained by 20 epochs of Adam is
    # far from its objective's minimiser, which the removal step assumes it is; the bound
    # says so instead of hiding it (on a fitted model the step is within 6% of the change,
    # test_influence_on_fitted_logistic_regression_lands_next_to_the_exact_retrain).
    assert estimate.details["relative_error_bound"] > 1
