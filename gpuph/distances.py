"""Wasserstein and bottleneck distances between persistence diagrams, exact and differentiable through ``pairs``.

**Where the work runs.** An optimal matching is a sequential combinatorial problem (augmenting paths) on at most a
few hundred points per image, too small and too branchy to keep a GPU busy, so it is solved exactly on the CPU and
only the finite ``(birth, death)`` values of the requested dimension are copied to the host (one transfer per call;
the images never are):

* Wasserstein: the C++ operator ``torch.ops.gpuph.wasserstein_matching`` solves all image pairs of a call in parallel
  (``at::parallel_for``). Per pair it keeps only the candidate edges ``||x - y||^p < d(x)^p + d(y)^p`` (any other
  pair is beaten by sending both points to the diagonal), splits them into connected components and solves each
  component as one rectangular assignment problem (shortest augmenting paths with potentials). Bars near the
  diagonal thus cost little, and small diagrams (MNIST digits: about ten H0 bars) take a few microseconds a pair.
  An assignment in floating point resolves costs only relative to its largest: where the optimum's p-th powers lie
  far below the long bars' (close diagrams at high orders: ``(1e-4)^10`` against 1), the pair is solved again in
  units of a scale bracketed between a lower bound of the distance and the best matching found, every term capped
  (a bisection of a few rounds), until the optimum is resolved; its cost is then summed in units of that scale.
* Bottleneck: a binary search over the candidate values with Hopcroft-Karp matchings from SciPy
  (``scipy.sparse.csgraph.maximum_bipartite_matching``), per image pair.

The cost of the matching found is then recomputed with torch on the diagrams' own device from the matched rows of
``pairs``, so the result is differentiable on any device: the gradient is that of the cost of the optimal matching,
held fixed (the matching is piecewise constant in the values). Without a gradient to keep, the host's sums are used.

**Conventions** (those of :func:`gudhi.wasserstein.wasserstein_distance` and :func:`gudhi.bottleneck_distance`,
whose values these functions reproduce):

* A point may be matched to the diagonal, at its distance ``|death - birth| * 2^(1/internal_p - 1)`` to it in the
  ``internal_p`` norm (half the lifetime for ``internal_p = inf``, the lifetime for ``internal_p = 1``).
* Points with an infinite coordinate are matched only among their own kind: ``(-inf, y)``, ``(x, +inf)`` and
  ``(-inf, +inf)`` in sublevel units, each kind by sorting its finite coordinate (optimal in one dimension), at cost
  ``|x - x'|`` whatever ``internal_p``. If an image pair has different numbers of points of one kind, its distance is
  ``inf``. Points with both coordinates infinite of the same sign (the essential class of a grid that is entirely
  ``+inf`` or ``-inf``) lie on the diagonal and cost nothing.
* Superlevel diagrams are compared on their values as given: negating both diagrams maps the diagonal to itself and
  preserves every distance, so ``W(a, b) == W(-a, -b)`` and no conversion is needed. (GUDHI expects
  ``birth <= death``: it agrees with these functions on ``-pairs`` of superlevel diagrams.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ._common import host_numpy
from ._ext import ops
from .diagrams import Diagrams

__all__ = ["bottleneck_distance", "pairwise_wasserstein", "wasserstein_distance"]

# Kinds of rows, in sublevel units (u0 <= u1).
_FINITE, _NEG_BIRTH, _POS_DEATH, _BOTH_INF, _ON_DIAGONAL = 0, 1, 2, 3, 4
_N_ESSENTIAL_KINDS = 3  # kinds 1..3 are matched among themselves; kind 4 costs nothing


# ---------------------------------------------------------------------------------------------- checks
def _check_diagrams(a: Diagrams, b: Diagrams, same_batch: bool) -> None:
    for name, d in (("a", a), ("b", b)):
        if not isinstance(d, Diagrams):
            raise TypeError(f"gpuph: {name} must be a gpuph.Diagrams, got {type(d).__name__}")
    if a.superlevel != b.superlevel:
        raise ValueError(
            "gpuph: cannot compare a superlevel with a sublevel diagram (a.superlevel="
            f"{a.superlevel}, b.superlevel={b.superlevel}); negate one side's filtration to compare them"
        )
    if same_batch and a.batch_size != b.batch_size:
        raise ValueError(
            f"gpuph: the diagrams are compared image by image and need the same batch size, got {a.batch_size} and "
            f"{b.batch_size} (pairwise_wasserstein compares every image of a with every image of b)"
        )
    if a.pairs.device != b.pairs.device:
        raise ValueError(f"gpuph: the diagrams are on different devices ({a.pairs.device} and {b.pairs.device})")


def _check_dim(a: Diagrams, b: Diagrams, dim) -> int:
    """``dim``, checked to be a dimension both sides hold (:meth:`~gpuph.Diagrams.check_dim`)."""
    return b.check_dim(a.check_dim(dim))


def _check_orders(p: float, internal_p: float) -> tuple[float, float]:
    for name, value in (("p", p), ("internal_p", internal_p)):
        if isinstance(value, (bool, str, bytes)):  # float() would read "2"
            raise ValueError(f"gpuph: the order {name} must be a number, got {value!r}")
    p, internal_p = float(p), float(internal_p)
    if not (1.0 <= p < math.inf):
        hint = " (use bottleneck_distance for p = inf)" if p == math.inf else ""
        raise ValueError(f"gpuph: the Wasserstein order p must satisfy 1 <= p < inf, got {p}{hint}")
    if not internal_p >= 1.0:  # also catches NaN
        raise ValueError(f"gpuph: internal_p (the ground norm) must be >= 1 or inf, got {internal_p}")
    return p, internal_p


# ---------------------------------------------------------------------------------------------- rows
@dataclass
class _Side:
    """One side's rows of one dimension in sublevel units (``u0 <= u1``), with each row's kind."""

    u: Tensor  # (N, 2), differentiable
    batch: Tensor  # (N,) int64
    kind: Tensor  # (N,) int64
    batch_size: int


def _side(dgm: Diagrams, dim: int, name: str) -> _Side:
    d = dgm.select(dim=dim)
    u = -d.pairs if dgm.superlevel else d.pairs
    u0, u1 = u.detach().unbind(1)
    if not bool((u1 >= u0).all()):  # also NaN; true for no pairs
        want = "birth >= death" if dgm.superlevel else "birth <= death"
        raise ValueError(f"gpuph: {name} has pairs with NaN or against its orientation (expected {want})")
    fin0, fin1 = torch.isfinite(u0), torch.isfinite(u1)
    kind = torch.full_like(d.batch, _ON_DIAGONAL)
    kind = torch.where(fin0 & fin1, _FINITE, kind)
    kind = torch.where((u0 == -math.inf) & fin1, _NEG_BIRTH, kind)
    kind = torch.where(fin0 & (u1 == math.inf), _POS_DEATH, kind)
    kind = torch.where((u0 == -math.inf) & (u1 == math.inf), _BOTH_INF, kind)
    return _Side(u=u, batch=d.batch, kind=kind, batch_size=dgm.batch_size)


def _essential_sorted(s: _Side) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Rows of kinds 1..3 sorted by (image, kind, finite coordinate): returns their finite coordinate (differentiable;
    0 for kind 3), image, kind, and the ``(B, 3)`` counts per image and kind."""
    ess = (s.kind >= _NEG_BIRTH) & (s.kind <= _BOTH_INF)
    u, batch, kind = s.u[ess], s.batch[ess], s.kind[ess]
    coord = torch.where(kind == _NEG_BIRTH, u[:, 1], u[:, 0])
    coord = torch.where(kind == _BOTH_INF, torch.zeros_like(coord), coord)  # -inf - -inf would be NaN
    order = torch.sort(coord.detach(), stable=True).indices
    order = order[torch.sort(batch[order] * _N_ESSENTIAL_KINDS + kind[order], stable=True).indices]
    counts = torch.bincount(
        batch * _N_ESSENTIAL_KINDS + kind - _NEG_BIRTH, minlength=s.batch_size * _N_ESSENTIAL_KINDS
    ).view(s.batch_size, _N_ESSENTIAL_KINDS)
    return coord[order], batch[order], kind[order], counts


