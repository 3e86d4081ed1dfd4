"""Validity suite: the audit's error rates, measured on real models across independent draws.

    python benchmarks/validity.py                       # every scenario, 20 draws each
    python benchmarks/validity.py --scenario digits-10-exact --draws 5
    python benchmarks/validity.py --table results.jsonl  # the table from saved draws

Each draw trains the audited model(s) and a fresh shadow bank and runs ``audit run`` as a
user would (through ``run_audit``), with the forget list, the shadow seed and the
retrain/unlearning seed all drawn anew; the original is trained per draw too (its own
seed), and the scenarios of one draw share it. Scenarios:

- exact unlearning: a model retrained without the forget set, audited with ``--method
  retrain --original``. The audit should never FAIL it.
- the original passed off as unlearned (``--method retrain`` on the original model) and a
  no-op (finetune, lr 1e-5, 1 epoch): the audit should never PASS them.
- salun and random-label: the distribution of leakage.
- partial unlearners of known strength (``-partial60``, ``-partial30``): a model retrained on
  the retained data plus a random 60% (30%) of the forget set, audited as an exact retrain
  (``--method retrain --original``). The audit should FAIL them; their residual
  memorisation share should read about 0.6 (0.3).
- federated (``fl-*``): a federation of 10 clients (Dirichlet alpha 0.3) trained with
  ``audit fl train``; client ``draw % 10`` is forgotten and audited with ``--forget-client``:
  retrained without it (exact), the original passed off as retrained, and PUF (regular,
  special) and natural, each recovered to the retrained federation's test accuracy. The
  ``-2clients`` scenarios forget clients ``draw % 10`` and ``(draw + 5) % 10`` in one request
  (each shadow splits its forget set between two clients).

Draws are appended to a JSON-lines file as they finish (an interrupted run keeps what it
measured; a rerun skips draws already there). The table gives, per scenario, the rates
of exit 0 / 1 / 3 with Clopper-Pearson intervals, and the leakage gate's outcome at other
thresholds, recomputed from each draw's interval. Runs alone: never beside the tests or
another benchmark (torch threads on a shared machine slow each other 20-100x).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from scipy.stats import beta

from audit_cli.auditing.pipeline import run_audit
from audit_cli.auditing.request import AuditConfig
from audit_cli.checks.gate import decide
from audit_cli.data import load_dataset, write_id_file
from audit_cli.models.recipe import Federation, Recipe
from audit_cli.repair.fl_train import FederatedTrainRequest, fl_train_checkpoint
from audit_cli.repair.train_checkpoint import TrainRequest, train_checkpoint
from audit_cli.repair.unlearn_checkpoint import unlearn_checkpoint
from audit_cli.repair.unlearn_request import UnlearnRequest

RECIPES = {
    "digits": Recipe(arch="mlp", arch_args={"hidden": (256,)}, epochs=60),
    "mnist1d": Recipe(arch="mlp", arch_args={"hidden": (256, 256)}, epochs=30),
}
# Federations (audit fl train's defaults): 10 clients, Dirichlet alpha 0.3, one local SGD epoch a round.
FL_RECIPES = {
    "digits": Recipe(arch="mlp", arch_args={"hidden": (256,)}, optimizer="sgd", lr=0.1, epochs=1, batch_size=16,
                     federation=Federation(clients=10, alpha=0.3, rounds=30)),
    "mnist1d": Recipe(arch="mlp", arch_args={"hidden": (256, 256)}, optimizer="sgd", lr=0.1, epochs=1,
                      batch_size=16, federation=Federation(clients=10, alpha=0.3, rounds=30)),
}  # fmt: skip
THRESHOLDS = (0.1, 0.15, 0.2, 0.3)
# The gate a row was measured under (rows without one predate the residual gate: leakage
# gated both ways, every shadow trained at once).
GATE = "residual-sequential-2"
# The looks of a default audit (up to 64 shadows) under each version of the gate. 1: a
# bootstrap over shadows and examples, looks from 16; 2: over the examples with the bank held
# fixed, an exact method's unlearned shadows in the exact centre, looks from 8.
LOOKS = {"residual-sequential-1": (16, 32, 64), GATE: (8, 16, 32, 64)}
LOOK_ALPHA = 0.025  # audit_cli/shadows/looks.py ALPHA: each side's error over all looks


@dataclass(frozen=True)
class Scenario:
    name: str
    data: str
    target: str
    """exact (retrained without the forget set), original, partial (retrained without the
    forget set but ``keep`` of it), or an unlearning method's name."""
    fraction: float | None = None
    """Random forgetting: this share of the training ids; None: ``forget_class``."""
    forget_class: int | None = None
    shadows: int = 64
    params: dict = field(default_factory=dict)
    federated: bool = False
    """Forget client ``draw % 10`` of a federation (FL_RECIPES); ``target`` is exact,
    original, or a PUF variant (``params``)."""
    clients: int = 1
    """Federated: clients forgotten in the request (the second is ``(draw + 5) % 10``)."""
    keep: float = 0.0
    """Partial: the share of the forget set the model is retrained on (it claims none)."""
    with_retrained: bool = False
    """Also give the audit ``--retrained``: a second retrain without the forget set (another
    seed), as a user with a reference model would."""


