"""Benchmark: one federated round with 10 clients as one vectorized ensemble vs a loop.

    python benchmarks/federated_round.py [--rounds 5] [--federations 1 --federations 16]

A federation of 10 clients (Dirichlet alpha 0.3 over the labels, the PUF paper's setting)
on digits and mnist1d; one round = every client trains the global model for one local
SGD epoch (batch 16) and the server aggregates. Variants, in one process one after the
other (ratios are comparable on a noisy shared machine, absolute seconds are not):

- vectorized: ``run_round`` with every client in one ensemble, grouped by steps per epoch
  (what ``audit fl train``, PUF and the audit's shadow federations run);
- loop: the same round with one client at a time (``group_size=1``, the K = 1 path a
  Flower ClientApp runs; the same arithmetic, so after one round the models agree to float
  rounding, ``max_weight_diff_1_round``; over several rounds of SGD at lr 0.1 some
  federations amplify that rounding, ``max_weight_diff``).

With ``--federations 16`` the audit's case is timed too: 16 shadow federations' rounds
(160 local models) in one ensemble against the loop over their 160 clients.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from audit_cli.data import load_dataset
from audit_cli.federated.fedavg import fedavg_participants, run_round
from audit_cli.federated.partition import federation_clients
from audit_cli.models.recipe import Federation, Recipe
from audit_cli.training.loop import dataset_tensors, init_ensemble

HIDDEN = {"digits": (256,), "mnist1d": (256, 256)}


def timed_rounds(ds, recipe, federations: int, rounds: int, group_size: int) -> tuple[float, torch.Tensor]:
    fed = recipe.federation
    clients = [dict(enumerate(federation_clients(ds, Federation(clients=fed.clients, alpha=fed.alpha, seed=k))))
               for k in range(federations)]  # fmt: skip
    ens = init_ensemble(recipe.arch, recipe.arch_args, ds.input_shape, ds.num_classes, list(range(federations)))
    tensors = dataset_tensors(ds, "cpu")
    start = time.perf_counter()
    for r in range(1, rounds + 1):
        parts = [p for k in range(federations) for p in fedavg_participants(k, clients[k], k, r)]
        ens = run_round(ens, ds, recipe, parts, group_size=group_size, tensors=tensors)
    seconds = (time.perf_counter() - start) / rounds
    return seconds, torch.cat([t.reshape(-1) for t in ens.params.values()])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--federations", type=int, action="append", help="repeatable; default 1 and 16")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out = []
    for data in ("digits", "mnist1d"):
        ds = load_dataset(data)
        recipe = Recipe(arch="mlp", arch_args={"hidden": HIDDEN[data]}, optimizer="sgd", lr=0.1, epochs=1,
                        batch_size=16, federation=Federation(clients=10, alpha=0.3, rounds=args.rounds))  # fmt: skip
        for federations in args.federations or [1, 16]:
            _, one_vec = timed_rounds(ds, recipe, federations, 1, 256)  # also the warm-up
            _, one_loop = timed_rounds(ds, recipe, federations, 1, 1)
            vec, w_vec = timed_rounds(ds, recipe, federations, args.rounds, 256)
            loop, w_loop = timed_rounds(ds, recipe, federations, args.rounds, 1)
            row = {"data": data, "federations": federations, "local_models": 10 * federations,
                   "vectorized_s_per_round": round(vec, 4), "loop_s_per_round": round(loop, 4),
                   "speedup": round(loop / vec, 2),
                   "max_weight_diff_1_round": float((one_vec - one_loop).abs().max()),
                   "max_weight_diff": float((w_vec - w_loop).abs().max())}  # fmt: skip
            out.append(row)
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