def _essential_diffs(sa: _Side, sb: _Side) -> tuple[Tensor, Tensor, Tensor]:
    """Matched essential points of two same-size batches: ``|x - x'|`` per matched pair (differentiable), its image,
    and the ``(B,)`` mask of images whose essential parts differ in size (distance ``inf``)."""
    ca, ba, _, na = _essential_sorted(sa)
    cb, bb, _, nb = _essential_sorted(sb)
    mismatch = (na != nb).any(1)
    # With the mismatched images dropped, both sides hold the same (image, kind) groups in the same order.
    keep_a, keep_b = ~mismatch[ba], ~mismatch[bb]
    diff = (ca[keep_a] - cb[keep_b]).abs()
    return diff, ba[keep_a], mismatch


def _ground(delta: Tensor, internal_p: float) -> Tensor:
    if internal_p in (1.0, 2.0, math.inf):
        return torch.linalg.vector_norm(delta, ord=internal_p, dim=-1)
    # Of the ratios to the larger coordinate: |a|^q + |b|^q itself underflows or overflows for large q (0.02^400).
    # The larger is detached (a constant scale), its zeros read 1 (0 / 0), so that no NaN reaches the gradient.
    m = delta.detach().abs().amax(-1, keepdim=True)
    m = torch.where(m > 0, m, torch.ones_like(m))
    return torch.linalg.vector_norm(delta / m, ord=internal_p, dim=-1) * m.squeeze(-1)