SCENARIOS = {
    s.name: s
    for s in [
        Scenario("digits-10-exact", "digits", "exact", 0.10),
        Scenario("digits-10-original", "digits", "original", 0.10),
        Scenario("digits-30-exact", "digits", "exact", 0.30),
        Scenario("digits-30-original", "digits", "original", 0.30),
        Scenario("digits-30-noop", "digits", "finetune", 0.30, params={"lr": 1e-5, "epochs": 1}),
        Scenario("digits-class3-exact", "digits", "exact", forget_class=3, shadows=32),
        Scenario("mnist1d-10-exact", "mnist1d", "exact", 0.10),
        Scenario("mnist1d-10-original", "mnist1d", "original", 0.10),
        Scenario("mnist1d-10-noop", "mnist1d", "finetune", 0.10, params={"lr": 1e-5, "epochs": 1}),
        Scenario("mnist1d-10-salun", "mnist1d", "salun", 0.10, shadows=32),
        Scenario("mnist1d-10-random-label", "mnist1d", "random-label", 0.10, shadows=32),
        # The original with its header rewritten to claim a retrain without the forget set,
        # audited as a retrained model is without --original: LiRA membership.
        Scenario("digits-30-forged", "digits", "forged", 0.30),
        Scenario("digits-30-exact-retrained", "digits", "exact", 0.30, with_retrained=True),
        Scenario("digits-30-partial60", "digits", "partial", 0.30, keep=0.6),
        Scenario("digits-30-partial30", "digits", "partial", 0.30, keep=0.3),
        Scenario("mnist1d-10-partial60", "mnist1d", "partial", 0.10, keep=0.6),
        Scenario("mnist1d-10-partial30", "mnist1d", "partial", 0.10, keep=0.3),
        *(Scenario(f"fl-{data}-{name}", data, target, shadows=32, params=params, federated=True)
          for data in ("digits", "mnist1d")
          for name, target, params in (("exact", "exact", {}), ("original", "original", {}),
                                       ("puf", "puf", {"variant": "regular"}),
                                       ("puf-special", "puf", {"variant": "special"}),
                                       ("natural", "puf", {"variant": "natural"}))),
        *(Scenario(f"fl-digits-{name}-2clients", "digits", target, shadows=32, params=params, federated=True,
                   clients=2)
          for name, target, params in (("exact", "exact", {}), ("original", "original", {}),
                                       ("puf", "puf", {"variant": "regular"}))),
    ]
}


