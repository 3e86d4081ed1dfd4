"""Does RMIA help the unlearning verdict? Power to reject exact unlearning, against the
residual share the gate decides on, on real banks.

    python benchmarks/rmia_power.py --data digits --fraction 0.3 --draws 24
    python benchmarks/rmia_power.py --table benchmarks/results/rmia_power.jsonl [--write-docs docs/validity.md]

Each draw is a validity-suite draw (benchmarks/validity.py: the original with its own
seed, a random forget list, the retrain seed): an exact retrain, a partial unlearner
retrained on 60% of the forget set, and the original passed off as retrained, all audited
as exact retrains (``--method retrain``) against one fresh 64-shadow bank. At 8, 16, 32
and 64 of its shadows, each statistic's one-sided test of exact unlearning at 2.5%
(one look each, no sequential spending, so the statistics compare on equal terms):

- ``residual``: the residual memorisation share's lower bound ``share - 1.96 sd`` above 0
  (attacks/residual.py, the gate's fail side);
- ``ulira``: U-LiRA's AUC (forget against test), the lower end of its 95% interval above 0.5;
- ``rmia-online``, ``rmia-offline``: RMIA's AUC the same way (attacks/rmia.py: the test
  examples as population, unlearned shadows as the positive references online).

The exact retrain's rejections are each test's false-fail rate, the other two its power.
Rows are appended as draws finish (a rerun skips draws already there). Runs alone.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

import validity  # noqa: E402 (the validity suite's draws: originals, forget lists, seeds)

from attacks.lira import ulira  # noqa: E402
from attacks.metrics import separation  # noqa: E402
from attacks.residual import residual_share  # noqa: E402
from attacks.rmia import rmia  # noqa: E402
from attacks.signals import IN, OUT, UNLEARNED, augmented_confidence  # noqa: E402
from audit_cli.auditing.inputs import prepare
from audit_cli.auditing.request import AuditConfig  # noqa: E402
from audit_cli.data import load_dataset, write_id_file  # noqa: E402
from audit_cli.repair.train_checkpoint import TrainRequest, train_checkpoint  # noqa: E402

LOOKS = (8, 16, 32, 64)
STATISTICS = ("residual", "ulira", "rmia-online", "rmia-offline")
TARGETS = ("exact", "partial60", "original")
Z = 1.959964  # one-sided 2.5%


def draw_models(data: str, fraction: float, draw: int, work: Path) -> tuple[Path, dict[str, Path]]:
    """The forget list and the three audited models of one draw, as the validity suite makes them."""
    ds = load_dataset(data)
    original = validity.original_model(data, work, draw)
    rng = np.random.default_rng([draw, 17])
    forget = np.sort(rng.choice(ds.train_ids, int(round(fraction * len(ds.train_ids))), replace=False))
    d = work / f"{data}-{draw}"
    d.mkdir(parents=True, exist_ok=True)
    forget_path = d / "forget.txt"
    write_id_file(forget_path, forget)
    kept = np.random.default_rng([draw, 23]).choice(forget, int(round(0.6 * len(forget))), replace=False)
    excluded = d / "excluded.txt"
    write_id_file(excluded, np.setdiff1d(forget, kept))
    models = {"original": original}
    for name, exclude in (("exact", forget_path), ("partial60", excluded)):
        models[name] = d / f"{name}.safetensors"
        if not models[name].exists():
            recipe = validity.RECIPES[data].replace(seed=1000 + draw)
            train_checkpoint(TrainRequest(out=models[name], data=data, recipe=recipe, exclude_ids=exclude,
                                          overwrite=True, device="cpu"))  # fmt: skip
    return forget_path, models


def statistics(signals, target_phi: np.ndarray, f_rows: np.ndarray, t_rows: np.ndarray, n: int, seed: int) -> dict:
    """Each statistic's value and whether it rejects exact unlearning, on the first n shadows."""
    before, after, states = signals.phi_before[:n], signals.phi_after[:n], signals.states[:n]
    out: dict = {}
    share = residual_share(before, after, states, target_phi, f_rows, t_rows, exact_method=True, seed=seed)
    out["residual"] = {"value": share.share.value, "sd": share.sd,
                       "reject": bool(share.share.value - Z * share.sd > 0)}  # fmt: skip
    rows = np.r_[f_rows, t_rows]
    labels = np.r_[np.ones(len(f_rows), bool), np.zeros(len(t_rows), bool)]
    unlearned_refs = np.select([states == UNLEARNED, states == OUT], [IN, OUT], -1).astype(np.int8)
    scores = {
        "ulira": ulira(after, states, target_phi),
        "rmia-online": rmia(after, unlearned_refs, target_phi, t_rows, online=True),
        "rmia-offline": rmia(after, unlearned_refs, target_phi, t_rows),
    }
    for name, s in scores.items():
        auc = separation(s[rows], labels, n_bootstrap=1000, seed=seed).auc
        out[name] = {"value": auc.value, "low": auc.low, "high": auc.high, "reject": bool(auc.low > 0.5)}
    return out