def _to_diagonal(u: Tensor, internal_p: float) -> Tensor:
    return (u[:, 1] - u[:, 0]).abs() * 2.0 ** (1.0 / internal_p - 1.0)


def _max_norm_np(delta: np.ndarray) -> np.ndarray:
    """The bottleneck's ground norm (L-inf) of ``(..., 2)`` differences."""
    return np.abs(delta).max(-1)


def _half_lifetimes_np(x: np.ndarray) -> np.ndarray:
    """The L-inf distances of ``(n, 2)`` points to the diagonal."""
    return np.abs(x[:, 1] - x[:, 0]) / 2


def _finite_on_host(s: _Side) -> tuple[Tensor, Tensor, Tensor]:
    """The finite rows' positions in ``s`` grouped by image (on ``s``'s device), their values as a contiguous
    float64 ``(n, 2)`` CPU tensor, and the start of each image's group (``(B + 1,)`` int64, CPU)."""
    rows = torch.nonzero(s.kind == _FINITE).squeeze(1)
    batch = s.batch[rows]
    order = torch.sort(batch, stable=True).indices
    rows, batch = rows[order], batch[order]
    values = s.u.detach()[rows].to("cpu", torch.float64).contiguous()
    counts = torch.bincount(batch, minlength=s.batch_size).cpu()
    starts = torch.cat([counts.new_zeros(1), torch.cumsum(counts, 0)])
    return rows, values, starts


