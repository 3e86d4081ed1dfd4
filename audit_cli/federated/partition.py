"""Which training examples each client of a federation holds.

``dirichlet``: for every class, the class's examples are split among the clients in
proportions drawn from Dir(alpha, ..., alpha) (small alpha: each client holds few labels),
redrawn until every client holds enough examples to train on. ``iid``: a random
permutation cut into near-equal shares. Both are functions of (ids, labels, seed) alone,
so ``audit fl train``, ``audit ids --client``, ``audit unlearn`` and the Flower clients
agree on every client's examples without storing them.

Shadow federations (the audit's) replay the federation a request was served on
(``request_federation``): as many members as it had then, the shadow's forget set split
at random among as many clients as the request named (clients 0..m-1, the ones the PUF
replay forgets), and the rest of their training subset partitioned among the other
clients by the same rule.
"""

from __future__ import annotations

import numpy as np

from audit_cli.data import Dataset
from audit_cli.errors import UsageError
from audit_cli.models.recipe import Federation

# Dirichlet draws are repeated until every client holds this many examples (or, for small
# data, one batch's worth of what an even share would be).
MIN_CLIENT_EXAMPLES = 10
MAX_DRAWS = 1_000


def partition(dataset: Dataset, ids: np.ndarray, federation: Federation, seed: int, clients: int | None = None
              ) -> list[np.ndarray]:  # fmt: skip
    """``clients`` (default: the federation's) sorted id arrays that partition ``ids``."""
    n_clients = federation.clients if clients is None else clients
    ids = np.sort(np.asarray(ids, dtype=np.int64))
    if len(ids) < n_clients:
        raise UsageError(f"{len(ids)} examples cannot be shared among {n_clients} clients")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 23]))
    if federation.partition == "iid":
        return [np.sort(part) for part in np.array_split(rng.permutation(ids), n_clients)]
    labels = dataset.y[dataset.rows(ids)]
    least = min(MIN_CLIENT_EXAMPLES, max(1, len(ids) // (2 * n_clients)))
    for _ in range(MAX_DRAWS):
        shares: list[list[np.ndarray]] = [[] for _ in range(n_clients)]
        for c in np.unique(labels):
            members = rng.permutation(ids[labels == c])
            p = rng.dirichlet(np.full(n_clients, federation.alpha))
            cuts = (np.cumsum(p)[:-1] * len(members)).astype(np.int64)
            for k, part in enumerate(np.split(members, cuts)):
                shares[k].append(part)
        parts = [np.sort(np.concatenate(s)) for s in shares]
        if min(len(p) for p in parts) >= least:
            return parts
    raise UsageError(f"no Dirichlet(alpha={federation.alpha}) partition of {len(ids)} examples gives each of "
                     f"{n_clients} clients {least} examples", hint="raise --alpha or use fewer clients")  # fmt: skip


def federation_clients(dataset: Dataset, federation: Federation) -> list[np.ndarray]:
    """The clients of a federation trained on the dataset's training split (``audit fl train``)."""
    return partition(dataset, dataset.train_ids, federation, federation.seed)


def client_ids(dataset: Dataset, federation: Federation, clients: tuple[int, ...] | list[int]) -> np.ndarray:
    """The training ids the given clients hold, sorted (a client-level forget set)."""
    for c in clients:
        if not 0 <= c < federation.clients:
            raise UsageError(f"client {c} does not exist: the federation has clients 0..{federation.clients - 1}")
    parts = federation_clients(dataset, federation)
    # A client named twice is one client: its ids once.
    return np.sort(np.concatenate([parts[c] for c in sorted(set(clients))]))


def whole_clients(dataset: Dataset, federation: Federation, ids: np.ndarray) -> tuple[int, ...]:
    """The clients whose examples ``ids`` are exactly (an id file ``audit ids --client``
    wrote), or () when they are not a union of whole clients."""
    ids = np.unique(np.asarray(ids, dtype=np.int64))
    parts = federation_clients(dataset, federation)
    inside = [c for c, part in enumerate(parts) if len(part) and np.isin(part, ids).all()]
    covered = np.concatenate([parts[c] for c in inside]) if inside else np.array([], dtype=np.int64)
    return tuple(inside) if len(covered) == len(ids) else ()


def request_federation(federation: Federation, clients: tuple[int, ...] | list[int]) -> Federation:
    """The federation a request to forget ``clients`` was served on, numbered as the shadows
    number theirs: its members then (clients left out of training or forgotten by an earlier
    request were not), the request's clients first, recorded as ``forgotten``."""
    request = set(clients)
    before = len(set(federation.gone) - request)
    return Federation(clients=federation.clients - before, partition=federation.partition, alpha=federation.alpha,
                      rounds=federation.rounds, seed=federation.seed, forgotten=tuple(range(len(request))))  # fmt: skip


def shadow_clients(dataset: Dataset, federation: Federation, trained: np.ndarray, forget: np.ndarray | None,
                   seed: int) -> list[np.ndarray]:  # fmt: skip
    """A shadow federation's clients: its forget set split at random among the request's
    clients (``federation.forgotten``, at least one), the rest of its training subset
    partitioned among the other clients; without a forget set, all of it."""
    if forget is None or len(forget) == 0:
        return partition(dataset, trained, federation, seed)
    request = max(1, len(federation.forgotten))
    rng = np.random.default_rng(np.random.SeedSequence([seed, 37]))
    forgotten = [np.sort(part) for part in np.array_split(rng.permutation(np.asarray(forget, dtype=np.int64)), request)]
    rest = np.setdiff1d(trained, forget)
    return [*forgotten, *partition(dataset, rest, federation, seed, clients=federation.clients - request)]


def client_table(dataset: Dataset, federation: Federation) -> list[dict]:
    """One row per client: how many examples it holds, per class, and whether it is in the
    federation, was left out of training, or was forgotten since."""
    rows = []
    for c, ids in enumerate(federation_clients(dataset, federation)):
        labels = dataset.y[dataset.rows(ids)]
        status = "excluded" if c in federation.excluded else "forgotten" if c in federation.forgotten else "member"
        per_class = np.bincount(labels, minlength=dataset.num_classes)
        rows.append({"client": c, "n": len(ids), "status": status, "per_class": [int(v) for v in per_class]})
    return rows