def original_model(data: str, work: Path, draw: int) -> Path:
    """The original of one draw: trained on the whole training split with the draw's own
    seed, so that draws are independent in the original too (scenarios share it per draw).
    How long its training took is kept beside it (``.seconds``): one training is the unit
    the audit's cost is measured in."""
    path = work / f"{data}-original-{draw}.safetensors"
    if not path.exists():
        recipe = RECIPES[data].replace(seed=2000 + draw)
        start = time.perf_counter()
        train_checkpoint(TrainRequest(out=path, data=data, recipe=recipe, overwrite=True, device="cpu"))
        path.with_suffix(".seconds").write_text(str(time.perf_counter() - start))
    return path


def training_seconds(original: Path) -> float | None:
    """How long one training of the draw's recipe took (its original's, timed when trained)."""
    timed = original.with_suffix(".seconds")
    return float(timed.read_text()) if timed.exists() else None


def forge_retrained(original: Path, forget: np.ndarray, ds, out: Path) -> Path:
    """The original's weights under a header that claims a retrain without ``forget``: what
    anyone can write, and what the audit must never take as evidence."""
    from dataclasses import replace

    from audit_cli.data import fingerprint_ids
    from audit_cli.models.checkpoint import load_checkpoint, save_checkpoint
    from audit_cli.models.metadata import Exclusion

    ckpt = load_checkpoint(original)
    kept = np.setdiff1d(ds.train_ids, forget)
    meta = replace(ckpt.meta, kind="retrained", excluded=Exclusion(len(forget), fingerprint_ids(forget)),
                   trained_ids_fingerprint=fingerprint_ids(kept), n_trained=len(kept))  # fmt: skip
    save_checkpoint(out, ckpt.state_dict, meta, overwrite=True)
    return out


def federation(data: str, work: Path, draw: int, exclude: tuple[int, ...] = ()) -> Path:
    """A draw's federation (its own seed: partition, initial model, clients' order), or the
    same federation trained without some clients."""
    path = work / f"fl-{data}-{draw}{''.join(f'-x{c}' for c in exclude)}.safetensors"
    if not path.exists():
        fed = FL_RECIPES[data].federation
        recipe = FL_RECIPES[data].replace(seed=2000 + draw, federation=Federation(
            clients=fed.clients, alpha=fed.alpha, rounds=fed.rounds, seed=2000 + draw))  # fmt: skip
        fl_train_checkpoint(FederatedTrainRequest(TrainRequest(out=path, data=data, recipe=recipe, overwrite=True,
                                                               device="cpu"), exclude_clients=exclude))  # fmt: skip
    return path


def run_federated_draw(s: Scenario, draw: int, work: Path) -> tuple[Path, str | None, tuple[int, ...], Path]:
    """The audited model of a federated draw, its declared method, the clients, the original."""
    client = (draw % 10, (draw + 5) % 10)[: s.clients]
    original, retrained = federation(s.data, work, draw), federation(s.data, work, draw, client)
    if s.target == "exact":
        return retrained, "retrain", client, original
    if s.target == "original":
        return original, "retrain", client, original
    d = work / f"{s.name}-{draw}"
    d.mkdir(parents=True, exist_ok=True)
    model = d / "unlearned.safetensors"
    unlearn_checkpoint(UnlearnRequest(model=original, out=model, method=s.target, params=s.params,
                                      forget_clients=client, retrained=retrained, seed=1000 + draw,
                                      overwrite=True, device="cpu"))  # fmt: skip
    return model, None, client, original