def _finite_costs(
    sa: _Side, sb: _Side, ia: Tensor, ib: Tensor, p: float, internal_p: float, dtype: torch.dtype, grad: bool,
    unit: float = 1.0,
) -> tuple[Tensor, Tensor]:
    """``(P,)`` optimal matching costs of the finite parts of images ``ia[k]`` of ``a`` and ``ib[k]`` of ``b`` (CPU
    int64 index vectors), and the ``(P,)`` scale of each (detached): a cost is the sum of the p-th powers of the
    values divided by ``unit`` times its scale (the host's scale is 1 unless the optimum was too small against the
    largest costs to be resolved in units of ``unit``). With ``grad``, the costs are recomputed with torch from the
    matched rows of ``pairs`` on their device (differentiable); otherwise they are the host's sums, moved there."""
    rows_a, xa, start_a = _finite_on_host(sa)
    rows_b, xb, start_b = _finite_on_host(sb)
    xa, xb = xa / unit, xb / unit  # exact: a power of two
    cost, scale, match_a, match_b = ops.wasserstein_matching(xa, start_a, xb, start_b, ia, ib, p, internal_p, grad)
    device = sa.u.device
    scale = scale.to(device=device, dtype=dtype)
    if not grad:
        return cost.to(device=device, dtype=dtype), scale

    def rows_of(start: Tensor, images: Tensor) -> tuple[Tensor, Tensor]:
        # For each problem in turn, the rows of its image: (problem, row position in the finite rows).
        n = start[1:][images] - start[:-1][images]
        # (NumPy: these index vectors live on the host; torch's CPU repeat_interleave starts a thread pool per call)
        problem = torch.from_numpy(np.repeat(np.arange(len(images)), host_numpy(n)))
        first = torch.cumsum(n, 0) - n
        return problem, start[:-1][images][problem] + torch.arange(int(n.sum())) - first[problem]

    prob_a, row_a = rows_of(start_a, ia)
    prob_b, row_b = rows_of(start_b, ib)
    ua, ub = sa.u.to(dtype) / unit, sb.u.to(dtype) / unit
    on_a = match_a >= 0
    partner = start_b[:-1][ib][prob_a[on_a]] + match_a[on_a]
    to_dev = lambda t: t.to(device)
    total = torch.zeros(len(ia), dtype=dtype, device=device)
    problem = to_dev(prob_a[on_a])
    delta = (ua[rows_a[to_dev(row_a[on_a])]] - ub[rows_b[to_dev(partner)]]) / scale[problem, None]
    total = total.index_add(0, problem, _ground(delta, internal_p).pow(p))
    alone_a, alone_b = ~on_a, match_b < 0
    for u, rows, prob, row, alone in ((ua, rows_a, prob_a, row_a, alone_a), (ub, rows_b, prob_b, row_b, alone_b)):
        problem = to_dev(prob[alone])
        to_diagonal = (_to_diagonal(u[rows[to_dev(row[alone])]], internal_p) / scale[problem]).pow(p)
        total = total.index_add(0, problem, to_diagonal)
    return total, scale


def _distances(diff: Tensor, problem: Tensor, finite: Tensor, scale: Tensor, p: float) -> Tensor:
    """``(P,)`` Wasserstein distances from the differences ``diff`` of matched essential points (in units of the
    call's unit; ``problem`` names each one's problem) and the finite parts' costs ``finite`` in units of ``scale``.
    Summed per problem in units of the larger of its scale and its largest essential difference, so that neither
    part overflows nor the finite part underflows against a scale far above it; multiplied back after the root."""
    largest = torch.zeros_like(scale).scatter_reduce(0, problem, diff.detach(), "amax", include_self=True)
    r = torch.maximum(scale, largest)
    r = torch.where((r > 0) & torch.isfinite(r), r, torch.ones_like(r))
    total = torch.zeros_like(scale).index_add(0, problem, (diff / r[problem]).pow(p))
    total = total + finite * (scale / r).pow(p)
    return _safe_root(total, p) * r


def _sum_dtype(device: torch.device) -> torch.dtype:
    """The dtype of the sums of p-th powers (and their root): float64 whatever the diagrams' dtype, since in float32
    they overflow for moderate values and orders (a lifetime of 200 with p = 20), giving inf for a finite distance;
    float32 on Apple's MPS, which has no float64."""
    return torch.float32 if device.type == "mps" else torch.float64


def _unit(sa: _Side, sb: _Side, essential: Tensor, dtype: torch.dtype) -> float:
    """A power of two near the largest cost a term of an optimal matching may have (at most it): the longest finite
    bar, or the largest difference of matched essential points (``essential``). The values are divided by it before
    the matching, so that no p-th power overflows there (a bar of 1e200 with p = 2, float32 values of 1e30 with
    p = 10); the host then finds each problem's own scale where the optimum is below what this one resolves.
    Exact: a power of two changes no bit of the values. One synchronisation on a GPU."""
    spans = [essential.detach().abs().reshape(-1).to(dtype)]
    for s in (sa, sb):
        u = s.u.detach().to(dtype)
        spans.append(torch.where(s.kind == _FINITE, u[:, 1] - u[:, 0], torch.zeros_like(u[:, 0])))
    spans = torch.cat(spans)
    largest = float(spans.amax()) if spans.numel() else 0.0
    if not 0 < largest < math.inf:
        return 1.0
    return math.ldexp(0.5, math.frexp(largest)[1])  # 2^e <= largest < 2^(e + 1)


