"""puf (negated pseudo-gradients): the unlearning round's formulas, recovery, and what it refuses.

PUF forgets whole clients of a federation, so it is tested here rather than in the
conformance suite (which forgets random ids of centrally trained models)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from audit_cli.data import load_dataset
from audit_cli.errors import UsageError
from audit_cli.federated.fedavg import (
    UNLEARNING,
    client_seed,
    fedavg_participants,
    run_round,
    simulate,
    train_local,
)
from audit_cli.federated.partition import federation_clients
from audit_cli.models.recipe import Federation, Recipe
from audit_cli.training.loop import accuracy, dataset_tensors, predict_logits
from audit_cli.unlearn import UnlearnTask, parse_params, unlearn_models
from audit_cli.unlearn.puf import ENTRY, PUFParams, puf

FED = Federation(clients=4, alpha=0.5, rounds=6, seed=3)
RECIPE = Recipe(arch="mlp", arch_args={"hidden": (32,)}, optimizer="sgd", lr=0.1, epochs=1, batch_size=16,
                federation=FED)  # fmt: skip
FORGOTTEN = 1


@pytest.fixture(scope="module")
def setting():
    ds = load_dataset("digits")
    clients = dict(enumerate(federation_clients(ds, FED)))
    original = simulate(ds, RECIPE, [clients], [FED.seed])
    forget = clients[FORGOTTEN]
    retain = np.sort(np.concatenate([p for c, p in clients.items() if c != FORGOTTEN]))
    task = UnlearnTask(ds, [forget], [retain], RECIPE, [9], clients=[clients])
    return ds, clients, original, task


def flat(ens) -> torch.Tensor:
    return torch.cat([t[0].reshape(-1) for t in ens.params.values()])


def delta(ds, original, ids, client) -> torch.Tensor:
    """A client's pseudo-gradient in the unlearning round (seeded as the method seeds it)."""
    local = original.select([0])
    train_local(local, *dataset_tensors(ds, "cpu"), [ds.rows(ids)], RECIPE, [client_seed(9, 0, client, UNLEARNING)])
    return flat(local) - flat(original)


@pytest.mark.numerics
def test_regular_round_negates_and_amplifies_the_forgotten_client(setting):
    ds, clients, original, task = setting
    out = puf(original, task, PUFParams(variant="regular", recovery_rounds=0))
    n = {c: len(p) for c, p in clients.items()}
    total = sum(n.values())
    expected = flat(original) + sum((-20.0 if c == FORGOTTEN else 1.0) * n[c] / total * delta(ds, original, p, c)
                                    for c, p in clients.items())  # fmt: skip
    # Clients trained in one stack against each alone: float rounding, times eta's 20 (CI's
    # CPU rounded a stack apart from one model by 3e-6 after such a round). A wrong sign or
    # weight is off by far more than 1e-4.
    assert torch.allclose(flat(out.models), expected, atol=1e-4)
    assert not torch.allclose(flat(out.models), flat(original), atol=1e-2)
    assert out.recovery_rounds == [0]


@pytest.mark.numerics
def test_special_round_moves_against_the_forgotten_client_alone(setting):
    ds, clients, original, task = setting
    out = puf(original, task, PUFParams(variant="special", eta=3.0, recovery_rounds=0))
    expected = flat(original) - 3.0 * delta(ds, original, clients[FORGOTTEN], FORGOTTEN)
    assert torch.allclose(flat(out.models), expected, atol=1e-5)


def test_unlearning_lowers_accuracy_on_the_client_and_recovery_restores_the_test_accuracy(setting):
    ds, clients, original, task = setting
    rows_f, rows_t = ds.rows(clients[FORGOTTEN]), ds.rows(ds.test_ids)

    def acc(ens, rows):
        return float(accuracy(predict_logits(ens, ds.x[rows]), ds.y[rows])[0])

    hit = puf(original, task, PUFParams(recovery_rounds=0)).models
    assert acc(hit, rows_f) < acc(original, rows_f) - 0.2  # measured 0.95 -> 0.52
    target = acc(original, rows_t) - 0.02
    out = puf(original, task, PUFParams(recovery_rounds=30, target_accuracy=target))
    assert 1 <= out.recovery_rounds[0] < 30 and acc(out.models, rows_t) >= target
    assert out.test_accuracy[0][-1] == pytest.approx(acc(out.models, rows_t))
    assert len(out.test_accuracy[0]) == out.recovery_rounds[0] + 1


@pytest.mark.numerics
def test_natural_is_fedavg_without_the_client(setting):
    ds, clients, original, task = setting
    # With a target the original already meets, natural unlearning runs no round at all.
    untouched = puf(original, task, PUFParams(variant="natural", recovery_rounds=5, target_accuracy=0.01))
    assert untouched.recovery_rounds == [0] and torch.equal(flat(untouched.models), flat(original))
    out = puf(original, task, PUFParams(variant="natural", recovery_rounds=2))
    kept = {c: p for c, p in clients.items() if c != FORGOTTEN}
    # FedAvg rounds 1..2 of the kept clients, seeded from the request's seed, from the original.
    ens = original
    for r in (1, 2):
        ens = run_round(ens, ds, RECIPE, fedavg_participants(0, kept, 9, r, UNLEARNING))
    assert torch.allclose(flat(out.models), flat(ens), atol=1e-6)


def test_a_forget_set_that_is_not_whole_clients_is_refused(setting):
    ds, clients, original, task = setting
    half = clients[FORGOTTEN][: len(clients[FORGOTTEN]) // 2]
    partial = UnlearnTask(ds, [half], task.retain_ids, RECIPE, [9], clients=[clients])
    with pytest.raises(UsageError, match="whole clients"):
        unlearn_models(original, partial, "puf")
    central = UnlearnTask(ds, task.forget_ids, task.retain_ids, RECIPE, [9])
    with pytest.raises(UsageError, match="federated model"):
        unlearn_models(original, central, "puf")
    everyone = np.sort(np.concatenate(list(clients.values())))
    with pytest.raises(UsageError, match="leaves no federation"):
        puf(original, UnlearnTask(ds, [everyone], task.retain_ids, RECIPE, [9], clients=[clients]), PUFParams())


def test_parameters_are_checked():
    for bad, match in (({"variant": "eager"}, "variant"), ({"eta": "-1"}, "eta"),
                       ({"recovery_rounds": "-1"}, "recovery_rounds"), ({"target_accuracy": "2"}, "target_accuracy")):  # fmt: skip
        with pytest.raises(UsageError, match=match):
            parse_params(ENTRY, bad)
    assert PUFParams().amplification == 20.0 and PUFParams(variant="special").amplification == 2.0
    assert PUFParams(eta=5.0).amplification == 5.0
