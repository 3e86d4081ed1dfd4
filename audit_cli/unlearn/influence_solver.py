"""Influence functions: the Newton step that removes examples from a trained model, in the
primal (parameter space) and the dual (kernel) form, for K stacked models at once.

The objective is ``(1/N) Σ_i ℓ(f(x_i; θ), y_i) + (λ/2) ‖θ − θ_p‖²`` with the model
linearised around its weights θ*: its Hessian is then the Gauss-Newton matrix
``G = (1/N) Σ_i J_iᵀ H_i J_i`` (exact for a model linear in θ, such as logistic
regression), ``J_i`` the Jacobian of example i's outputs and ``H_i`` the loss's Hessian in
output space. Removing the forget set F from a minimiser θ* moves it by the Newton step

    Δθ = (G_R + λI)⁻¹ g_F,    g_F = (1/N) Σ_{i∈F} J_iᵀ ∇_f ℓ_i,

because the retained objective's gradient at θ* is ``−g_F`` (the full one is zero there).
The normalisation stays 1/N: the retained model minimises
``(1/N) Σ_{i∈R} ℓ_i + (λ/2) ‖θ − θ_p‖²``, as in the seed paper ("Extending Kernel Trick to
Influence Functions"). The step needs no θ_p.

primal
    CG on ``(G_R + λI) Δθ = g_F`` with Gauss-Newton-vector products: per retain batch one
    jvp and one vjp (torch.func), never a matrix of the parameters' size. K models step
    together; each stops on its own residual.
dual
    The same step through the kernel ``K = J Jᵀ`` (size (N·C)², C outputs). With
    ``S = blockdiag(H_i / N)^{1/2}`` and ``v = (1/N) ∇_F ℓ`` (Woodbury's identity on the
    primal system): ``Δθ = Jᵀ Δα`` with ``Δα_F = v / λ``, ``Δα_R = −S z / λ`` and z solving
    ``(λI + S K_RR S) z = S K_RF v`` by CG. The seed's dual system
    ``[K_RR H_R K_RR + λ K_RR] Δα_R = …`` is this one multiplied through by K_RR; ours is
    symmetric, positive definite and conditioned like K rather than K², and needs no α*.
    The kernel is built from Jacobians of example chunks within a memory budget. It costs
    (N·C)²·P to build against a few N·P per primal CG iteration, so on CPU the primal
    won in every setting measured (docs/results.md) and ``auto`` means the primal.

Everything runs in float64: the step is a difference of nearby minimisers, and float32
products stall CG near a relative residual of 1e-5.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch.func import jacrev, jvp, vjp, vmap

from audit_cli.errors import UsageError

Loss = Literal["cross_entropy", "squared"]
Form = Literal["auto", "primal", "dual"]
FORMS = ("auto", "primal", "dual")
Params = dict[str, torch.Tensor]
Forward = Callable[[Params, Params, torch.Tensor], torch.Tensor]
"""f(parameters, buffers of K models (K, ...), inputs (K, b, ...)) -> outputs (K, b, C)."""


@dataclass(frozen=True)
class Examples:
    """Each of K models' examples, as rows (K, n) into one pool of inputs and targets
    (labels for cross-entropy, values (…, C) for squared error); gathered a chunk at a
    time in float64, so K models over a large pool never hold K copies of it."""

    x_pool: torch.Tensor
    y_pool: torch.Tensor
    rows: torch.Tensor

    @classmethod
    def stacked(cls, x: torch.Tensor, y: torch.Tensor) -> Examples:
        """From per-model inputs (K, n, ...) and targets (K, n, ...)."""
        k, n = x.shape[:2]
        return cls(x.reshape(k * n, *x.shape[2:]), y.reshape(k * n, *y.shape[2:]), torch.arange(k * n).reshape(k, n))

    @property
    def n(self) -> int:
        return self.rows.shape[1]

    @property
    def x(self) -> torch.Tensor:
        return self.x_pool[self.rows].to(torch.float64)

    @property
    def y(self) -> torch.Tensor:
        y = self.y_pool[self.rows]
        return y if not y.is_floating_point() else y.to(torch.float64)

    def model(self, k: int) -> Examples:
        return Examples(self.x_pool, self.y_pool, self.rows[k : k + 1])

    def chunks(self, size: int) -> Iterator[Examples]:
        for start in range(0, self.n, size):
            yield Examples(self.x_pool, self.y_pool, self.rows[:, start : start + size])


@dataclass(frozen=True)
class Solve:
    """What one CG run did, per model."""

    iterations: torch.Tensor
    """(K,) iterations each model took."""
    residual: torch.Tensor
    """(K,) final ‖r‖ / ‖b‖."""


@dataclass(frozen=True)
class Step:
    """The removal step of K models and how it was computed."""

    delta: Params
    """Δθ per parameter, (K, ...)."""
    form: Literal["primal", "dual"]
    solve: Solve
    kernel_bytes: int = 0
    """The dual's kernel size (0 for the primal)."""