def _safe_root(total: Tensor, p: float) -> Tensor:
    """``total ** (1/p)`` with gradient 0 (not NaN) at 0 (identical diagrams)."""
    positive = total > 0
    safe = torch.where(positive, total, torch.ones_like(total))
    return torch.where(positive, safe.pow(1.0 / p), total.detach())


# ---------------------------------------------------------------------------------------------- matchings
def _scipy_matching():
    try:
        from scipy.sparse import csr_matrix
        from scipy.sparse.csgraph import maximum_bipartite_matching
    except ImportError as exc:  # pragma: no cover - scipy is an optional dependency
        raise ImportError("gpuph: bottleneck_distance needs SciPy (pip install scipy)") from exc
    return csr_matrix, maximum_bipartite_matching


def _covers(adjacency: np.ndarray) -> bool:
    """Whether the bipartite graph has a matching that covers every row."""
    csr_matrix, maximum_bipartite_matching = _scipy_matching()

    if adjacency.shape[0] == 0:
        return True
    if not adjacency.any(1).all():
        return False
    return bool((maximum_bipartite_matching(csr_matrix(adjacency), perm_type="column") >= 0).all())


def _bottleneck_critical(x: np.ndarray, y: np.ndarray) -> tuple[str, int, int]:
    """The element of an optimal bottleneck matching of two finite, non-empty diagrams that attains the distance:
    ``("pair", i, j)``, ``("x", i, -1)`` (``x_i`` to the diagonal) or ``("y", -1, j)``.

    The distance is one of the candidate values (pair distances, distances to the diagonal); a binary search finds
    the smallest ``t`` for which a matching exists with every cost ``<= t``. At a threshold, points farther than ``t``
    from the diagonal must be matched to a point: by the Mendelsohn-Dulmage theorem a matching covering those of both
    sides exists if and only if one covers those of ``x`` and one covers those of ``y``, two Hopcroft-Karp runs.
    One matching of the full graph (with the diagonal copies) at the optimum then names the critical element.
    """
    csr_matrix, maximum_bipartite_matching = _scipy_matching()

    n, m = len(x), len(y)
    cost = _max_norm_np(x[:, None, :] - y[None, :, :])
    dx = _half_lifetimes_np(x)
    dy = _half_lifetimes_np(y)
    candidates = np.unique(np.concatenate([cost.ravel(), dx, dy]))

    def feasible(t: float) -> bool:
        edges = cost <= t
        return _covers(edges[dx > t]) and _covers(edges[:, dy > t].T)

    lo, hi = 0, len(candidates) - 1  # the largest candidate is always feasible (every point may go to the diagonal)
    while lo < hi:
        mid = (lo + hi) // 2
        if feasible(candidates[mid]):
            hi = mid
        else:
            lo = mid + 1
    t = candidates[lo]
    # Rows: x_0..x_{n-1}, then the diagonal copies of y; columns: y_0..y_{m-1}, then the diagonal copies of x.
    full = np.zeros((n + m, m + n), dtype=bool)
    full[:n, :m] = cost <= t
    full[np.arange(n), m + np.arange(n)] = dx <= t
    full[n + np.arange(m), np.arange(m)] = dy <= t
    full[n:, m:] = True
    match = maximum_bipartite_matching(csr_matrix(full), perm_type="column")
    if (match < 0).any():  # cannot happen if the search is right; never return a wrong value silently
        raise RuntimeError("gpuph: internal error: no perfect matching at the bottleneck threshold")
    best, where = -1.0, ("x", 0, -1)
    for i in range(n):
        j = match[i]
        v, w = (cost[i, j], ("pair", i, int(j))) if j < m else (dx[i], ("x", i, -1))
        if v > best:
            best, where = v, w
    for j in range(m):
        if match[n + j] == j and dy[j] > best:
            best, where = dy[j], ("y", -1, j)
    return where


