"""Influence-function unlearning against true retraining, and primal against dual cost
(docs/results.md, "Influence functions").

    python scripts/influence_table.py accuracy --out accuracy.json   # both datasets, about 11 min
    python scripts/influence_table.py cost --out cost.json           # widths 64..4096, about 12 min
    python scripts/influence_table.py markdown accuracy.json cost.json

accuracy
    The seed paper's setting at small scale: N = 500 training examples, the objective
    ``(1/N) Σ ℓ + (λ/2) ‖θ − θ_p‖²`` with λ = 0.01, for logistic regression (θ_p = 0) and a
    one-hidden-layer MLP of width 64 *linearised* at its initialisation θ_p (its outputs
    ``f(x; θ_p) + J(x)(θ − θ_p)``, a linear model in θ; the explicit Jacobians are its
    features). θ* minimises the objective on all N examples and θ_R on the retained ones
    (Newton's method to a relative gradient of 1e-10: "true retraining"); the influence
    step from θ* (primal and dual) is compared with θ_R at forget fractions 10-90%, beside
    doing nothing and a random perturbation of the step's norm. Errors: ``‖θ̂ − θ_R‖ /
    ‖θ_R‖`` (the seed's measure), ``‖Δθ̂ − Δθ_R‖ / ‖Δθ_R‖`` (of the change itself) and the
    same for the test outputs' change.
cost
    The tool's own method (``audit unlearn --method influence``) on a trained MLP: N = 500,
    widths 64 to 4,096, forget 10% and 90%, primal against dual: seconds and peak memory
    (the resident-set growth of a fresh process), or the dual's refusal when its kernel
    and Jacobians exceed the memory budget.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, vmap

from audit_cli.data import load_dataset
from audit_cli.training.loop import init_ensemble
from audit_cli.unlearn.influence_solver import Examples, Jacobians, flatten, newton_fit, removal_step, unflatten

DATASETS = ("digits", "mnist1d")
FRACTIONS = (0.1, 0.3, 0.5, 0.7, 0.9)
N_TRAIN, LAMBDA, WIDTH = 500, 0.01, 64
F64 = torch.float64


def subsample(data, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """N_TRAIN training rows and every test row."""
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(data.rows(data.train_ids), N_TRAIN, replace=False)), data.rows(data.test_ids)


def logreg_problem(data):
    """Logistic regression: inputs as they are, θ_p = 0."""
    d, c = int(np.prod(data.input_shape)), data.num_classes
    module = nn.Linear(d, c).to(F64)
    forward = vmap(lambda p, b, x: functional_call(module, (p, b), (x,)))
    x = torch.as_tensor(data.x, dtype=F64).reshape(len(data.x), -1)
    center = {n: torch.zeros(1, *t.shape, dtype=F64) for n, t in module.named_parameters()}
    return forward, x, center


def linearised_mlp_problem(data, rows: np.ndarray):
    """The MLP linearised at its initialisation: features [J(x) flattened, f(x; θ_p)] per
    example (only ``rows`` are built), parameters one flat vector θ, θ_p its initialisation."""
    ens = init_ensemble("mlp", {"hidden": (WIDTH,)}, data.input_shape, data.num_classes, [0])
    theta_p = {n: t.detach().to(F64) for n, t in ens.params.items()}
    net = vmap(lambda p, b, x: functional_call(ens.base, (p, b), (x,)))
    x = torch.as_tensor(data.x[rows], dtype=F64)
    jac = Jacobians(net, theta_p, {}, x[None], chunk=100, keep=False)
    c, p = data.num_classes, flatten(theta_p).shape[1]
    blocks = [jac[i].reshape(-1, c * p) for i in range(len(jac))]
    with torch.no_grad():
        f0 = net(theta_p, {}, x[None])[0]
    features = torch.zeros(len(data.x), c * p + c, dtype=F64)
    features[torch.as_tensor(rows)] = torch.cat([torch.cat(blocks), f0], dim=1)
    flat_p = flatten(theta_p)

    def forward(params, buffers, feats):
        k, b = feats.shape[:2]
        j = feats[..., : c * p].reshape(k, b, c, p)
        return torch.einsum("kbcp,kp->kbc", j, params["theta"] - flat_p) + feats[..., c * p :]

    return forward, features, {"theta": flat_p.clone()}


def accuracy_rows(name: str) -> list[dict]:
    data = load_dataset(name)
    train, test = subsample(data)
    y = torch.as_tensor(data.y)
    out = []
    for model in ("logreg", "linearised mlp"):
        if model == "logreg":
            forward, x, center = logreg_problem(data)
        else:
            forward, x, center = linearised_mlp_problem(data, np.r_[train, test])

        def fit(rows: np.ndarray, center=center, forward=forward, x=x):
            examples = Examples(x, y, torch.as_tensor(rows)[None])
            theta, gradient = newton_fit(forward, center, {}, examples, n_total=N_TRAIN, damping=LAMBDA, center=center)
            assert gradient < 1e-9, gradient
            return theta

        def outputs(theta, forward=forward, x=x):
            with torch.no_grad():
                return forward(theta, {}, x[torch.as_tensor(test)][None])[0]

        theta_star = fit(train)
        f_star = outputs(theta_star)
        for fraction in FRACTIONS:
            n_forget = int(round(fraction * N_TRAIN))
            order = np.random.default_rng(1).permutation(train)
            forget, retain = np.sort(order[:n_forget]), np.sort(order[n_forget:])
            theta_r = fit(retain)
            change, f_change = flatten(theta_r) - flatten(theta_star), outputs(theta_r) - f_star
            row = {"data": name, "model": model, "forget": fraction, "params": int(flatten(theta_star).shape[1])}

            def errors(delta: torch.Tensor, label: str, row=row, change=change, f_change=f_change,
                       theta_r=theta_r, theta_star=theta_star, f_star=f_star) -> None:  # fmt: skip
                theta = unflatten(flatten(theta_star) + delta, theta_star)
                row[f"{label}_theta"] = float((flatten(theta) - flatten(theta_r)).norm() / flatten(theta_r).norm())
                row[f"{label}_delta"] = float((delta - change).norm() / change.norm())
                row[f"{label}_outputs"] = float(((outputs(theta) - f_star) - f_change).norm() / f_change.norm())

            for form in ("primal", "dual"):
                started = time.perf_counter()
                step = removal_step(
                    forward,
                    theta_star,
                    {},
                    Examples(x, y, torch.as_tensor(forget)[None]),
                    Examples(x, y, torch.as_tensor(retain)[None]),
                    n_total=N_TRAIN,
                    damping=LAMBDA,
                    form=form,
                    tol=1e-10,
                    max_iter=5000,
                    memory_bytes=4 * 2**30,
                )
                row[f"{form}_seconds"] = time.perf_counter() - started
                errors(flatten(step.delta), form)
            delta = flatten(step.delta)
            errors(torch.zeros_like(delta), "nothing")
            noise = torch.randn(delta.shape, generator=torch.Generator().manual_seed(2), dtype=F64)
            errors(noise * delta.norm() / noise.norm(), "random")
            print(json.dumps(row), flush=True)
            out.append(row)
    return out


def cost_once(data_name: str, width: int, fraction: float, form: str, damping: float = LAMBDA) -> dict:
    """One influence step of the tool's method, measured in this (fresh) process."""
    from audit_cli.models.recipe import Recipe
    from audit_cli.training.loop import train_models
    from audit_cli.unlearn import UnlearnTask
    from audit_cli.unlearn.influence import InfluenceParams, influence_step

    data = load_dataset(data_name)
    train, _ = subsample(data)
    ids = data.ids[train]
    recipe = Recipe(arch="mlp", arch_args={"hidden": (width,)}, epochs=20, weight_decay=damping)
    ens = train_models(data, recipe, [ids], [0])
    n_forget = int(round(fraction * N_TRAIN))
    task = UnlearnTask(data, [ids[:n_forget]], [ids[n_forget:]], recipe, [0])
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    row = {
        "data": data_name,
        "width": width,
        "forget": fraction,
        "form": form,
        "damping": damping,
        "params": int(flatten(ens.params).shape[1]),
    }
    try:
        step = influence_step(ens, task, InfluenceParams(form=form, tol=1e-6, memory_gb=4.0, max_iter=5000))
        row |= {
            "seconds": time.perf_counter() - started,
            "iterations": int(step.solve.iterations[0]),
            "kernel_mb": step.kernel_bytes / 2**20,
        }
    except Exception as exc:  # the dual's refusal is a result here
        row |= {"refused": str(exc).split(" (")[0]}
    row["peak_mb"] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    return row


