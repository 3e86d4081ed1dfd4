"""FedAvg rounds: the vectorized round is the loop of single clients, the aggregate is the
weighted sum of pseudo-gradients, padding carries no gradient, federations do not mix."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from audit_cli.data import load_dataset
from audit_cli.errors import UsageError
from audit_cli.federated.fedavg import Participant, PrefixOptimizer, client_seed, run_round, simulate, train_local
from audit_cli.federated.partition import federation_clients
from audit_cli.models.recipe import Federation, Recipe
from audit_cli.training.loop import accuracy, dataset_tensors, init_ensemble, make_optimizer, predict_logits

FED = Federation(clients=4, alpha=0.5, rounds=2, seed=5)
RECIPE = Recipe(arch="mlp", arch_args={"hidden": (32,)}, optimizer="sgd", lr=0.1, epochs=1, batch_size=16,
                federation=FED)  # fmt: skip


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def flat(ens, k=0) -> torch.Tensor:
    return torch.cat([t[k].reshape(-1) for t in ens.params.values()])


def trained_alone(ds, start, ids, seed):
    """One client's local model, trained by itself (K = 1)."""
    local = start.select([0])
    train_local(local, *dataset_tensors(ds, "cpu"), [ds.rows(ids)], RECIPE, [seed])
    return local


@pytest.mark.numerics
def test_a_round_is_the_weighted_sum_of_pseudo_gradients(digits):
    start = init_ensemble("mlp", {"hidden": (32,)}, digits.input_shape, digits.num_classes, [1])
    a, b = digits.train_ids[:40], digits.train_ids[40:100]  # 3 and 4 steps of 16: two groups
    weights = (0.3, -1.7)  # any coefficients, negative ones (PUF) included
    parts = [Participant(0, 0, a, weights[0], 11), Participant(0, 1, b, weights[1], 12)]
    moved = run_round(start, digits, RECIPE, parts)
    w = flat(start)
    by_hand = w + weights[0] * (flat(trained_alone(digits, start, a, 11)) - w) \
        + weights[1] * (flat(trained_alone(digits, start, b, 12)) - w)
    assert torch.allclose(flat(moved), by_hand, atol=1e-5)  # a stack and one model may round apart
    assert not torch.allclose(flat(moved), w)  # the round moved the model


@pytest.mark.numerics
def test_padding_carries_no_gradient_and_a_finished_client_stands_still(digits):
    """A 20-example client (2 steps, a 4-example last batch padded to 16) trains stacked
    with a 60-example client (4 steps) as it trains alone, over two epochs."""
    start = init_ensemble("mlp", {"hidden": (32,)}, digits.input_shape, digits.num_classes, [2])
    small, large = digits.train_ids[:20], digits.train_ids[100:160]
    for recipe in (RECIPE.replace(epochs=2), RECIPE.replace(epochs=2, optimizer="adam", lr=1e-3, weight_decay=1e-3)):
        together = start.select([0, 0])
        train_local(together, *dataset_tensors(digits, "cpu"), [digits.rows(small), digits.rows(large)], recipe,
                    [7, 8])  # fmt: skip
        for k, (ids, seed) in enumerate(((small, 7), (large, 8))):
            alone = start.select([0])
            train_local(alone, *dataset_tensors(digits, "cpu"), [digits.rows(ids)], recipe, [seed])
            assert torch.allclose(flat(together, k), flat(alone), atol=1e-5), (recipe.optimizer, k)


@pytest.mark.numerics
@pytest.mark.parametrize("optimizer,kw", [("sgd", {"momentum": 0.9, "weight_decay": 1e-3}), ("sgd", {"momentum": 0.0}),
                                          ("adam", {"weight_decay": 1e-3}), ("adamw", {"weight_decay": 1e-2})])  # fmt: skip
def test_the_prefix_optimizer_follows_torch_and_idle_models_keep_weights_and_state(optimizer, kw):
    torch.manual_seed(0)
    recipe = Recipe(optimizer=optimizer, lr=0.05, **kw)
    w0 = torch.randn(2, 5, 3)
    ours = w0.clone()
    opt = PrefixOptimizer(recipe, [ours])
    theirs = w0[0].clone().requires_grad_(True)
    reference = make_optimizer(optimizer, [theirs], lr=0.05, momentum=recipe.momentum,
                               weight_decay=recipe.weight_decay)  # fmt: skip
    grads = [torch.randn(5, 3) for _ in range(6)]
    for i, g in enumerate(grads):
        # Model 1 steps with model 0 for 3 steps, then stands still (it finished its epoch).
        n = 2 if i < 3 else 1
        opt.step([torch.stack([g, -g])[:n]], n)
        theirs.grad = g.clone()
        reference.step()
        assert torch.allclose(ours[0], theirs.detach(), atol=1e-6), i
        if i == 2:
            held = ours[1].clone()
    assert torch.equal(ours[1], held)
    # Model 1's three steps, replayed alone from its start, end where it stood; and its
    # state was kept: a fourth step from there equals a fourth step alone.
    alone = w0[1:2].clone()
    replay = PrefixOptimizer(recipe, [alone])
    for g in grads[:3]:
        replay.step([-g[None]], 1)
    assert torch.allclose(alone[0], held, atol=1e-7)
    opt.step([torch.stack([grads[0], grads[1]])], 2)
    replay.step([grads[1][None]], 1)
    assert torch.allclose(ours[1], alone[0], atol=1e-7)


@pytest.mark.numerics
def test_vectorized_federations_equal_the_loop_and_do_not_mix(digits):
    parts = federation_clients(digits, FED)
    clients = [dict(enumerate(parts)), {c: p for c, p in enumerate(parts) if c != 2}]
    together = simulate(digits, RECIPE, clients, [5, 6])
    loop = simulate(digits, RECIPE, clients, [5, 6], group_size=1)
    for k in range(2):
        assert torch.allclose(flat(together, k), flat(loop, k), atol=1e-5)
    alone = simulate(digits, RECIPE, clients[1:], [6])
    assert torch.allclose(flat(together, 1), flat(alone), atol=1e-5)
    assert not torch.allclose(flat(together, 0), flat(together, 1), atol=1e-3)


def test_fedavg_learns_and_client_seeds_differ(digits):
    parts = federation_clients(digits, FED)
    ens = simulate(digits, RECIPE.replace(federation=Federation(clients=4, alpha=0.5, rounds=8, seed=5)),
                   [dict(enumerate(parts))], [5])  # fmt: skip
    rows = digits.rows(digits.test_ids)
    acc = float(accuracy(predict_logits(ens, digits.x[rows]), digits.y[rows])[0])
    assert acc > 0.85  # measured 0.93 (chance 0.1)
    seeds = {client_seed(5, r, c) for r in range(1, 4) for c in range(4)}
    assert len(seeds) == 12
    assert client_seed(5, 1, 0) != client_seed(5, 1, 0, stream=31)


def test_empty_client_or_missing_seed_is_refused(digits):
    with pytest.raises(UsageError, match="empty client"):
        simulate(digits, RECIPE, [{0: digits.train_ids[:10], 1: np.array([], dtype=np.int64)}], [0])
    with pytest.raises(UsageError, match="seeds"):
        simulate(digits, RECIPE, [{0: digits.train_ids[:10]}], [0, 1])
    with pytest.raises(UsageError, match="trains centrally"):
        simulate(digits, RECIPE.replace(federation=None), [{0: digits.train_ids[:10]}], [0])
