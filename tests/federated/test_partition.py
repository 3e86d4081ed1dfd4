"""Clients' partitions: exact cover, reproducible, non-iid as alpha says, shadow layout."""

from __future__ import annotations

import numpy as np
import pytest

from audit_cli.data import load_dataset
from audit_cli.errors import UsageError
from audit_cli.federated.partition import (
    client_ids,
    client_table,
    federation_clients,
    partition,
    request_federation,
    shadow_clients,
)
from audit_cli.models.recipe import Federation, Recipe


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def label_share(ds, parts) -> float:
    """Mean, over clients, of the share of its examples in its most common class."""
    return float(np.mean([np.bincount(ds.y[ds.rows(p)]).max() / len(p) for p in parts]))


def test_dirichlet_partition_covers_the_training_split_once_and_is_reproducible(digits):
    fed = Federation(clients=10, alpha=0.3, seed=3)
    parts = federation_clients(digits, fed)
    joined = np.concatenate(parts)
    assert len(parts) == 10 and len(joined) == len(digits.train_ids)
    assert np.array_equal(np.sort(joined), np.sort(digits.train_ids))
    assert all(len(p) >= 10 for p in parts)
    again = federation_clients(digits, fed)
    assert all(np.array_equal(a, b) for a, b in zip(parts, again))
    other = federation_clients(digits, Federation(clients=10, alpha=0.3, seed=4))
    assert not all(np.array_equal(a, b) for a, b in zip(parts, other))


def test_small_alpha_gives_clients_few_labels_and_iid_gives_them_all(digits):
    skewed = label_share(digits, federation_clients(digits, Federation(clients=10, alpha=0.1)))
    mild = label_share(digits, federation_clients(digits, Federation(clients=10, alpha=100.0)))
    iid_parts = federation_clients(digits, Federation(clients=10, partition="iid"))
    # Ten balanced classes: an iid client's most common class holds about 0.1-0.2 of it.
    assert label_share(digits, iid_parts) < 0.2 and mild < 0.2
    assert skewed > 0.4
    assert max(len(p) for p in iid_parts) - min(len(p) for p in iid_parts) <= 1


def test_client_ids_and_table_agree_with_the_partition(digits):
    fed = Federation(clients=5, alpha=0.5, seed=1, excluded=(2,), forgotten=(4,))
    parts = federation_clients(digits, fed)
    assert np.array_equal(client_ids(digits, fed, [3, 1]), np.sort(np.concatenate([parts[1], parts[3]])))
    rows = client_table(digits, fed)
    assert [r["n"] for r in rows] == [len(p) for p in parts]
    assert [r["status"] for r in rows] == ["member", "member", "excluded", "member", "forgotten"]
    assert sum(rows[0]["per_class"]) == len(parts[0])
    with pytest.raises(UsageError, match="client 7 does not exist"):
        client_ids(digits, fed, [7])


def test_a_shadow_federation_holds_its_forget_set_as_client_zero(digits):
    fed = Federation(clients=6, alpha=0.3)
    trained = digits.train_ids[:600]
    forget = trained[::10]
    parts = shadow_clients(digits, fed, trained, forget, seed=9)
    assert len(parts) == 6 and np.array_equal(parts[0], np.sort(forget))
    assert np.array_equal(np.sort(np.concatenate(parts)), np.sort(trained))
    assert len(shadow_clients(digits, fed, trained, None, seed=9)) == 6
    # The other clients are the rest partitioned by the federation's rule.
    assert all(np.array_equal(a, b) for a, b in zip(parts[1:], partition(digits, np.setdiff1d(trained, forget), fed,
                                                                         9, clients=5), strict=True))  # fmt: skip


def test_a_request_of_two_clients_is_replayed_as_two_clients_of_the_federation_it_was_served_on(digits):
    # 10 clients; client 2 left out of training, client 5 forgotten by an earlier request,
    # then a request to forget clients 7 and 8: it was served on a federation of 8 members.
    fed = Federation(clients=10, alpha=0.3, rounds=4, seed=3, excluded=(2,), forgotten=(5, 7, 8))
    served_on = request_federation(fed, (7, 8))
    assert (served_on.clients, served_on.forgotten, served_on.excluded, served_on.rounds) == (8, (0, 1), (), 4)
    assert request_federation(Federation(clients=10, excluded=(3,)), (3,)).clients == 10  # the retrained stand-in
    assert served_on.key_dict()["forgotten"] == 2 and "forgotten" not in request_federation(fed, (8,)).key_dict()
    trained, forget = digits.train_ids[:800], digits.train_ids[:800:7]
    parts = shadow_clients(digits, served_on, trained, forget, seed=9)
    assert len(parts) == 8 and abs(len(parts[0]) - len(parts[1])) <= 1
    assert np.array_equal(np.sort(np.concatenate(parts[:2])), np.sort(forget))
    assert np.array_equal(np.sort(np.concatenate(parts)), np.sort(trained))


def test_federation_metadata_is_checked_and_round_trips():
    fed = Federation(clients=4, alpha=0.5, rounds=3, seed=2, excluded=(1,), forgotten=(3,))
    recipe = Recipe(epochs=1, federation=fed)
    assert Recipe.from_dict(recipe.to_dict()) == recipe
    # The bank key knows the rule, not this federation's seed or departures.
    assert recipe.key_dict()["federation"] == {"clients": 4, "partition": "dirichlet", "alpha": 0.5, "rounds": 3}
    assert "federation" not in Recipe().to_dict()  # central recipes (and their banks) are unchanged
    for bad, match in (({"clients": 1}, "2..1000"), ({"alpha": 0.0}, "alpha"), ({"rounds": 0}, "rounds"),
                       ({"partition": "zipf"}, "unknown partition"), ({"excluded": (5,)}, "client numbers"),
                       ({"clients": 2, "excluded": (0,), "forgotten": (1,)}, "no client would be left")):  # fmt: skip
        with pytest.raises(UsageError, match=match):
            Federation(**{"clients": 4, **bad})
    with pytest.raises(UsageError, match="unknown field"):
        Federation.from_dict({"clients": 4, "shards": 2})
    with pytest.raises(UsageError, match="constant learning rate"):
        Recipe(schedule="cosine", federation=fed)


def test_too_few_examples_for_the_clients_is_a_usage_error(digits):
    with pytest.raises(UsageError, match="cannot be shared among"):
        partition(digits, digits.train_ids[:3], Federation(clients=5), seed=0)