# ---------------------------------------------------------------------------------------------- public API
def wasserstein_distance(
    a: Diagrams, b: Diagrams, dim: int, p: float = 2.0, internal_p: float = math.inf
) -> Tensor:
    r"""The order-``p`` Wasserstein distance between the diagrams of dimension ``dim`` of image ``i`` of ``a`` and image
    ``i`` of ``b``, for every ``i``:

    .. math::
        W_p(X, Y) = \Big(\min_{\gamma} \sum_{x \in X \cup \Delta} \|x - \gamma(x)\|_{q}^{p}\Big)^{1/p},

    over the bijections :math:`\gamma` between the points plus the diagonal :math:`\Delta` (each side's spare points go
    to the diagonal), ``q = internal_p``. Equal to ``gudhi.wasserstein.wasserstein_distance(X, Y, order=p,
    internal_p=q)`` (POT backend), essential classes included (see the module's conventions: they are matched
    among themselves by sorting, and a different number of them gives ``inf``).

    The matching is solved exactly on the CPU (see the module's notes) and its cost recomputed with torch on the
    diagrams' device, so the result is differentiable with respect to both diagrams' ``pairs`` (gradient 0 where
    the distance is 0 or ``inf``).

    Args:
        a, b: diagrams of two batches of the same size ``B``, both superlevel or both sublevel, on one device.
        dim: homology dimension compared.
        p: Wasserstein order, ``1 <= p < inf``. The p-th powers are summed in units of the distance's own scale,
            so that values of any magnitude neither overflow nor underflow (GUDHI's do: a bar of 1e200 with
            ``p = 2``), and the matching is resolved at that scale too (see the module's notes), so that high
            orders stay exact for close diagrams (orders in the thousands included, where ``W_p`` nears the
            bottleneck distance).
        internal_p: ground norm on the plane, ``>= 1`` (``inf``: the max norm, as GUDHI's default); any finite
            value is taken of the ratios to the larger coordinate, so that large ones do not underflow.

    Returns:
        ``(B,)`` tensor in the promoted dtype of ``a.pairs`` and ``b.pairs``, on their device.

    Raises:
        TypeError: ``a`` or ``b`` is not a :class:`~gpuph.Diagrams`.
        ValueError: different batch sizes, superlevel vs sublevel, different devices, ``p`` outside ``[1, inf)``,
            ``internal_p < 1``, a ``dim`` that ``a`` or ``b`` does not hold (:meth:`~gpuph.Diagrams.check_dim`: one
            not computed is an error, not an empty diagram), or pairs against their diagram's orientation (or NaN).
    """
    _check_diagrams(a, b, same_batch=True)
    dim = _check_dim(a, b, dim)
    p, internal_p = _check_orders(p, internal_p)
    sa, sb = _side(a, dim, "a"), _side(b, dim, "b")
    dtype = torch.promote_types(a.pairs.dtype, b.pairs.dtype)
    device = a.pairs.device
    B = a.batch_size
    acc = _sum_dtype(device)

    diff, img, mismatch = _essential_diffs(sa, sb)
    unit = _unit(sa, sb, diff, acc)

    grad = torch.is_grad_enabled() and (a.pairs.requires_grad or b.pairs.requires_grad)
    images = torch.arange(B)
    finite, scale = _finite_costs(sa, sb, images, images, p, internal_p, acc, grad, unit)
    out = (_distances(diff.to(acc) / unit, img, finite, scale, p) * unit).to(dtype)
    return torch.where(mismatch, torch.full_like(out, math.inf), out)