def cost_rows(widths: list[int], damping: float) -> list[dict]:
    out = []
    for width in widths:
        for fraction in (0.1, 0.9):
            for form in ("primal", "dual"):
                args = [sys.executable, __file__, "cost-once", "digits", str(width), str(fraction), form, str(damping)]
                done = subprocess.run(args, capture_output=True, text=True, check=True)
                row = json.loads(done.stdout.strip().splitlines()[-1])
                print(json.dumps(row), flush=True)
                out.append(row)
    return out


def markdown(accuracy: list[dict], cost: list[dict]) -> str:
    lines = [
        "| data | model | forget | primal θ | dual θ | primal Δθ | dual Δθ | primal Δf | nothing θ | "
        "random Δθ | random Δf |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in accuracy:
        lines.append(
            f"| {r['data']} | {r['model']} ({r['params']:,}) | {r['forget']:.0%} | {r['primal_theta']:.1e} | "
            f"{r['dual_theta']:.1e} | {r['primal_delta']:.1e} | {r['dual_delta']:.1e} | "
            f"{r['primal_outputs']:.1e} | {r['nothing_theta']:.1e} | {r['random_delta']:.2f} | "
            f"{r['random_outputs']:.2f} |"
        )
    lines += [
        "",
        "| λ | width | parameters | forget | primal s | dual s | primal MB | dual MB | CG iterations (p/d) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    keyed = {(r.get("damping", LAMBDA), r["width"], r["forget"], r["form"]): r for r in cost}
    for damping, width, fraction in sorted({k[:3] for k in keyed}, key=lambda k: (-k[0], k[1], k[2])):
        p, d = keyed[(damping, width, fraction, "primal")], keyed[(damping, width, fraction, "dual")]
        dual_s = f"{d['seconds']:.2f}" if "seconds" in d else f"refused: {d['refused']}"
        lines.append(
            f"| {damping:g} | {width:,} | {p['params']:,} | {fraction:.0%} | {p['seconds']:.2f} | {dual_s} | "
            f"{p['peak_mb']:.0f} | {d['peak_mb']:.0f} | {p['iterations']}/{d.get('iterations', '-')} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    acc = sub.add_parser("accuracy")
    acc.add_argument("--data", nargs="*", default=list(DATASETS))
    acc.add_argument("--out", type=Path, required=True)
    cost = sub.add_parser("cost")
    cost.add_argument("--widths", nargs="*", type=int, default=[64, 256, 1024, 4096])
    cost.add_argument("--damping", type=float, default=LAMBDA)
    cost.add_argument("--out", type=Path, required=True)
    once = sub.add_parser("cost-once")
    once.add_argument("data")
    once.add_argument("width", type=int)
    once.add_argument("fraction", type=float)
    once.add_argument("form")
    once.add_argument("damping", type=float)
    md = sub.add_parser("markdown")
    md.add_argument("accuracy", type=Path)
    md.add_argument("cost", type=Path, nargs="+")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.command == "accuracy":
        rows = [r for name in args.data for r in accuracy_rows(name)]
        args.out.write_text(json.dumps(rows, indent=1))
    elif args.command == "cost":
        args.out.write_text(json.dumps(cost_rows(args.widths, args.damping), indent=1))
    elif args.command == "cost-once":
        print(json.dumps(cost_once(args.data, args.width, args.fraction, args.form, args.damping)))
    else:
        print(
            markdown(json.loads(args.accuracy.read_text()), [r for f in args.cost for r in json.loads(f.read_text())])
        )


if __name__ == "__main__":
    main()