def run_draw(s: Scenario, draw: int, work: Path, threshold: float) -> dict:
    if s.federated:
        start = time.perf_counter()
        model, method, clients, original = run_federated_draw(s, draw, work)
        return audit_row(s, draw, threshold, start, AuditConfig(
            model=model, forget_clients=clients, original=original, method=method, shadows=s.shadows,
            bank=work / "banks", seed=draw, fail_above=threshold, allow_underpowered=True, device="cpu"))  # fmt: skip
    ds = load_dataset(s.data)
    original = original_model(s.data, work, draw)
    rng = np.random.default_rng([draw, 17])
    d = work / f"{s.name}-{draw}"
    d.mkdir(parents=True, exist_ok=True)
    forget_path = None
    if s.fraction is not None:
        train = ds.train_ids
        forget = np.sort(rng.choice(train, int(round(s.fraction * len(train))), replace=False))
        forget_path = d / "forget.txt"
        write_id_file(forget_path, forget)
    seed = 1000 + draw  # the retrain / unlearning seed
    start = time.perf_counter()
    method, train_seconds = None, training_seconds(original)
    if s.target == "exact":
        model = d / "retrained.safetensors"
        train_checkpoint(TrainRequest(out=model, data=s.data, recipe=RECIPES[s.data].replace(seed=seed),
                                      exclude_ids=forget_path, exclude_class=s.forget_class, overwrite=True,
                                      device="cpu"))  # fmt: skip
        method = "retrain"
    elif s.target == "partial":
        # Retrained without the forget set but a random ``keep`` of it, claiming an exact retrain.
        kept = np.random.default_rng([draw, 23]).choice(forget, int(round(s.keep * len(forget))), replace=False)
        excluded = d / "excluded.txt"
        write_id_file(excluded, np.setdiff1d(forget, kept))
        model = d / "partial.safetensors"
        train_checkpoint(TrainRequest(out=model, data=s.data, recipe=RECIPES[s.data].replace(seed=seed),
                                      exclude_ids=excluded, overwrite=True, device="cpu"))  # fmt: skip
        method = "retrain"
    elif s.target == "original":
        model, method = original, "retrain"
    elif s.target == "forged":
        model = forge_retrained(original, forget, ds, d / "forged.safetensors")
    else:
        model = d / "unlearned.safetensors"
        unlearn_checkpoint(UnlearnRequest(model=original, out=model, method=s.target, params=s.params,
                                          forget=forget_path, forget_class=s.forget_class, seed=seed,
                                          overwrite=True, device="cpu"))  # fmt: skip
    retrained = None
    if s.with_retrained:
        retrained = d / "second-retrain.safetensors"
        train_checkpoint(TrainRequest(out=retrained, data=s.data, recipe=RECIPES[s.data].replace(seed=seed + 500),
                                      exclude_ids=forget_path, exclude_class=s.forget_class, overwrite=True,
                                      device="cpu"))  # fmt: skip
    config = AuditConfig(
        model=model,
        forget=forget_path,
        forget_class=s.forget_class,
        # A forged header is audited as a retrained model is: no --original, no method.
        original=None if s.target == "forged" else original,
        retrained=retrained,
        method=method,
        shadows=s.shadows,
        # A fresh bank per draw and scenario: the audit's cost is measured as a user pays it.
        bank=work / "banks" / f"{s.name}-{draw}",
        seed=draw,
        fail_above=threshold,
        allow_underpowered=True,
        device="cpu",
    )
    return audit_row(s, draw, threshold, start, config, train_seconds)