def bottleneck_distance(a: Diagrams, b: Diagrams, dim: int) -> Tensor:
    r"""The bottleneck distance :math:`\min_\gamma \max_x \|x - \gamma(x)\|_\infty` between the diagrams of dimension
    ``dim`` of image ``i`` of ``a`` and image ``i`` of ``b``, for every ``i``; points may be matched to the diagonal
    (at half their lifetime). Equal to ``gudhi.bottleneck_distance(X, Y, e=0)`` (GUDHI's exact mode; its default
    allows a small error), essential classes included (matched
    among themselves; a different number of them gives ``inf``).

    Exact: a binary search over the candidate values with bipartite matchings on the CPU (see the module's notes;
    needs SciPy). Per image pair it holds the ``n x m`` pair costs and one ``(n + m)^2`` bipartite graph: meant for
    diagrams of up to a few thousand points.
    The value is then recomputed with torch from the critical element of an optimal matching (a matched pair, or a
    point and the diagonal), so the gradient reaches the (at most four) values that set the distance.

    Args:
        a, b: diagrams of two batches of the same size ``B``, both superlevel or both sublevel, on one device.
        dim: homology dimension compared.

    Returns:
        ``(B,)`` tensor in the promoted dtype of ``a.pairs`` and ``b.pairs``, on their device.

    Raises:
        TypeError: ``a`` or ``b`` is not a :class:`~gpuph.Diagrams`.
        ValueError: different batch sizes, superlevel vs sublevel, different devices, a ``dim`` that ``a`` or ``b``
            does not hold, or pairs against their diagram's orientation (or NaN).
    """
    _check_diagrams(a, b, same_batch=True)
    dim = _check_dim(a, b, dim)
    sa, sb = _side(a, dim, "a"), _side(b, dim, "b")
    dtype = torch.promote_types(a.pairs.dtype, b.pairs.dtype)
    device = a.pairs.device
    B = a.batch_size
    ua, ub = sa.u.to(dtype), sb.u.to(dtype)

    diff, img, mismatch = _essential_diffs(sa, sb)
    values, images = [diff.to(dtype)], [img]

    rows_a, xa, start_a = _finite_on_host(sa)
    rows_b, xb, start_b = _finite_on_host(sb)
    xa, start_a, xb, start_b = (host_numpy(t) for t in (xa, start_a, xb, start_b))
    pair_a, pair_b, pair_img, diag_rows, diag_side, diag_img = ([] for _ in range(6))
    for i in range(B):
        x, y = xa[start_a[i] : start_a[i + 1]], xb[start_b[i] : start_b[i + 1]]
        if len(x) == 0 and len(y) == 0:
            continue
        if len(x) == 0 or len(y) == 0:  # everything goes to the diagonal: the longest bar sets the distance
            side, pts = (1, y) if len(x) == 0 else (0, x)
            diag_rows.append(int(np.argmax(_half_lifetimes_np(pts))) + (start_b if side else start_a)[i])
            diag_side.append(side)
            diag_img.append(i)
            continue
        kind, ix, jy = _bottleneck_critical(x, y)
        if kind == "pair":
            pair_a.append(ix + start_a[i])
            pair_b.append(jy + start_b[i])
            pair_img.append(i)
        else:
            diag_rows.append((ix + start_a[i]) if kind == "x" else (jy + start_b[i]))
            diag_side.append(0 if kind == "x" else 1)
            diag_img.append(i)

    def index(v: list[int]) -> Tensor:
        return torch.tensor(v, dtype=torch.int64, device=device)

    if pair_img:
        delta = ua[rows_a[index(pair_a)]] - ub[rows_b[index(pair_b)]]
        values.append(_ground(delta, math.inf))
        images.append(index(pair_img))
    if diag_img:
        side = np.asarray(diag_side)
        rows = np.asarray(diag_rows)
        for s, u, r in ((0, ua, rows_a), (1, ub, rows_b)):
            sel = np.flatnonzero(side == s)
            if len(sel):
                values.append(_to_diagonal(u[r[index(rows[sel].tolist())]], math.inf))
                images.append(index(np.asarray(diag_img)[sel].tolist()))
    out = torch.zeros(B, dtype=dtype, device=device)
    out = out.scatter_reduce(0, torch.cat(images), torch.cat(values), "amax", include_self=True)
    return torch.where(mismatch, torch.full_like(out, math.inf), out)