def run(args: argparse.Namespace) -> None:
    done = set()
    if args.out.exists():
        done = {(r["data"], r["fraction"], r["draw"]) for r in map(json.loads, args.out.read_text().splitlines())}
    for draw in range(args.first, args.first + args.draws):
        if (args.data, args.fraction, draw) in done:
            continue
        forget, models = draw_models(args.data, args.fraction, draw, args.work)
        rows = []
        for target, model in models.items():
            config = AuditConfig(model=model, forget=forget, original=models["original"], method="retrain",
                                 shadows=max(LOOKS), bank=args.work / "banks" / f"{args.data}-{draw}", seed=draw,
                                 allow_underpowered=True, device="cpu")  # fmt: skip
            inputs = prepare(config)
            inputs.build_bank(shadows=max(LOOKS))  # one bank per draw: the three targets share it
            signals = inputs.bank.load(max(LOOKS), logits=False)
            ds = inputs.dataset
            target_phi = augmented_confidence(inputs.model.view_logits(ds, "cpu"), ds.y)
            f_rows, t_rows = ds.rows(inputs.forget), ds.rows(inputs.test)
            for n in LOOKS:
                rows.append({"data": args.data, "fraction": args.fraction, "draw": draw, "target": target, "n": n,
                             **statistics(signals, target_phi, f_rows, t_rows, n, draw)})  # fmt: skip
        with args.out.open("a") as fh:
            fh.writelines(json.dumps(r) + "\n" for r in rows)
        print(f"draw {draw}: " + ", ".join(
            f"{r['target']}@{r['n']} " + "/".join("R" if r[s]["reject"] else "." for s in STATISTICS)
            for r in rows if r["n"] in (8, 64)), flush=True)  # fmt: skip


def table(path: Path) -> str:
    """Markdown: per dataset and target, each statistic's rejection rate at each bank size."""
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    out = ["| data | audited model | statistic | " + " | ".join(f"{n} shadows" for n in LOOKS) + " |",
           "|---" * (3 + len(LOOKS)) + "|"]  # fmt: skip
    for data, fraction in sorted({(r["data"], r["fraction"]) for r in rows}):
        for target in TARGETS:
            for stat in STATISTICS:
                cells = []
                for n in LOOKS:
                    got = [r for r in rows if (r["data"], r["fraction"], r["target"], r["n"]) == (data, fraction,
                                                                                                  target, n)]
                    k = sum(r[stat]["reject"] for r in got)
                    cells.append(validity.rate(k, len(got)) if got else "-")
                out.append(f"| {data}-{round(fraction * 100)} | {target} | {stat} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="digits")
    parser.add_argument("--fraction", type=float, default=0.3)
    parser.add_argument("--draws", type=int, default=24)
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--work", type=Path, default=Path("/tmp/rmia-power"))
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "rmia_power.jsonl")
    parser.add_argument("--table", type=Path, help="print the table of a results file and stop")
    parser.add_argument("--write-docs", type=Path, help="with --table: also write it into this file's rmia block")
    args = parser.parse_args()
    if args.table is not None:
        text = table(args.table)
        print(text)
        if args.write_docs is not None:
            validity.write_generated(args.write_docs, {"rmia": text})
        return
    args.work.mkdir(parents=True, exist_ok=True)
    run(args)


if __name__ == "__main__":
    main()