@dataclass(frozen=True, eq=False)
class Problem:
    """K models and the examples each was trained on: what a removal step works on."""

    forward: Forward
    params: Params
    buffers: Params
    forget: Examples
    retain: Examples
    n_total: int
    """Examples each model was trained on (the 1/N of the objective)."""


@dataclass(frozen=True)
class Solver:
    """How a removal step is solved."""

    damping: float
    """λ of the L2 term."""
    loss: Loss = "cross_entropy"
    tol: float = 1e-8
    """CG stops at ``‖r‖ ≤ tol · ‖b‖``."""
    max_iter: int = 1000
    batch: int = 1024
    """Examples per Jacobian-vector product."""
    memory_bytes: int = 2**30
    """The dual's budget for its kernel and Jacobians."""


def cg(
    matvec: Callable[[torch.Tensor], torch.Tensor], b: torch.Tensor, *, tol: float, max_iter: int
) -> tuple[torch.Tensor, Solve]:
    """Conjugate gradients on K independent positive-definite systems ``A_k x_k = b_k``
    (b of shape (K, P)); model k stops once ``‖r_k‖ ≤ tol · ‖b_k‖`` (or after max_iter)."""
    x = torch.zeros_like(b)
    r = b.clone()
    p = r.clone()
    rs = (r * r).sum(1)
    b_norm = rs.sqrt()
    active = rs.sqrt() > tol * b_norm
    iterations = torch.zeros(b.shape[0], dtype=torch.long)
    for _ in range(max_iter):
        if not bool(active.any()):
            break
        ap = matvec(p)
        curvature = (p * ap).sum(1)
        alpha = torch.where(active, rs / torch.where(active, curvature, 1.0), 0.0)
        x += alpha[:, None] * p
        r -= alpha[:, None] * ap
        rs_new = (r * r).sum(1)
        beta = torch.where(active, rs_new / torch.where(active, rs, 1.0), 0.0)
        p = r + beta[:, None] * p
        rs = torch.where(active, rs_new, rs)
        iterations += active.long()
        active = active & (rs.sqrt() > tol * b_norm)
    residual = torch.where(b_norm > 0, rs.sqrt() / b_norm.clamp_min(1e-300), 0.0)
    return x, Solve(iterations, residual)


def flatten(params: Params) -> torch.Tensor:
    k = next(iter(params.values())).shape[0]
    return torch.cat([t.reshape(k, -1) for t in params.values()], dim=1)


def unflatten(flat: torch.Tensor, like: Params) -> Params:
    out, start = {}, 0
    for name, t in like.items():
        size = t[0].numel()
        out[name] = flat[:, start : start + size].reshape(t.shape[0], *t.shape[1:])
        start += size
    return out


def at(forward: Forward, buffers: Params, x: torch.Tensor) -> Callable[[Params], torch.Tensor]:
    """The outputs on ``x`` as a function of the parameters alone (what jvp and vjp take)."""
    return lambda p: forward(p, buffers, x)


def output_gradient(outputs: torch.Tensor, y: torch.Tensor, loss: Loss) -> torch.Tensor:
    """∇_f ℓ per example, (K, b, C)."""
    if loss == "squared":
        return outputs - y
    return torch.softmax(outputs, -1) - F.one_hot(y, outputs.shape[-1]).to(outputs.dtype)


def output_hessian_product(outputs: torch.Tensor, t: torch.Tensor, loss: Loss) -> torch.Tensor:
    """H_i t_i per example: the identity for squared error, ``diag(p) − p pᵀ`` for cross-entropy."""
    if loss == "squared":
        return t
    p = torch.softmax(outputs, -1)
    return p * t - p * (p * t).sum(-1, keepdim=True)