def audit_row(s: Scenario, draw: int, threshold: float, start: float, config: AuditConfig,
              train_seconds: float | None = None) -> dict:  # fmt: skip
    """Run the audit of one draw and keep what the table reads."""
    report = run_audit(config)
    row = lambda c: {"verdict": c.verdict, "score": c.score, "low": c.low, "high": c.high}  # noqa: E731
    gated = {c.name: row(c) for c in report.checks if c.gated}
    leak = next(c for c in report.checks if c.name == "leakage")
    residual = next((c for c in report.checks if c.name == "residual-memorisation"), None)
    share = None
    if residual is not None:
        share = row(residual) | {k: residual.details.get(k) for k in
                                 ("sd", "fail_bounds", "exact_passes_half_from", "exact_passes_nine_tenths_from")}
    return {
        "scenario": s.name,
        "draw": draw,
        "gate": GATE,
        "threshold": threshold,
        "residual_above": config.residual_above,
        "exit_code": int(report.exit_code),
        "gated": gated,
        # Leakage keeps only its fail side where the residual share gates (then it is not in
        # ``gated`` unless it failed).
        "leakage": row(leak) | {"pass_bound": leak.details["pass_bound"]},
        "auc": leak.details["auc"],
        "min_decidable": leak.details["min_decidable"],
        "unscorable": leak.details["unscorable"],
        "variance": report.shadows.variance,
        "residual": share,
        "shadows": {"n": report.shadows.n, "trained_now": report.shadows.trained_now,
                    "schedule": list(report.shadows.schedule or ())},  # fmt: skip
        "audit_seconds": report.seconds,
        "train_seconds": train_seconds,
        "seconds": time.perf_counter() - start,
    }


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    a = (1 - level) / 2
    low = 0.0 if k == 0 else float(beta.ppf(a, k, n - k + 1))
    high = 1.0 if k == n else float(beta.ppf(1 - a, k + 1, n - k))
    return low, high


def rate(k: int, n: int) -> str:
    low, high = clopper_pearson(k, n)
    return f"{k}/{n} = {k / n:.0%} [{low:.0%}, {high:.0%}]"


def pass_bound(leak: dict) -> float:
    """What a draw's leakage had to be under to pass: rows measured before the pass bound
    existed pass on the interval's upper end; a bound that could not be measured, never."""
    if "pass_bound" not in leak:
        return leak["high"]
    return 1.0 if leak["pass_bound"] is None else leak["pass_bound"]


def table(rows: list[dict]) -> str:
    """Markdown: per scenario, exit-code rates and the leakage gate at other thresholds."""
    out = [
        "| scenario | draws | FAIL (exit 1) | PASS (exit 0) | inconclusive (exit 3) | mean AUC (sd) | "
        + " | ".join(f"leakage at {t}: fail / pass" for t in THRESHOLDS)
        + " | residual share: mean (sd), mean interval |",
        "|---" * (7 + len(THRESHOLDS)) + "|",
    ]
    for name in SCENARIOS:
        got = [r for r in rows if r["scenario"] == name]
        if not got:
            continue
        n = len(got)
        codes = [r["exit_code"] for r in got]
        aucs = np.array([r["auc"] for r in got])
        cells = [name, str(n), rate(codes.count(1), n), rate(codes.count(0), n), rate(codes.count(3), n),
                 f"{aucs.mean():.3f} ({aucs.std(ddof=1) if n > 1 else 0:.3f})"]  # fmt: skip
        for t in THRESHOLDS:
            verdicts = [decide(r["gated"]["leakage"]["low"], pass_bound(r["gated"]["leakage"]), t) for r in got]
            cells.append(f"{verdicts.count('fail')} / {verdicts.count('pass')}")
        cells.append(residual_cell(got))
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


# Thresholds at which the residual share's gate is tabulated (it is not gated yet).
RESIDUAL_THRESHOLDS = (0.3, 0.5)
# Generated blocks of docs/validity.md: ``<!-- generated: NAME -->`` ... ``<!-- end generated -->``.
GENERATED = "<!-- generated: {} -->"
END_GENERATED = "<!-- end generated -->"


