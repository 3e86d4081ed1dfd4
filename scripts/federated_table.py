"""Federated unlearning, each client forgotten in turn (docs/results.md, "Federated
unlearning"): PUF regular, PUF special, natural and retraining, with what the PUF paper
reports and what the audit says.

    python scripts/federated_table.py run --out federated.jsonl     # both datasets (see docs for the time)
    python scripts/federated_table.py markdown federated.jsonl

Per dataset (digits, mnist1d): one federation of 10 clients, Dirichlet alpha 0.3 over the
labels, 30 FedAvg rounds of one local SGD epoch (``audit fl train``'s defaults). For each
client c: the federation retrained without c (``--exclude-client c``, the gold standard),
then every method through ``audit unlearn --forget-client c --retrained``: PUF's recovery
stops at the retrained federation's test accuracy (at most 30 rounds; the number of
rounds is the efficiency metric), natural is that recovery alone, and retrain is the
retrained federation itself. Reported: UA (1 - accuracy on the client's data), test
accuracy, the SVC and loss-threshold attacks' member rates on the client's data, the
recovery rounds, and ``audit run --forget-client c --original --retrained`` with 16
shadow federations: its leakage score with interval and its verdict at 0.1. The shadows
of one client are trained once and unlearned five ways (``reuse_fitted_shadows``).
Rows are appended as they finish; a rerun skips (dataset, client, method) rows present.
Runs alone: never beside the tests or a benchmark.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from audit_cli.auditing.pipeline import run_audit
from audit_cli.auditing.request import AuditConfig
from audit_cli.models.checkpoint import load_checkpoint
from audit_cli.models.recipe import Federation, Recipe
from audit_cli.repair.fl_train import FederatedTrainRequest, fl_train_checkpoint
from audit_cli.repair.train_checkpoint import TrainRequest
from audit_cli.repair.unlearn_checkpoint import unlearn_checkpoint
from audit_cli.repair.unlearn_request import UnlearnRequest
from audit_cli.shadows.reuse import reuse_fitted_shadows

DATASETS = {"digits": (256,), "mnist1d": (256, 256)}
CLIENTS, ALPHA, ROUNDS, SEED = 10, 0.3, 30, 0
# name: (method, parameters, whether recovery stops at the retrained federation's test accuracy)
METHODS = {"puf regular": ("puf", {"variant": "regular", "recovery_rounds": 30}, True),
           "puf special": ("puf", {"variant": "special", "recovery_rounds": 30}, True),
           "natural": ("puf", {"variant": "natural", "recovery_rounds": 30}, True),
           "natural, 6 rounds": ("puf", {"variant": "natural", "recovery_rounds": 6}, False),
           "retrain": ("retrain", {}, False)}  # fmt: skip
SHADOWS, THRESHOLD = 16, 0.1


def recipe(data: str) -> Recipe:
    return Recipe(arch="mlp", arch_args={"hidden": DATASETS[data]}, optimizer="sgd", lr=0.1, epochs=1, batch_size=16,
                  seed=SEED, federation=Federation(clients=CLIENTS, alpha=ALPHA, rounds=ROUNDS, seed=SEED))  # fmt: skip


def federation(data: str, work: Path, exclude: tuple[int, ...] = ()) -> Path:
    path = work / f"{data}{''.join(f'-x{c}' for c in exclude)}.safetensors"
    if not path.exists():
        fl_train_checkpoint(FederatedTrainRequest(TrainRequest(out=path, data=data, recipe=recipe(data),
                                                               overwrite=True, device="cpu"), exclude))  # fmt: skip
    return path


def row(data: str, client: int, name: str, work: Path) -> dict:
    method, params, to_target = METHODS[name]
    original, retrained = federation(data, work), federation(data, work, (client,))
    model = work / f"{data}-{client}-{name.replace(' ', '-').replace(',', '')}.safetensors"
    start = time.perf_counter()
    result = unlearn_checkpoint(UnlearnRequest(model=original, out=model, method=method, params=params,
                                               forget_clients=(client,), retrained=retrained if to_target else None,
                                               seed=client,
                                               overwrite=True, device="cpu"))  # fmt: skip
    seconds = time.perf_counter() - start
    report = run_audit(AuditConfig(model=model, forget_clients=(client,), original=original, retrained=retrained,
                                   shadows=SHADOWS, bank=work / "banks", seed=client, fail_above=THRESHOLD,
                                   allow_underpowered=True, device="cpu"))  # fmt: skip
    leak = next(c for c in report.checks if c.name == "leakage")
    c = result.clients
    return {"data": data, "client": client, "method": name, "n_client": result.n_forget,
            "ua": 1 - result.after.forget, "ua_original": 1 - result.before.forget, "test": result.after.test,
            "test_original": result.before.test, "mia_svc": c.mia_after.svc, "mia_loss": c.mia_after.loss,
            "mia_svc_original": c.mia_before.svc, "mia_loss_original": c.mia_before.loss,
            "recovery_rounds": c.recovery_rounds, "target": c.target_accuracy, "seconds": seconds,
            "leakage": leak.score, "low": leak.low, "high": leak.high, "verdict": leak.verdict,
            "exit_code": int(report.exit_code),
            "retrained_test": load_checkpoint(retrained).meta.metrics["test_accuracy"]}  # fmt: skip


def run(out: Path, work: Path, datasets: list[str]) -> None:
    done = set()
    if out.exists():
        done = {(r["data"], r["client"], r["method"]) for r in map(json.loads, out.read_text().splitlines())}
    for data in datasets:
        for client in range(CLIENTS):
            # The client's shadow federations are trained once and unlearned every way.
            with reuse_fitted_shadows():
                for name in METHODS:
                    if (data, client, name) in done:
                        continue
                    r = row(data, client, name, work)
                    with out.open("a") as f:
                        f.write(json.dumps(r) + "\n")
                    print(f"{data} client {client} {name}: UA {r['ua']:.3f} test {r['test']:.3f} rounds "
                          f"{r['recovery_rounds']} leakage {r['leakage']:.3f} [{r['low']:.3f}, {r['high']:.3f}]",
                          flush=True)  # fmt: skip


def mean_sd(values, digits: int = 3) -> str:
    v = np.array([x for x in values if x is not None], dtype=float)
    return "-" if len(v) == 0 else f"{v.mean():.{digits}f} ± {v.std(ddof=1) if len(v) > 1 else 0:.{digits}f}"


def markdown(rows: list[dict]) -> str:
    out = []
    for data in DATASETS:
        got = [r for r in rows if r["data"] == data]
        if not got:
            continue
        first = got[0]
        out += [f"**{data}** (original federation: test accuracy {first['test_original']:.3f}; mean ± sd over "
                f"{len({r['client'] for r in got})} clients, each forgotten in turn)", "",
                "| method | UA | test accuracy | SVC members | loss members | recovery rounds | leakage | "
                "leakage fail / pass / inconclusive at 0.1 |", "|---|---|---|---|---|---|---|---|"]  # fmt: skip
        base = [r for r in got if r["method"] == "retrain"]
        out.append(f"| original (before) | {mean_sd(r['ua_original'] for r in base)} | "
                   f"{mean_sd(r['test_original'] for r in base)} | {mean_sd(r['mia_svc_original'] for r in base)} | "
                   f"{mean_sd(r['mia_loss_original'] for r in base)} | - | - | - |")  # fmt: skip
        for name in METHODS:
            rs = [r for r in got if r["method"] == name]
            if not rs:
                continue
            verdicts = [r["verdict"] for r in rs]
            tally = " / ".join(str(verdicts.count(v)) for v in ("fail", "pass", "inconclusive"))
            rounds = [r["recovery_rounds"] for r in rs]
            out.append(f"| {name} | {mean_sd(r['ua'] for r in rs)} | {mean_sd(r['test'] for r in rs)} | "
                       f"{mean_sd(r['mia_svc'] for r in rs)} | {mean_sd(r['mia_loss'] for r in rs)} | "
                       f"{mean_sd(rounds, 1) if name != 'retrain' else '-'} | {mean_sd(r['leakage'] for r in rs)} | "
                       f"{tally} |")  # fmt: skip
        out.append("")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("run")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--work", type=Path, default=None, help="keep models and banks here (default: temporary)")
    p.add_argument("--data", action="append", choices=list(DATASETS), help="repeatable; default both")
    p.add_argument("--threads", type=int, default=1)
    m = sub.add_parser("markdown")
    m.add_argument("rows", type=Path)
    args = parser.parse_args()
    if args.cmd == "markdown":
        print(markdown([json.loads(line) for line in args.rows.read_text().splitlines() if line.strip()]))
        return
    torch.set_num_threads(args.threads)
    work = args.work or Path(tempfile.mkdtemp(prefix="federated-"))
    work.mkdir(parents=True, exist_ok=True)
    run(args.out, work, args.data or list(DATASETS))


if __name__ == "__main__":
    main()
