"""FedAvg rounds: the vectorized round is the loop of single clients, the aggregate is the
weighted sum of pseudo-gradients, padding carries no gradient, federations do not mix."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from audit_cli.data import load_dataset
from audit_cli.errors import UsageError
from audit_cli.federated.fedavg import Participant, client_seed, run_round, simulate, train_local
from audit_cli.federated.partition import federation_clients
from audit_cli.models.recipe import Federation, Recipe
from audit_cli.training import accuracy, dataset_tensors, init_ensemble, predict_logits

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


def test_a_round_is_the_weighted_sum_of_pseudo_gradients(digits):
    start = init_ensemble("mlp", {"hidden": (32,)}, digits.input_shape, digits.num_classes, [1])
    a, b = digits.train_ids[:40], digits.train_ids[40:100]  # 3 and 4 steps of 16: two groups
    weights = (0.3, -1.7)  # any coefficients, negative ones (PUF) included
    parts = [Participant(0, 0, a, weights[0], 11), Participant(0, 1, b, weights[1], 12)]
    moved = run_round(start, digits, RECIPE, parts)
    w = flat(start)
    by_hand = w + weights[0] * (flat(trained_alone(digits, start, a, 11)) - w) \
        + weights[1] * (flat(trained_alone(digits, start, b, 12)) - w)
    assert torch.allclose(flat(moved), by_hand, atol=1e-6)
    assert not torch.allclose(flat(moved), w)  # the round moved the model


def test_padding_carries_no_gradient(digits):
    """A 20-example client (a 4-example last batch, padded to 16) trains in a group with a
    30-example client as it trains alone."""
    start = init_ensemble("mlp", {"hidden": (32,)}, digits.input_shape, digits.num_classes, [2])
    small, large = digits.train_ids[:20], digits.train_ids[100:130]
    together = start.select([0, 0])
    train_local(together, *dataset_tensors(digits, "cpu"), [digits.rows(small), digits.rows(large)], RECIPE, [7, 8])
    assert torch.allclose(flat(together, 0), flat(trained_alone(digits, start, small, 7)), atol=1e-6)
    assert torch.allclose(flat(together, 1), flat(trained_alone(digits, start, large, 8)), atol=1e-6)


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