def pairwise_wasserstein(
    a: Diagrams, b: Diagrams, dim: int, p: float = 2.0, internal_p: float = math.inf
) -> Tensor:
    """The ``(Ba, Bb)`` matrix of :func:`wasserstein_distance` between every image of ``a`` and every image of ``b``
    (the distance matrices of MMD and coverage metrics of generative models).

    Same conventions, exactness and device placement as :func:`wasserstein_distance`; ``a`` and ``b`` may have
    different batch sizes. The ``Ba * Bb`` matchings are solved on the CPU in parallel (one C++ call); when no gradient
    is needed (``torch.no_grad()``, or neither ``pairs`` requires grad) the costs are summed on the host as well, and
    only the matrix is moved to the device. With gradients, the matched rows of all ``Ba * Bb`` problems are kept for
    the backward pass (memory grows with ``Ba * Bb`` times the number of points).

    Returns:
        ``(Ba, Bb)`` tensor in the promoted dtype of ``a.pairs`` and ``b.pairs``, on their device.

    Raises:
        as :func:`wasserstein_distance`, except that the batch sizes may differ.
    """
    _check_diagrams(a, b, same_batch=False)
    dim = _check_dim(a, b, dim)
    p, internal_p = _check_orders(p, internal_p)
    sa, sb = _side(a, dim, "a"), _side(b, dim, "b")
    dtype = torch.promote_types(a.pairs.dtype, b.pairs.dtype)
    Ba, Bb = a.batch_size, b.batch_size
    grad = torch.is_grad_enabled() and (a.pairs.requires_grad or b.pairs.requires_grad)

    acc = _sum_dtype(a.pairs.device)
    diffs, mismatch = _pairwise_essential(sa, sb, acc)
    unit = _unit(sa, sb, diffs, acc)

    ia = torch.from_numpy(np.repeat(np.arange(Ba, dtype=np.int64), Bb))
    ib = torch.from_numpy(np.tile(np.arange(Bb, dtype=np.int64), Ba))
    finite, scale = _finite_costs(sa, sb, ia, ib, p, internal_p, acc, grad, unit)
    K = diffs.shape[-1]
    problem = torch.arange(Ba * Bb, device=diffs.device).repeat_interleave(K)
    out = (_distances(diffs.reshape(-1) / unit, problem, finite, scale, p).view(Ba, Bb) * unit).to(dtype)
    return torch.where(mismatch, torch.full_like(out, math.inf), out)


def _pairwise_essential(sa: _Side, sb: _Side, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """``(Ba, Bb, K)`` differences ``|x - x'|`` of the matched essential points of every pair of images (padded with
    zeros; differentiable) and the ``(Ba, Bb)`` mask of pairs of images whose essential parts differ in size (their
    differences read 0: their distance is ``inf`` anyway)."""
    ca, ba, ka, na = _essential_sorted(sa)
    cb, bb, kb, nb = _essential_sorted(sb)
    mismatch = (na[:, None, :] != nb[None, :, :]).any(-1)
    Ba, Bb = sa.batch_size, sb.batch_size
    diffs = [torch.zeros(Ba, Bb, 0, dtype=dtype, device=sa.u.device)]
    for kind in (_NEG_BIRTH, _POS_DEATH):  # kind 3 costs nothing
        K = int(max(na[:, kind - 1].max() if Ba else 0, nb[:, kind - 1].max() if Bb else 0))
        if K == 0:
            continue
        padded = []
        for c, batch, k, n, size in ((ca, ba, ka, na, Ba), (cb, bb, kb, nb, Bb)):
            sel = k == kind
            group_start = torch.cumsum(n[:, kind - 1], 0) - n[:, kind - 1]
            pos = torch.arange(int(sel.sum()), device=c.device) - group_start[batch[sel]]
            padded.append(c.new_zeros(size, K).to(dtype).index_put((batch[sel], pos), c[sel].to(dtype)))
        # Pairs with equal counts have matching padding (zeros on both sides, difference 0).
        diffs.append((padded[0][:, None, :] - padded[1][None, :, :]).abs())
    diff = torch.cat(diffs, -1)
    return torch.where(mismatch[:, :, None], torch.zeros_like(diff), diff), mismatch
