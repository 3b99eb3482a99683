"""Topological regularisation of linear regression (the TopologyLayer paper's Figures 7-9), batched.

Penalties on a batch of weight vectors ``w`` of shape ``(..., p)`` (every leading axis is a batch axis; each returns
``(...)``, differentiable):

- ``l1``: :math:`\\sum_i |w_i|`; ``l2``: :math:`\\sum_i w_i^2`;
- ``tv`` (total variation): :math:`\\sum_i |w_{i+1} - w_i|`; ``smooth_tv``: :math:`(\\sum_i |w_{i+1} - w_i|^2)^{1/2}`;
- ``top1`` / ``top2``: :math:`E(1, 0, 2; PD_0)` / :math:`E(1, 0, 4; PD_0)`, the sum of the finite PD0 lifetimes
  except the 1 / 3 longest, in one of two settings:

  * ``"cluster"``: PD0 of the weak-Alpha filtration of the weights seen as ``p`` points on the line (penalises the
    number of clusters of values, :func:`line_weak_alpha_pd0`);
  * ``"maxima"``: superlevel PD0 of ``w`` as a signal on the line (``gpuph.cubical_persistence(w,
    spatial_dims=1, superlevel=True)``; penalises the number of local maxima).

  As in TopologyLayer, essential classes do not count (its barcode lengths set infinite bars to 0): ranks are taken
  among finite bars only, so ``top1`` leaves 2 clusters (maxima) free and ``top2`` leaves 4.

:func:`fit` minimises ``mean((y - X w)^2) + lam * penalty(w)`` for a whole batch of problems at once (all sample
sizes, seeds, cross-validation folds and lambdas in one tensor of weights) with Adam and a cosine learning-rate
decay; :func:`run_experiment` chooses lambda by K-fold cross-validation and reports the coefficient MSE.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..cubical import cubical_persistence
from ..losses import persistence_energy

__all__ = [
    "PENALTIES",
    "SETTINGS",
    "FitResult",
    "RegressionProblems",
    "fit",
    "l1_penalty",
    "l2_penalty",
    "line_weak_alpha_pd0",
    "make_problems",
    "penalty",
    "run_experiment",
    "smooth_tv_penalty",
    "top_penalty",
    "true_coefficients",
    "tv_penalty",
]

PENALTIES = ("none", "l1", "l2", "tv", "smooth_tv", "top1", "top2")
SETTINGS = ("cluster", "maxima")
TOP_I0 = {"top1": 2, "top2": 4}


def _check_weights(w: Tensor) -> Tensor:
    if not isinstance(w, Tensor):
        raise TypeError(f"gpuph: weights must be a torch tensor, got {type(w).__name__}")
    if not w.is_floating_point():
        raise TypeError(f"gpuph: weights must be a floating-point tensor, got {w.dtype}")
    if w.dim() < 1:
        raise ValueError("gpuph: weights must have at least one axis (the p coefficients last)")
    return w


def l1_penalty(w: Tensor) -> Tensor:
    """:math:`\\sum_i |w_i|` over the last axis: ``(..., p) -> (...)``."""
    return _check_weights(w).abs().sum(-1)


def l2_penalty(w: Tensor) -> Tensor:
    """:math:`\\sum_i w_i^2` (squared norm, ridge) over the last axis: ``(..., p) -> (...)``."""
    return _check_weights(w).square().sum(-1)


def tv_penalty(w: Tensor) -> Tensor:
    """Total variation :math:`\\sum_i |w_{i+1} - w_i|` over the last axis: ``(..., p) -> (...)``."""
    return _check_weights(w).diff(dim=-1).abs().sum(-1)


def smooth_tv_penalty(w: Tensor) -> Tensor:
    """:math:`(\\sum_i |w_{i+1} - w_i|^2)^{1/2}` over the last axis: ``(..., p) -> (...)``. Its gradient at a
    constant ``w`` (where the square root is not differentiable) is taken as 0 rather than NaN."""
    sq = _check_weights(w).diff(dim=-1).square().sum(-1)
    positive = sq > 0
    return torch.where(positive, torch.where(positive, sq, torch.ones_like(sq)).sqrt(), sq)


def line_weak_alpha_pd0(w: Tensor) -> Tensor:
    """Finite PD0 of the weak-Alpha filtration of ``p`` points on the line, batched: ``(..., p) -> (..., p-1, 2)``.

    In 1D the Delaunay graph joins consecutive sorted values, and an edge enters the weak-Alpha (flag of Delaunay,
    edge length) filtration at its length. All points are born at 0, so Kruskal's algorithm on the path gives
    exactly one finite class ``(0, gap)`` per gap between consecutive sorted values, plus one essential class
    ``(0, inf)`` (not returned). This equals the finite H0 part of ``gpuph.weak_alpha_persistence(w[..., None])``,
    except that zero gaps (repeated values) give ``(0, 0)`` rows here where diagrams drop zero-length pairs.

    Rows are sorted by lifetime, longest first. Differentiable: the gradient of a gap reaches the two weights
    bounding it (through ``torch.sort``).
    """
    w = _check_weights(w)
    gaps = w.sort(dim=-1).values.diff(dim=-1).sort(dim=-1, descending=True).values
    return torch.stack([torch.zeros_like(gaps), gaps], -1)


def top_penalty(w: Tensor, i0: int, setting: str = "cluster") -> Tensor:
    """:math:`E(1, 0, i_0; PD_0)` over the finite bars of each weight vector: ``(..., p) -> (...)``.

    Args:
        w: weights ``(..., p)``, floating point.
        i0: first rank (1-based, longest first) summed: 2 for Top1, 4 for Top2.
        setting: ``"cluster"`` (weak-Alpha PD0 of the values as a point cloud on the line,
            :func:`line_weak_alpha_pd0`) or ``"maxima"`` (superlevel cubical PD0 of ``w`` as a 1D signal).

    Raises:
        ValueError: an unknown setting or ``i0 < 1``.
    """
    w = _check_weights(w)
    if isinstance(i0, bool) or int(i0) != i0 or i0 < 1:
        raise ValueError(f"gpuph: i0 must be an integer >= 1, got {i0!r}")
    if setting == "cluster":
        gaps = line_weak_alpha_pd0(w)[..., 1]
        return gaps[..., int(i0) - 1 :].sum(-1)
    if setting == "maxima":
        if w.shape[-1] == 0:  # no coefficients, no bars (an empty grid is an error for cubical_persistence)
            return w.sum(-1)
        flat = w.reshape(-1, w.shape[-1])
        dgm = cubical_persistence(flat, spatial_dims=1, superlevel=True, dims=0).finite()
        return persistence_energy(dgm, dim=0, p=1.0, q=0.0, i0=int(i0), reduction="none").reshape(w.shape[:-1])
    raise ValueError(f"gpuph: setting must be one of {SETTINGS}, got {setting!r}")


def penalty(name: str, w: Tensor, setting: str = "cluster") -> Tensor:
    """The penalty ``name`` (one of :data:`PENALTIES` but ``"none"``) of ``w``: ``(..., p) -> (...)``."""
    if name == "l1":
        return l1_penalty(w)
    if name == "l2":
        return l2_penalty(w)
    if name == "tv":
        return tv_penalty(w)
    if name == "smooth_tv":
        return smooth_tv_penalty(w)
    if name in TOP_I0:
        return top_penalty(w, TOP_I0[name], setting)
    raise ValueError(f"gpuph: penalty must be one of {PENALTIES[1:]}, got {name!r}")


# ---------------------------------------------------------------------------------------------------- problems
def true_coefficients(kind: str, p: int, generator: torch.Generator) -> Tensor:
    """beta* of length ``p`` (float64): ``"pm1"`` entries uniform in {-1, 0, 1}, ``"123"`` in {1, 2, 3}, or
    ``"sawtooth"``: three linear ramps, each followed by a drop (three local maxima): ramps of ``ceil(p / 3)`` values
    from 0 to 1, the last cut at ``p`` (so it may end below 1; ``p = 100``: 34, 34 and 32 values).

    Raises:
        ValueError: an unknown ``kind``; a sawtooth of ``p`` < 8 other than 6 (its third ramp would hold fewer than
        two values: no third maximum).
    """
    if kind == "pm1":
        return torch.randint(-1, 2, (p,), generator=generator).double()
    if kind == "123":
        return torch.randint(1, 4, (p,), generator=generator).double()
    if kind == "sawtooth":
        period = math.ceil(p / 3)
        if p - 2 * period < 2:  # a third ramp of one value (or none) is no third maximum
            raise ValueError(f"gpuph: the sawtooth's three ramps need p = 6 or p >= 8 coefficients, got {p}")
        i = torch.arange(p, dtype=torch.float64)
        return (i % period) / (period - 1)
    raise ValueError(f"gpuph: unknown coefficient kind {kind!r}; use 'pm1', '123' or 'sawtooth'")


@dataclass
class RegressionProblems:
    """``S`` regression problems (one per seed) with ``n_max`` samples each; a problem of size ``n`` uses the first
    ``n`` rows. ``X (S, n_max, p)``, ``y (S, n_max)``, ``beta (S, p)``, float64."""

    X: Tensor
    y: Tensor
    beta: Tensor


def make_problems(kind: str, seeds: list[int], n_max: int = 150, p: int = 100, noise: float = 0.05,
                  device: torch.device | str = "cpu") -> RegressionProblems:
    """``y = X beta* + eps`` with ``X ~ N(0, I)``, ``eps ~ N(0, noise^2)``, one problem per seed (reproducible on
    the CPU generator, then moved to ``device``). The rows depend on ``n_max`` as well as the seed (torch draws a
    tensor's normal values as a whole): compare problems of size ``n`` across runs at the same ``n_max``."""
    Xs, ys, bs = [], [], []
    for s in seeds:
        g = torch.Generator().manual_seed(int(s))
        beta = true_coefficients(kind, p, g)
        X = torch.randn(n_max, p, generator=g, dtype=torch.float64)
        y = X @ beta + noise * torch.randn(n_max, generator=g, dtype=torch.float64)
        Xs.append(X)
        ys.append(y)
        bs.append(beta)
    return RegressionProblems(torch.stack(Xs).to(device), torch.stack(ys).to(device), torch.stack(bs).to(device))


# ---------------------------------------------------------------------------------------------------- fitting
@dataclass
class FitResult:
    """Weights ``(G, M, p)`` and convergence diagnostics: ``objective (G, M)`` at the end and ``rel_change (G, M)``,
    the decrease of the objective over the last 10% of the steps as a fraction of its whole decrease from ``w = 0``
    (near 0: converged, or at least stalled)."""

    weights: Tensor
    objective: Tensor
    rel_change: Tensor


def fit(X: Tensor, y: Tensor, row_weight: Tensor, lam: Tensor, name: str, setting: str = "cluster",
        steps: int = 600, lr: float = 0.05, dtype: torch.dtype = torch.float32, progress=None) -> FitResult:
    """Minimise ``sum_r m_r (y_r - X_r w)^2 / sum_r m_r + lam * penalty(w)`` for a batch of problems with Adam.

    Problems come in ``G`` groups that share a design matrix, ``M`` problems a group (folds, lambdas, sample
    sizes: they differ by their row mask and lambda).

    Args:
        X: ``(G, n, p)`` designs.
        y: ``(G, n)`` targets.
        row_weight: ``(G, M, n)`` 0/1 mask of the rows each problem uses (padding and held-out folds are 0).
        lam: ``(G, M)`` penalty weights.
        name: penalty (one of :data:`PENALTIES` but ``"none"``).
        setting: ``"cluster"`` or ``"maxima"`` (for ``top1``/``top2``).
        steps, lr: Adam steps and initial learning rate (cosine decay to ``lr / 100``).
        dtype: working dtype.
        progress: optional callable ``progress(k)`` (a tqdm ``update``).

    Returns:
        :class:`FitResult` with weights ``(G, M, p)``.

    Adam acts elementwise, so a batch of problems minimised through the sum of their objectives gives each problem
    exactly the trajectory it would have alone. Weights start at 0.
    """
    if X.dim() != 3 or y.shape != X.shape[:2] or row_weight.dim() != 3 or row_weight.shape[::2] != X.shape[:2]:
        raise ValueError(f"gpuph: expected X (G, n, p), y (G, n), row_weight (G, M, n); got {tuple(X.shape)}, "
                         f"{tuple(y.shape)}, {tuple(row_weight.shape)}")
    G, n, p = X.shape
    M = row_weight.shape[1]
    if lam.shape != (G, M):
        raise ValueError(f"gpuph: lam must have shape (G, M) = {(G, M)}, got {tuple(lam.shape)}")
    X, y, m, lam = X.to(dtype), y.to(dtype), row_weight.to(dtype), lam.to(dtype)
    Xt = X.transpose(1, 2)
    denom = m.sum(-1).clamp_min(1)
    w = torch.zeros(G, M, p, dtype=dtype, device=X.device, requires_grad=True)
    opt = torch.optim.Adam([w], lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * t / steps)))
    tail = max(1, steps // 10)
    history = None
    initial = None

    def objective() -> Tensor:
        r = y[:, None, :] - torch.bmm(w, Xt)  # (G, M, n)
        return (m * r.square()).sum(-1) / denom + lam * penalty(name, w, setting)

    for t in range(steps):
        opt.zero_grad(set_to_none=True)
        obj = objective()
        if t == 0:
            initial = obj.detach()
        obj.sum().backward()
        opt.step()
        sched.step()
        if t == steps - tail:
            history = obj.detach()
        if progress is not None:
            progress(1)
    with torch.no_grad():
        final = objective()
    start = history if history is not None else final
    initial = initial if initial is not None else final
    rel = (start - final).abs() / (initial - final).abs().clamp_min(1e-12)
    return FitResult(w.detach(), final, rel)


def min_norm_lstsq(X: Tensor, y: Tensor) -> Tensor:
    """Least squares, the minimum-norm solution when underdetermined: ``(..., n, p), (..., n) -> (..., p)``."""
    return (torch.linalg.pinv(X) @ y.unsqueeze(-1)).squeeze(-1)


def run_experiment(problems: RegressionProblems, ns: list[int], name: str, setting: str = "cluster",
                   lambdas: Tensor | None = None, folds: int = 5, steps: int = 600, lr: float = 0.05,
                   progress=None) -> dict:
    """Fit every (n, seed) problem with penalty ``name``, lambda chosen by ``folds``-fold cross-validation.

    Everything is one batch of weight vectors, ``(len(ns), S, folds + 1, len(lambdas), p)``: the ``folds``
    cross-validation fits plus the fit on all ``n`` samples for every lambda. Rows of problem ``n`` are assigned to
    folds round-robin. For ``"none"`` it is the minimum-norm least-squares solution (no lambda).

    Returns:
        a dict with ``mse (len(ns), S)`` (mean squared error of beta-hat against beta*), ``lam (len(ns), S)`` the
        chosen lambdas, ``cv_error (len(ns), S, L)``, ``rel_change`` (the largest share of the objective's decrease
        made in the last 10% of the Adam steps, among the chosen fits) and ``weights (len(ns), S, p)``; all on the
        CPU, float64.
    """
    X, y, beta = problems.X, problems.y, problems.beta
    S, n_max, p = X.shape
    dev = X.device
    ns_t = torch.tensor(ns, device=dev)
    if name == "none":
        W = torch.stack([min_norm_lstsq(X[:, :n], y[:, :n]) for n in ns])  # (Nn, S, p)
        mse = (W - beta).square().mean(-1)
        zeros = torch.zeros(len(ns), S, dtype=torch.float64)
        return {"mse": mse.cpu(), "lam": zeros, "cv_error": zeros[..., None], "rel_change": 0.0, "weights": W.cpu()}
    if lambdas is None:
        lambdas = torch.logspace(-4, 1, 11, dtype=torch.float64)
    lambdas = lambdas.to(dev)
    L = len(lambdas)
    rows = torch.arange(n_max, device=dev)
    in_n = rows[None, :] < ns_t[:, None]  # (Nn, n_max)
    fold_of = rows % folds
    fold_ids = torch.arange(folds + 1, device=dev)  # fold `folds` is the full fit
    held = fold_of[None, :] == fold_ids[:, None]  # (F+1, n_max); the last row is all False
    train = in_n[:, None, :] & ~held[None]  # (Nn, F+1, n_max)
    Nn, F1 = len(ns), folds + 1
    m = train[:, :, None, :].expand(Nn, F1, L, n_max).reshape(1, Nn * F1 * L, n_max).expand(S, -1, -1)
    lam = lambdas.expand(Nn, F1, L).reshape(1, -1).expand(S, -1)
    res = fit(X, y, m, lam, name, setting, steps=steps, lr=lr, progress=progress)
    W = res.weights.double().reshape(S, Nn, F1, L, p).transpose(0, 1)  # (Nn, S, F+1, L, p)
    rel_change = res.rel_change.reshape(S, Nn, F1, L).transpose(0, 1)
    # validation error of each CV fit on its held-out rows (within the first n)
    pred = (X[None, :, None, None] @ W[:, :, :folds].unsqueeze(-1)).squeeze(-1)  # (Nn, S, F, L, n_max)
    val = (in_n[:, None, :] & held[None, :folds])[:, None, :, None, :]  # (Nn, 1, F, 1, n_max)
    sq = (y[None, :, None, None] - pred).square() * val
    cv = sq.sum((2, -1)) / val.sum((2, -1)).clamp_min(1)  # (Nn, S, L)
    best = cv.argmin(-1)  # (Nn, S)
    idx = best[..., None, None].expand(len(ns), S, 1, p)
    W_best = W[:, :, folds].gather(2, idx).squeeze(2)  # (Nn, S, p)
    mse = (W_best - beta).square().mean(-1)
    rel = rel_change[:, :, folds].gather(2, best[..., None]).max()
    return {"mse": mse.cpu(), "lam": lambdas[best].cpu(), "cv_error": cv.cpu(), "rel_change": float(rel),
            "weights": W_best.cpu()}