def output_hessian_sqrt(outputs: torch.Tensor, loss: Loss) -> torch.Tensor:
    """H_i^{1/2} per example, (K, b, C, C) (both Hessians are symmetric positive semidefinite)."""
    c = outputs.shape[-1]
    if loss == "squared":
        return torch.eye(c, dtype=outputs.dtype).expand(*outputs.shape[:-1], c, c)
    p = torch.softmax(outputs, -1)
    h = torch.diag_embed(p) - p[..., :, None] * p[..., None, :]
    values, vectors = torch.linalg.eigh(h)
    return vectors @ torch.diag_embed(values.clamp_min(0).sqrt()) @ vectors.transpose(-1, -2)


def loss_gradient(
    forward: Forward, params: Params, buffers: Params, data: Examples, loss: Loss, *, batch: int
) -> torch.Tensor:
    """Σ_i J_iᵀ ∇_f ℓ_i over ``data`` per model, flat (K, P) (not yet divided by N)."""
    total = torch.zeros_like(flatten(params))
    for part in data.chunks(batch):
        outputs, pullback = vjp(at(forward, buffers, part.x), params)
        total += flatten(pullback(output_gradient(outputs, part.y, loss))[0])
    return total


def ggn_product(
    forward: Forward, params: Params, buffers: Params, data: Examples, loss: Loss, v: torch.Tensor, *, batch: int
) -> torch.Tensor:
    """Σ_i J_iᵀ H_i J_i v over ``data`` per model (v and the result flat, (K, P))."""
    tangent = unflatten(v, params)
    total = torch.zeros_like(v)
    for part in data.chunks(batch):
        x = part.x
        with warnings.catch_warnings():
            # torch scripts its forward-AD decompositions on first use and warns that
            # torch.jit.script is deprecated: its business, not the user's.
            warnings.filterwarnings("ignore", message=".*torch.jit.script", category=FutureWarning)
            outputs, jv = jvp(at(forward, buffers, x), (params,), (tangent,))
        _, pullback = vjp(at(forward, buffers, x), params)
        total += flatten(pullback(output_hessian_product(outputs, jv, loss))[0])
    return total


def primal_step(p: Problem, solver: Solver) -> Step:
    """Δθ = (G_R + λI)⁻¹ g_F by CG over Gauss-Newton-vector products, K models at once."""
    g = loss_gradient(p.forward, p.params, p.buffers, p.forget, solver.loss, batch=solver.batch) / p.n_total

    def matvec(v: torch.Tensor) -> torch.Tensor:
        gv = ggn_product(p.forward, p.params, p.buffers, p.retain, solver.loss, v, batch=solver.batch)
        return gv / p.n_total + solver.damping * v

    flat, solve = cg(matvec, g, tol=solver.tol, max_iter=solver.max_iter)
    return Step(unflatten(flat, p.params), "primal", solve)


def kernel_bytes(n_forget: int, n_retain: int, outputs: int) -> int:
    """Memory of the dual's kernel blocks K_RR and K_RF (float64)."""
    m_r, m_f = n_retain * outputs, n_forget * outputs
    return 8 * m_r * (m_r + m_f)


class Jacobians:
    """J of one model on examples (1, n, ...), by chunks of examples, each (b·C, P): held
    once computed when ``keep`` (they fit the budget), recomputed on every use otherwise."""

    def __init__(self, forward: Forward, params: Params, buffers: Params, x: torch.Tensor, chunk: int, keep: bool):
        # Per example: C vector-Jacobian products over that example alone (jacrev of the
        # whole batch would run b·C products over all b examples).
        def outputs(p: Params, xi: torch.Tensor) -> torch.Tensor:
            return forward(p, buffers, xi[None, None])[0, 0]

        self._per_example = vmap(jacrev(outputs), in_dims=(None, 0))
        self._params, self._x, self._chunk = params, x[0], chunk
        self._held: dict[int, torch.Tensor] | None = {} if keep else None

    def __len__(self) -> int:
        return math.ceil(self._x.shape[0] / self._chunk)

    def __getitem__(self, i: int) -> torch.Tensor:
        if self._held is not None and i in self._held:
            return self._held[i]
        xs = self._x[i * self._chunk : (i + 1) * self._chunk]
        jac = self._per_example(self._params, xs)  # name -> (b, C, 1, ...)
        b, c = xs.shape[0], next(iter(jac.values())).shape[1]
        out = torch.cat([t.reshape(b * c, -1) for t in jac.values()], dim=1)
        if self._held is not None:
            self._held[i] = out
        return out