def decisive_table(rows: list[dict], gate: str = GATE) -> str:
    """Markdown: per scenario measured under a version of the residual gate (``GATE``: the
    current one), the exit-code rates, the share, the shadows that decided and the cost in
    trainings of the audited recipe."""
    out = [
        "| scenario | draws | FAIL (exit 1) | PASS (exit 0) | inconclusive (exit 3) | residual share: mean (sd) | "
        f"decided at {' / '.join(map(str, LOOKS[gate]))} shadows | cost: median (max) x one training | "
        "exact passes 9/10 from: median | within it at the last look |",
        "|---" * 10 + "|",
    ]
    for name in SCENARIOS:
        got = [r for r in rows if r["scenario"] == name and r.get("gate") == gate]
        if not got:
            continue
        n = len(got)
        codes = [r["exit_code"] for r in got]
        shares = measured_shares(got)
        used = [r["shadows"]["n"] for r in got]
        decided = " / ".join(str(sum(u == k for u in used)) for k in LOOKS[gate])
        # Only audits that trained their whole bank (a rerun of an interrupted draw reads the
        # bank the first attempt left, which gives the same verdict but not its cost).
        cost = [r["audit_seconds"] / r["train_seconds"] for r in got
                if r.get("train_seconds") and r["shadows"]["trained_now"] >= r["shadows"]["n"]]  # fmt: skip
        # Recomputed from each draw's spread and looks (the figure the audit quotes, as
        # audit_cli/checks/residual.py power_thresholds computes it).
        nine = [nine_tenths_figure(r) for r in got if r.get("residual") and r["residual"].get("sd") is not None]
        # Would the draw's bounds at its last look lie within the median quoted figure? (The
        # power claim: an exact unlearner passes nine times in ten at that threshold.)
        within = "-"
        if nine:
            t = float(np.median(nine))
            bounded = [r["residual"] for r in got if r.get("residual") and r["residual"]["low"] is not None]
            within = f"{sum(-t <= b['low'] and b['high'] <= t for b in bounded)}/{len(bounded)}"
        cells = [name, str(n), rate(codes.count(1), n), rate(codes.count(0), n), rate(codes.count(3), n),
                 share_summary(shares)[0] if shares else "not measured", decided,
                 f"{np.median(cost):.1f} ({max(cost):.1f})" if cost else "not timed",
                 f"{np.median(nine):.2f}" if nine else "-", within]  # fmt: skip
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def nine_tenths_figure(row: dict) -> float:
    """The threshold a draw's audit quotes as the one an exact unlearner measured as
    precisely passes nine times in ten, at the look it stopped at."""
    from scipy.stats import norm

    looks = max(len(row["shadows"]["schedule"]), 1)
    z = norm.ppf(1 - LOOK_ALPHA / looks)
    return float((z + norm.ppf(0.95)) * row["residual"]["sd"])


def legacy(rows: list[dict]) -> list[dict]:
    """Rows measured before the residual gate (leakage gated both ways, all shadows at once)."""
    return [r for r in rows if "gate" not in r]


def residual_table(rows: list[dict]) -> str:
    """Markdown: per scenario with the residual share measured, its distribution and what a
    gate on it would decide at a few thresholds (fail: interval above; pass: at or below)."""
    head = ("| scenario | draws | share: mean (sd) | mean 95% interval | "
            + " | ".join(f"at {t}: fail / pass" for t in RESIDUAL_THRESHOLDS) + " |")  # fmt: skip
    out = [head, "|---" * (4 + len(RESIDUAL_THRESHOLDS)) + "|"]
    for name in SCENARIOS:
        got = measured_shares([r for r in rows if r["scenario"] == name])
        if not got:
            continue
        cells = [name, str(len(got)), *share_summary(got)]
        for t in RESIDUAL_THRESHOLDS:
            verdicts = [decide(g["low"], g["high"], t) for g in got]
            cells.append(f"{verdicts.count('fail')} / {verdicts.count('pass')}")
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def write_generated(doc: Path, blocks: dict[str, str]) -> None:
    """Replace each generated block of ``doc`` with its table (the numbers are never copied by hand)."""
    text = doc.read_text()
    for name, body in blocks.items():
        start = text.index(GENERATED.format(name)) + len(GENERATED.format(name))
        end = text.index(END_GENERATED, start)
        text = text[:start] + "\n" + body + "\n" + text[end:]
    doc.write_text(text)


