"""The hand-batched MLP path computes what a plain nn.Module computes."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, vmap

from audit_cli.data import load_dataset
from audit_cli.models.recipe import Recipe
from audit_cli.training.batched_mlp import mlp_forward, mlp_plan
from audit_cli.training.loop import _order_seed, init_ensemble, train_models


def test_plan_accepts_mlps_and_refuses_everything_else():
    assert mlp_plan(nn.Sequential(nn.Flatten(), nn.Linear(4, 3))) == [("flatten", "0"), ("linear", "1")]
    assert mlp_plan(nn.Sequential(nn.Linear(4, 3), nn.Tanh())) is None
    assert mlp_plan(nn.Sequential(nn.Conv1d(1, 2, 3))) is None
    assert mlp_plan(nn.Linear(4, 3)) is None
    assert mlp_plan(nn.Sequential(nn.ReLU())) is None


@pytest.mark.numerics
@pytest.mark.parametrize("hidden,batch", [((256,), 64), ((8, 300), 16), ((), 5)])
def test_forward_and_gradients_match_vmap(hidden, batch):
    ens = init_ensemble("mlp", {"hidden": hidden}, (64,), 10, [1, 2, 3])
    for p in ens.params.values():
        p.requires_grad_(True)
    x = torch.randn(3, batch, 64)
    y = torch.randint(0, 10, (3, batch))
    fast = mlp_forward(mlp_plan(ens.base))(ens.params, ens.buffers, x)
    ref = vmap(lambda p, b, xb: functional_call(ens.base, (p, b), (xb,)))(ens.params, ens.buffers, x)
    assert torch.allclose(fast, ref, atol=1e-5)
    names = list(ens.params)
    g_fast = torch.autograd.grad(F.cross_entropy(fast.reshape(-1, 10), y.reshape(-1)), list(ens.params.values()))
    g_ref = torch.autograd.grad(F.cross_entropy(ref.reshape(-1, 10), y.reshape(-1)), list(ens.params.values()))
    for name, a, b in zip(names, g_fast, g_ref):
        assert torch.allclose(a, b, atol=1e-7), name


@pytest.mark.numerics
def test_training_matches_a_plain_module_loop():
    """Two epochs through train_models equal a hand-written loop with the same init and order."""
    digits = load_dataset("digits")
    recipe = Recipe(epochs=2, batch_size=50)
    ids = digits.train_ids[:300]
    seed = 11
    trained = train_models(digits, recipe, [ids], [seed])

    model = init_ensemble("mlp", {"hidden": (256,)}, (64,), 10, [seed])
    module = nn.Sequential(nn.Flatten(), nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 10))
    module.load_state_dict({n: t[0] for n, t in model.params.items()})
    opt = torch.optim.Adam(module.parameters(), lr=recipe.lr)
    gen = torch.Generator().manual_seed(_order_seed(seed))
    rows = torch.from_numpy(digits.rows(ids))
    x, y = torch.from_numpy(digits.x), torch.from_numpy(digits.y)
    for _ in range(recipe.epochs):
        order = rows[torch.randperm(len(rows), generator=gen)]
        for start in range(0, len(order), recipe.batch_size):
            idx = order[start : start + recipe.batch_size]
            loss = F.cross_entropy(module(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    for name, value in module.state_dict().items():
        np.testing.assert_allclose(trained.params[name][0].numpy(), value.numpy(), atol=1e-5, err_msg=name)