def kernel(rows: Jacobians, cols: Jacobians) -> torch.Tensor:
    """The empirical NTK block ``J_rows J_colsᵀ`` of one model, ((n_rows·C), (n_cols·C))."""
    blocks: list[list[torch.Tensor]] = [[] for _ in range(len(rows))]
    for i in range(len(rows)):
        ji = rows[i]
        for j in range(len(cols)):
            if cols is rows and j < i:
                blocks[i].append(blocks[j][i].T)  # symmetric: the lower triangle is a transpose
            else:
                blocks[i].append(ji @ cols[j].T)
    return torch.cat([torch.cat(r, dim=1) for r in blocks], dim=0)


def dual_step(p: Problem, solver: Solver) -> Step:
    """The same Δθ through the kernel, one model at a time (each has its own kernel)."""
    forward, params, buffers, forget, retain, n_total = p.forward, p.params, p.buffers, p.forget, p.retain, p.n_total
    damping, loss, memory_bytes = solver.damping, solver.loss, solver.memory_bytes
    k_models = forget.rows.shape[0]
    c = forward(params, buffers, next(forget.chunks(1)).x).shape[-1]
    size = kernel_bytes(forget.n, retain.n, c)
    if size > memory_bytes:
        raise UsageError(
            f"the dual form needs a {size / 2**30:.2f} GiB kernel ((N·C)² with N·C = {(forget.n + retain.n) * c}), "
            f"over the {memory_bytes / 2**30:.2f} GiB budget",
            hint="use --param form=primal, or raise --param memory_gb",
        )
    # The Jacobians are held when they fit in half of what the kernel leaves, otherwise
    # recomputed for every block that needs them. A chunk is computed with transients of a
    # few times its size (vmap's per-output products, the concatenation), so chunks are
    # kept to a tenth of what is left: measured, a held 3 GB of Jacobians peaked at 8 GB
    # when chunks were sized by the batch alone.
    per_example = 8 * c * flatten(params).shape[1]
    held = per_example * (forget.n + retain.n)
    keep = held <= (memory_bytes - size) // 2
    room = memory_bytes - size - (held if keep else 0)
    chunk = max(1, min(solver.batch, room // 10 // per_example))
    deltas, iterations, residuals = [], [], []
    for k in range(k_models):
        theta = {n: t[k : k + 1] for n, t in params.items()}
        buf = {n: t[k : k + 1] for n, t in buffers.items()}
        f_k, r_k = forget.model(k), retain.model(k)
        x_f, x_r = f_k.x, r_k.x
        v = output_gradient(forward(theta, buf, x_f), f_k.y, loss).reshape(-1) / n_total  # (m_f,)
        j_r = Jacobians(forward, theta, buf, x_r, chunk, keep)
        k_rr, k_rf = kernel(j_r, j_r), kernel(j_r, Jacobians(forward, theta, buf, x_f, chunk, keep))
        s_blocks = output_hessian_sqrt(forward(theta, buf, x_r)[0], loss) / math.sqrt(n_total)  # (n_r, C, C)

        def s(u: torch.Tensor, blocks: torch.Tensor = s_blocks) -> torch.Tensor:
            return (blocks @ u.reshape(-1, c, 1)).reshape(-1)

        def matvec(u: torch.Tensor, k_rr: torch.Tensor = k_rr, s: Callable = s) -> torch.Tensor:
            return damping * u + s(k_rr @ s(u[0]))[None]

        z, solve = cg(matvec, s(k_rf @ v)[None], tol=solver.tol, max_iter=solver.max_iter)
        alpha_r = -s(z[0]) / damping
        alpha_f = v / damping
        cotangent = torch.cat([alpha_r.reshape(1, r_k.n, c), alpha_f.reshape(1, f_k.n, c)], dim=1)
        x_all = torch.cat([x_r, x_f], dim=1)
        _, pullback = vjp(at(forward, buf, x_all), theta)
        deltas.append(flatten(pullback(cotangent)[0]))
        iterations.append(solve.iterations)
        residuals.append(solve.residual)
    delta = unflatten(torch.cat(deltas), params)
    return Step(delta, "dual", Solve(torch.cat(iterations), torch.cat(residuals)), kernel_bytes=size)


def choose_form(form: Form) -> Literal["primal", "dual"]:
    """auto is the primal. The seed's rule (the dual when the parameters outnumber N·C) was
    measured on CPU and lost everywhere: at N = 500, C = 10, widths 64 to 4,096, forget
    fractions 10% and 90%, λ = 0.01 and 1e-4, the dual took 1.5 to 160 times as long and
    19 to 50 times the memory of the primal (docs/results.md). Its kernel costs (N·C)²·P
    to build, the primal a few N·P per CG iteration, and CG needs tens to hundreds."""
    return "primal" if form == "auto" else form


def removal_step(
    forward: Forward,
    params: Params,
    buffers: Params,
    forget: Examples,
    retain: Examples,
    *,
    n_total: int,
    damping: float,
    loss: Loss = "cross_entropy",
    form: Form = "auto",
    tol: float = 1e-8,
    max_iter: int = 1000,
    batch: int = 1024,
    memory_bytes: int = 2**30,
) -> Step:
    """The Newton step removing ``forget`` from K models trained on ``forget`` + ``retain``
    (``n_total`` examples each), in the chosen form; refuses a solve that did not converge."""
    if not (damping > 0 and math.isfinite(damping)):
        raise UsageError(f"damping must be a positive number, got {damping}")
    chosen = choose_form(form)
    problem = Problem(forward, params, buffers, forget, retain, n_total)
    solver = Solver(damping, loss, tol, max_iter, batch, memory_bytes)
    step = primal_step(problem, solver) if chosen == "primal" else dual_step(problem, solver)
    worst = float(step.solve.residual.max())
    if worst > tol:
        raise UsageError(
            f"the {chosen} influence solve did not converge in {max_iter} iterations (relative residual {worst:.1e})",
            hint="raise --param max_iter or --param damping (a larger damping is a better-conditioned system)",
        )
    return step


def objective_gradient(
    forward: Forward,
    params: Params,
    buffers: Params,
    data: Examples,
    *,
    n_total: int,
    damping: float,
    center: Params,
    loss: Loss = "cross_entropy",
    batch: int = 1024,
) -> torch.Tensor:
    """∇ of ``(1/N) Σ_{data} ℓ + (λ/2) ‖θ − θ_p‖²`` per model, flat (K, P)."""
    return loss_gradient(forward, params, buffers, data, loss, batch=batch) / n_total + damping * (
        flatten(params) - flatten(center)
    )


def newton_fit(
    forward: Forward,
    params: Params,
    buffers: Params,
    data: Examples,
    *,
    n_total: int,
    damping: float,
    center: Params,
    loss: Loss = "cross_entropy",
    tol: float = 1e-10,
    max_steps: int = 50,
    batch: int = 1024,
) -> tuple[Params, float]:
    """Minimise ``(1/N) Σ_{data} ℓ + (λ/2) ‖θ − θ_p‖²`` for a model linear in θ (or
    linearised) by Newton's method with CG inner solves and step halving; returns the
    minimiser and the final relative gradient norm. What "retrained exactly" means for the
    linearised model: the reference the influence step is measured against."""

    def objective(p: Params) -> torch.Tensor:
        total = torch.zeros(flatten(p).shape[0], dtype=flatten(p).dtype)
        for part in data.chunks(batch):
            out = forward(p, buffers, part.x)
            if loss == "squared":
                total += 0.5 * ((out - part.y) ** 2).sum((1, 2))
            else:
                total += F.cross_entropy(out.transpose(1, 2), part.y, reduction="none").sum(1)
        return total / n_total + 0.5 * damping * ((flatten(p) - flatten(center)) ** 2).sum(1)

    theta = {n: t.clone() for n, t in params.items()}
    start_norm = float(
        objective_gradient(
            forward, theta, buffers, data, n_total=n_total, damping=damping, center=center, loss=loss, batch=batch
        ).norm()
    )
    relative = 1.0
    for _ in range(max_steps):
        grad = objective_gradient(
            forward, theta, buffers, data, n_total=n_total, damping=damping, center=center, loss=loss, batch=batch
        )
        relative = float(grad.norm()) / max(start_norm, 1e-300)
        if relative <= tol:
            break

        def matvec(v: torch.Tensor, at: Params = theta) -> torch.Tensor:
            return ggn_product(forward, at, buffers, data, loss, v, batch=batch) / n_total + damping * v

        direction, _ = cg(matvec, -grad, tol=1e-12, max_iter=2000)
        current, scale = objective(theta), 1.0
        while True:
            trial = unflatten(flatten(theta) + scale * direction, theta)
            if bool((objective(trial) <= current + 1e-4 * scale * (grad * direction).sum(1)).all()) or scale < 1e-6:
                break
            scale /= 2
        theta = trial
    return theta, relative