def measured_shares(rows: list[dict]) -> list[dict]:
    """The draws' residual shares, where one was measured (not before it existed, nor where
    the recipe memorised nothing)."""
    return [r["residual"] for r in rows if r.get("residual") and r["residual"]["score"] is not None]


def share_summary(shares: list[dict]) -> tuple[str, str]:
    """Mean (sd) of the shares, and their mean interval."""
    v = np.array([x["score"] for x in shares])
    low, high = np.mean([x["low"] for x in shares]), np.mean([x["high"] for x in shares])
    return f"{v.mean():.2f} ({v.std(ddof=1) if len(v) > 1 else 0:.2f})", f"[{low:.2f}, {high:.2f}]"


def residual_cell(rows: list[dict]) -> str:
    """The residual share over a scenario's draws, for the main table (draws without one
    are counted)."""
    shares = measured_shares(rows)
    if not shares:
        return "not measured"
    missing = f", {len(rows) - len(shares)} draws without" if len(shares) < len(rows) else ""
    return ", ".join(share_summary(shares)) + missing


def main() -> None:
    parser = argparse.ArgumentParser(description="error rates of the audit on real models")
    parser.add_argument("--scenario", action="append", choices=sorted(SCENARIOS), help="repeatable; default all")
    parser.add_argument("--draws", type=int, default=20)
    parser.add_argument("--first-draw", type=int, default=0)
    parser.add_argument("--threshold", type=float, default=0.1, help="the leakage threshold of the runs")
    parser.add_argument("--out", type=Path, default=Path("validity.jsonl"))
    parser.add_argument("--work", type=Path, default=None, help="keep models and banks here (default: temporary)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--table", type=Path, default=None, help="print the table of a saved JSON-lines file")
    parser.add_argument("--write-docs", type=Path, default=None,
                        help="with --table: rewrite the generated blocks of this Markdown file (docs/validity.md)")
    args = parser.parse_args()
    if args.table is not None:
        rows = [json.loads(line) for line in args.table.read_text().splitlines() if line.strip()]
        print(decisive_table(rows))
        print()
        print(decisive_table(rows, "residual-sequential-1"))
        print()
        print(table(legacy(rows)))
        print()
        print(residual_table(legacy(rows)))
        if args.write_docs is not None:
            old = legacy(rows)
            partial = [r for r in old if SCENARIOS[r["scenario"]].target == "partial"]
            central = [r for r in old if not SCENARIOS[r["scenario"]].federated and r not in partial]
            write_generated(args.write_docs, {"decisive": decisive_table(rows),
                                              "decisive-1": decisive_table(rows, "residual-sequential-1"),
                                              "central": table(central),
                                              "partial": table(partial), "residual": residual_table(old)})  # fmt: skip
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    done = set()
    if args.out.exists():
        rows = [json.loads(line) for line in args.out.read_text().splitlines() if line.strip()]
        done = {(r["scenario"], r["draw"], r["threshold"]) for r in rows if r.get("gate") == GATE}
    work = args.work or Path(tempfile.mkdtemp(prefix="validity-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        for name in args.scenario or list(SCENARIOS):
            for draw in range(args.first_draw, args.first_draw + args.draws):
                if (name, draw, args.threshold) in done:
                    continue
                row = run_draw(SCENARIOS[name], draw, work, args.threshold)
                with args.out.open("a") as f:
                    f.write(json.dumps(row) + "\n")
                leak, share = row["leakage"], row["residual"] or {}
                print(f"{name} draw {draw}: exit {row['exit_code']}, leakage {leak['score']:.3f}, residual "
                      f"{share.get('score')} [{share.get('low')}, {share.get('high')}] on {row['shadows']['n']} "
                      f"shadows, {row['seconds']:.0f}s", flush=True)  # fmt: skip
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    rows = [json.loads(line) for line in args.out.read_text().splitlines() if line.strip()]
    print(decisive_table(rows))


if __name__ == "__main__":
    main()
