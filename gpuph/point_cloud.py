"""Persistent homology (H0, H1, H2) of point clouds: the Vietoris-Rips filtration and the weak Alpha filtration (the
flag complex of the Delaunay graph, or the Delaunay complex itself), filtered by edge length, batched and
differentiable."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
import torch
from torch import Tensor

from ._common import dims_mask, host_numpy, mask_dims
from ._ext import ops
from .cubical import _as_tensor
from .delaunay import delaunay_edges, delaunay_simplices
from .diagrams import ComplexDiagrams
from .lower_star import ClosedComplex, prepare_complex
from .spanning_forest import minimum_spanning_forest

__all__ = ["flag_persistence", "rips_persistence", "weak_alpha_persistence"]

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
MAX_DIM = 2
_DIMS_ERROR = "point-cloud persistence computes homology dimensions 0, 1 and 2 only, got {k}"


# ---------------------------------------------------------------------------------------------- input
def _one_cloud(c, what: str) -> Tensor:
    t = _as_tensor(c)
    if t.is_complex() or not t.is_floating_point() or t.dtype not in FLOAT_DTYPES:
        raise TypeError(
            f"gpuph: {what} must be float16, bfloat16, float32 or float64 coordinates, got {t.dtype} "
            "(convert integer coordinates with .float())"
        )
    return t


def _as_clouds(points) -> tuple[Tensor, list[int], tuple[int, ...]]:
    """``(B, N, D)`` float32/float64 tensor (differentiable; zero-padded for a list of clouds), the number of
    points of each cloud and the batch shape."""
    if isinstance(points, (list, tuple)):
        clouds = [_one_cloud(c, f"cloud {i}") for i, c in enumerate(points)]
        for i, c in enumerate(clouds):
            if c.dim() != 2:
                raise ValueError(f"gpuph: cloud {i} of the list must be (N_i, D), got shape {tuple(c.shape)}")
        if not clouds:
            return torch.zeros(0, 0, 1), [], (0,)
        dims = {int(c.shape[1]) for c in clouds}
        if len(dims) > 1:
            raise ValueError(f"gpuph: the clouds of a list must share their dimension D, got {sorted(dims)}")
        devices = {c.device for c in clouds}
        if len(devices) > 1:
            raise ValueError(f"gpuph: the clouds of a list must be on one device, got {sorted(map(str, devices))}")
        dtype = clouds[0].dtype
        for c in clouds[1:]:
            dtype = torch.promote_types(dtype, c.dtype)
        sizes = [int(c.shape[0]) for c in clouds]
        n = max(sizes)
        x = torch.stack([torch.nn.functional.pad(c.to(dtype), (0, 0, 0, n - c.shape[0])) for c in clouds])
        batch_shape = (len(clouds),)
    else:
        x = _one_cloud(points, "points")
        if x.dim() < 2:
            raise ValueError(
                f"gpuph: points must be (N, D), (B, N, D) or a list of (N_i, D) clouds, got shape {tuple(x.shape)}"
            )
        batch_shape = tuple(int(s) for s in x.shape[:-2])
        x = x.reshape(math.prod(batch_shape), x.shape[-2], x.shape[-1])
        sizes = [int(x.shape[1])] * int(x.shape[0])
    if x.shape[-1] == 0:
        raise ValueError("gpuph: the points have D = 0 coordinates; a point cloud needs D >= 1")
    if x.dtype in (torch.float16, torch.bfloat16):
        x = x.float()  # exact upcast; distances are computed in float32
    return x, sizes, batch_shape  # finiteness is checked with the scale (_unit_scale), in the same transfer


def _threshold(max_edge_length) -> float:
    if isinstance(max_edge_length, (bool, str, bytes)):
        raise TypeError(f"gpuph: max_edge_length must be a number, got {type(max_edge_length).__name__}")
    try:
        t = float(max_edge_length)
    except (TypeError, ValueError):
        raise TypeError(f"gpuph: max_edge_length must be a number, got {type(max_edge_length).__name__}") from None
    if math.isnan(t) or t < 0:
        raise ValueError(f"gpuph: max_edge_length must be >= 0 (or inf), got {max_edge_length}")
    return t


def _threshold_in(dtype: torch.dtype, thr: float) -> float:
    """The largest ``dtype`` value ``<= thr``: a ``dtype`` distance compared with it on the device (where torch
    compares in ``dtype``) is kept exactly when it is kept by the engine, which compares in float64 (a float32
    distance of 0.1000000015 is past a threshold of 0.1, though float32(0.1) is that distance)."""
    if dtype == torch.float64 or math.isinf(thr):
        return thr
    t = torch.tensor(thr, dtype=torch.float64).to(dtype)
    if float(t) > thr:
        t = torch.nextafter(t, torch.tensor(-math.inf, dtype=dtype))
    return float(t)


def _sizes_tensor(sizes: Sequence[int]) -> Tensor:
    return torch.tensor(list(sizes), dtype=torch.int64)


def _diagrams(pairs, rows, B, N, batch_shape, construction, end, mask) -> ComplexDiagrams:
    return ComplexDiagrams(
        pairs=pairs,
        dim=rows[:, 1],
        batch=rows[:, 0],
        birth_index=rows[:, 2],
        death_index=rows[:, 3],
        batch_size=B,
        spatial_shape=(N, N),
        superlevel=False,
        construction=construction,
        batch_shape=batch_shape,
        filtration_end=end,
        maxdim=max(1, mask.bit_length() - 1),  # (0, 1) without H2, as before H2 was supported
        dims=mask_dims(mask),
    )


# ---------------------------------------------------------------------------------------------- Rips
def pairwise_distances(x: Tensor) -> Tensor:
    """``(B, N, N)`` Euclidean distances ``sqrt(sum_d (x_i - x_j)^2)`` of ``(B, N, D)`` points, differentiable
    (zero distances, e.g. of repeated points, get a zero gradient, not NaN). The formula of
    ``torch.cdist(..., compute_mode="donot_use_mm_for_euclid_dist")``: exact differences, no ``|x|^2 - 2 x.y``
    expansion, so that equal points are at distance exactly 0 and the matrix is exactly symmetric. A cloud of
    extreme magnitude is scaled by a power of two first (exact: the same bits as without it), so that no square
    overflows or underflows. One synchronisation on a GPU (:func:`_unit_scale`). Raises ``ValueError`` for NaN or
    infinite coordinates."""
    return _cdist(x, _scale_of(x))


def _scale_of(x: Tensor) -> Tensor | None:
    """:func:`_unit_scale` of ``(B, N, D)`` clouds; None (nothing to scale) when ``B`` or ``N`` is 0."""
    return None if x.shape[0] == 0 or x.shape[1] == 0 else _unit_scale(x)


def _cdist(x: Tensor, scale: Tensor | None) -> Tensor:
    """The distance matrices of :func:`pairwise_distances`, each cloud divided by its ``scale`` first."""
    if scale is None:  # still from x when empty, so the result joins its graph
        return torch.cdist(x, x, compute_mode="donot_use_mm_for_euclid_dist")
    y = x / scale[:, None, None]
    return torch.cdist(y, y, compute_mode="donot_use_mm_for_euclid_dist") * scale[:, None, None]


class _CriticalLengths(torch.autograd.Function):
    """The lengths ``|x[c, i] - x[c, j]|`` of chosen edges of clouds ``x`` ``(B, N, D)``, as gathered from the
    distance matrix the C++ operator ordered (``values``, bit for bit), differentiable in ``x`` to any order.

    The backward (and the forward-mode ``jvp``) is written with differentiable torch ops on the critical edges
    only: ``O(K D)`` work for ``K`` edges instead of the ``O(B N^2 D)`` of ``torch.cdist``'s backward, whose own
    derivative torch does not implement (so double backward, ``torch.func.hessian`` and gradient penalties work).
    """

    generate_vmap_rule = True  # for torch.func.jacfwd / hessian, which vmap the jvp

    @staticmethod
    def forward(x: Tensor, scale: Tensor | None, c: Tensor, i: Tensor, j: Tensor, values: Tensor) -> Tensor:
        return values.clone()

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        x, scale, c, i, j, _ = inputs
        ctx.save_for_backward(x, scale, c, i, j)
        ctx.save_for_forward(x, scale, c, i, j)

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, scale, c, i, j = ctx.saved_tensors
        g = grad[:, None] * _edge_directions(x, scale, c, i, j)
        gx = torch.zeros_like(x).index_put((c, i), g, accumulate=True).index_put((c, j), -g, accumulate=True)
        return gx, None, None, None, None, None

    @staticmethod
    def jvp(ctx, x_t: Tensor, *_) -> Tensor:
        x, scale, c, i, j = ctx.saved_tensors
        return (_edge_directions(x, scale, c, i, j) * (x_t[c, i] - x_t[c, j])).sum(1)


def _edge_directions(x: Tensor, scale: Tensor | None, c: Tensor, i: Tensor, j: Tensor) -> Tensor:
    """``(K, D)`` unit vectors ``(x_i - x_j) / |x_i - x_j|`` of the edges (zero for zero-length edges, not NaN, at
    every order), from the scaled coordinates where the cloud is scaled, so that no square overflows."""
    diff = x[c, i] - x[c, j]
    if scale is not None:
        diff = diff / scale[c, None]
    sq = (diff * diff).sum(1, keepdim=True)
    pos = sq > 0
    return torch.where(pos, diff / torch.where(pos, sq, torch.ones_like(sq)).sqrt(), torch.zeros_like(diff))


# The range of a cloud's largest |coordinate| in which distances are taken unscaled, per dtype: no square of a
# difference (nor their sum over up to 2^20 axes) overflows, and differences down to 2^-23 (2^-52) of the largest
# coordinate (its ulp) keep normal squares. Finer detail near 0 (differences below ~1e-19 in float32, whatever the
# cloud's size) has squares that underflow, scaled or not past this range.
_SAFE_MAGNITUDE = {torch.float32: (2.0**-30, 2.0**30), torch.float64: (2.0**-200, 2.0**200)}


def _unit_scale(x: Tensor) -> Tensor | None:
    """Checks that the coordinates of ``x`` ``(B, N, D)`` (``N >= 1``) are finite, and gives None when every cloud
    is of ordinary magnitude (``_SAFE_MAGNITUDE``), else ``(B,)`` powers of two, one per cloud, that bring its
    largest ``|coordinate|`` into ``[1, 2)``: both from one per-cloud maximum, read in one synchronisation on a GPU.
    Dividing by a power of two is exact, and so is every step of a Euclidean distance after it
    (differences, squares, their sum, the square root, the product back): distances come out bitwise as without
    it, except that the squares no longer overflow (float32 coordinates past about 1e19) or underflow (float32
    clouds smaller than about 1e-19), which would give ``inf`` or 0 for finite, nonzero distances. (Within one
    cloud spanning more than the dtype's range, e.g. float32 coordinates of 1e30 and 1e-10, the smallest
    coordinates become subnormal and lose bits: distances far below the cloud's size are not kept.)

    Raises:
        ValueError: a NaN or infinite coordinate.
    """
    amax = x.detach().abs().amax(dim=(1, 2))  # NaN wherever a cloud has one, inf wherever it has an infinity
    lo, hi = _SAFE_MAGNITUDE[x.dtype]
    flags = torch.stack([amax.isnan().any(), amax.isinf().any(), (((amax > 0) & (amax < lo)) | (amax > hi)).any()])
    has_nan, has_inf, extreme = flags.tolist()
    if has_nan or has_inf:
        kind = "NaN" if has_nan else "an infinite coordinate"
        raise ValueError(f"gpuph: the point cloud contains {kind}; coordinates must be finite")
    if not extreme:
        return None
    exponent = torch.frexp(amax).exponent - 1  # amax = m 2^e, m in [0.5, 1); 0 -> e = 0
    # A normal scale, even for subnormal clouds: a subnormal one has no finite reciprocal, which a division may use.
    exponent = exponent.clamp(min=int(np.log2(torch.finfo(x.dtype).smallest_normal)))
    return torch.ldexp(torch.ones_like(amax), exponent)


def rips_persistence(
    points, *, dims: int | Iterable[int] = (0, 1), max_edge_length: float = math.inf
) -> ComplexDiagrams:
    r"""Persistence diagrams (H0, H1, H2; Z/2 coefficients) of the Vietoris-Rips filtrations of point clouds, with the
    critical edge of every birth and death, differentiable with respect to the points.

    The filtration value of an edge is its Euclidean length; of a triangle, its longest edge. Edges longer than
    ``max_edge_length`` are left out (as Ripser's ``thresh`` and GUDHI's ``max_edge_length``). The diagrams equal
    Ripser's and GUDHI's ``RipsComplex`` on the same distance matrix.

    Args:
        points: the clouds: a tensor (or numpy / DLPack array) of shape ``(N, D)`` (one cloud), ``(B, N, D)`` (a
            batch; more leading axes are flattened), or a list of ``(N_i, D)`` clouds of different sizes (on one
            device, same ``D``). float32 or float64; float16/bfloat16 are upcast to float32 (the diagrams are then
            float32). Coordinates must be finite. ``N = 0`` (empty clouds) and ``B = 0`` are fine. Never modified.
        dims: homology dimensions to compute, an int or an iterable within ``{0, 1, 2}`` (H2 costs more than
            H0 and H1, and grows about as N^3: some 10 ms for 200 uniform points in 3D and 0.3 s for 800, on one
            thread); ``None``: all three.
        max_edge_length: the threshold (``>= 0``; default ``inf``, the whole filtration).

    Returns:
        :class:`~gpuph.diagrams.ComplexDiagrams` (a :class:`~gpuph.Diagrams` whose ``ndim`` is the number of
        homology dimensions, 2 or 3 with H2), sublevel (``birth <= death``, essential classes die at ``+inf``), with
        ``construction="rips"``, ``spatial_shape = (N, N)`` (``N`` the number of points; for a list, the largest) and
        ``filtration_end`` the largest filtration value of each cloud (its longest edge within the threshold; 0 for
        clouds of fewer than 2 points), differentiable. ``pairs`` is in the points' (working) dtype and device.

        **Critical edges.** ``birth_index`` / ``death_index`` name edges as ``i * N + j`` with ``i < j``:
        ``divmod(index, N)`` gives the two points. An H0 class is born at a vertex ``v`` (value 0, no gradient),
        named ``v * N + v`` (so ``divmod`` gives ``(v, v)``): by the elder rule among vertices all born at 0, the
        smaller vertex index survives a merge, so each component's class is born at its smallest vertex. An H1 class
        is born at an edge and dies at the longest edge of a triangle; an H2 class is born at the longest edge of a
        triangle and dies at the longest edge of a tetrahedron. ``death_index`` is ``-1`` for essential classes: one
        H0 class per connected component (one per cloud without threshold), and H1 / H2 classes still alive at
        ``max_edge_length``.

        **Gradients.** Every finite value is the distance ``|x_i - x_j|`` of its critical edge, gathered from the
        distance matrix the engine ordered, so its gradient moves the two endpoints along the edge direction
        (``+-(x_i - x_j) / |x_i - x_j|``). H0 births and essential deaths carry none. The derivatives are taken on
        the critical edges only (a backward of ``O(K D)`` for ``K`` pairs) and are differentiable themselves:
        double backward and ``torch.func.hessian`` work.

    Ties between equal lengths are broken by the code ``i * N + j`` (edges), a triangle by its longest edge, then
    the opposite vertex, and a tetrahedron by its longest edge, then its two other vertices: critical edges, and so
    gradients, are deterministic. Pairs of zero length are dropped.

    **What runs where.** The distance matrix is computed where the points are (``torch.cdist`` with exact
    differences, on the GPU for CUDA inputs) and copied to the CPU, where the C++ operator ``gpuph::rips_pairs``
    runs: the edges up to the enclosing radius (past which the complex is a cone and nothing changes), one radix
    sort, union-find for H0 and a Ripser-style cohomology reduction (clearing, emergent pairs) for H1 and H2, in
    parallel over the clouds of a batch. Only the integer result goes back to the device; the values are gathered there.
    For CUDA inputs and ``dims=0``, H0 needs no matrix on the host: the minimum spanning forest is found on the GPU
    (:func:`gpuph.spanning_forest.minimum_spanning_forest`, Borůvka) and only its edges go to the CPU engine.
    Memory: ``O(B N^2)`` for the distance matrices (at most 46340 points per cloud).

    Raises:
        TypeError: a non-float dtype, a sparse or nested tensor, a bad ``dims`` or ``max_edge_length`` type.
        ValueError: NaN or infinite coordinates, a meta tensor, a wrong shape (fewer than 2 axes, a list entry that
            is not 2-D, clouds of different ``D``), ``D = 0``, ``dims`` outside ``{0, 1, 2}``, a negative or NaN
            threshold.

    Example::

        >>> x = torch.rand(8, 100, 2, requires_grad=True)
        >>> dgm = gpuph.rips_persistence(x)
        >>> (-dgm.in_dim(1).lifetimes().sum()).backward()    # descending it grows the loops
    """
    mask = dims_mask(dims, MAX_DIM + 1, _DIMS_ERROR)
    thr = _threshold(max_edge_length)
    x, sizes, batch_shape = _as_clouds(points)
    B, N = int(x.shape[0]), int(x.shape[1])
    scale = _scale_of(x)
    dist = _cdist(x.detach(), scale)  # the values' derivatives come from _CriticalLengths, on the critical edges
    rows = _rips_rows(dist, _sizes_tensor(sizes), thr, mask, on_device=x.is_cuda and mask == 1)
    thr = _threshold_in(dist.dtype, thr)  # for the comparisons on the device below
    b, k, bi, di = rows.unbind(1)
    R = int(rows.shape[0])
    # The longest edge of each cloud within the threshold (0 without edges).
    if B and N:
        valid = torch.arange(N, device=x.device) < _sizes_tensor(sizes).to(x.device)[:, None]
        keep = valid[:, :, None] & valid[:, None, :] & (dist <= thr)
        masked = dist.masked_fill(~keep, -math.inf).reshape(B, N * N)
        at = masked.argmax(1)
        has_edge = masked.gather(1, at[:, None]).squeeze(1) > -math.inf
    else:  # no clouds, or clouds without points (and so without rows): no edge to gather
        at, has_edge = torch.zeros(0, dtype=torch.int64, device=x.device), None
    # Births, deaths and longest edges in one gather (codes i * N + j; a vertex code v * N + v reads the zero
    # diagonal, and essential deaths read any edge: both are replaced below).
    cloud = torch.cat([b, b, torch.arange(len(at), device=x.device)])
    code = torch.cat([bi, di.clamp(min=0), at])
    i, j = code // max(N, 1), code % max(N, 1)
    lengths = _CriticalLengths.apply(x, scale, cloud, i, j, dist[cloud, i, j])
    zero = lengths.new_zeros(())
    birth = torch.where(k == 0, zero, lengths[:R])
    death = torch.where(di >= 0, lengths[R : 2 * R], torch.full((), math.inf, dtype=dist.dtype, device=x.device))
    end = torch.where(has_edge, lengths[2 * R :], zero) if len(at) else lengths.new_zeros(B)
    return _diagrams(torch.stack([birth, death], 1), rows, B, N, batch_shape, "rips", end, mask)


def _rips_rows(dist: Tensor, sizes: Tensor, thr: float, mask: int, on_device: bool) -> Tensor:
    """Rows (cloud, dim, birth code, death code) of the Rips diagrams. With ``on_device`` (H0 only), the minimum
    spanning forest is found where ``dist`` lives (Borůvka) and only its ``B (N - 1)`` edges go to the CPU engine
    (H0 of the forest equals H0 of the whole filtration under the same edge order), not the ``B N^2`` matrix."""
    if not on_device:
        return ops.rips_pairs(dist.detach().to("cpu").contiguous(), sizes, thr, mask).to(dist.device)
    edges, counts = minimum_spanning_forest(dist, sizes, _threshold_in(dist.dtype, thr))
    cloud = torch.repeat_interleave(torch.arange(len(counts), device=dist.device), counts)
    lengths = dist.detach()[cloud, edges[:, 0], edges[:, 1]]
    offsets = torch.cat([counts.new_zeros(1), counts.cumsum(0)]).cpu()
    rows = ops.flag_pairs(edges.cpu(), lengths.cpu().contiguous(), offsets, sizes, int(dist.shape[1]), mask)
    return rows[:, :4].to(dist.device)


# ---------------------------------------------------------------------------------------------- weak Alpha
def weak_alpha_persistence(
    points, *, dims: int | Iterable[int] = (0, 1), complex: str = "flag"
) -> ComplexDiagrams:
    r"""Persistence diagrams (H0, H1, H2; Z/2 coefficients) of the weak Alpha filtrations of point clouds: the flag
    complex of the Delaunay graph, filtered by edge length (a triangle enters with its longest edge), as in the
    TopologyLayer paper. Differentiable with respect to the points.

    The Delaunay graph is :func:`gpuph.delaunay.delaunay_edges` (scipy's Qhull, any dimension it supports;
    repeated, collinear and other degenerate clouds are handled there). The diagrams equal GUDHI's ``SimplexTree``
    built on that graph (edges with their lengths, ``expansion(3)``; ``expansion(2)`` without H2) up to the rounding
    of the lengths.

    With ``complex="delaunay"``, the complex is instead the Delaunay complex itself: the simplices of the
    triangulation (:func:`gpuph.delaunay.delaunay_simplices`) and their faces, each entering with its longest edge:
    the complex of TopologyLayer's ``AlphaLayer``. It is a subcomplex of the flag complex (which also fills every
    clique of the graph) with the same H0, and for 2D clouds the same H1 (a clique that is no Delaunay triangle
    encloses Delaunay triangles whose edges are no longer than its own); H1 of 3D clouds and H2 can differ. The
    diagrams then equal GUDHI's ``SimplexTree`` holding those simplices, each with its longest edge's length.

    Args:
        points: as for :func:`rips_persistence`: ``(N, D)``, ``(B, N, D)`` or a list of ``(N_i, D)`` clouds, float32
            or float64 (half precision upcast to float32), finite, ``D >= 2`` for a triangulation (``D = 1``: the
            points are joined along the line).
        dims: an int or an iterable within ``{0, 1, 2}`` (``None``: all three).
        complex: ``"flag"`` (default: the flag complex of the Delaunay graph) or ``"delaunay"`` (the Delaunay
            complex).

    Returns:
        :class:`~gpuph.diagrams.ComplexDiagrams` as for :func:`rips_persistence` (``construction="weak_alpha"``, or
        ``"delaunay"``; the same edge codes ``i * N + j`` and vertex codes ``v * N + v`` for H0 births,
        ``filtration_end`` the longest Delaunay edge). Every finite value is the length of its critical Delaunay
        edge, computed differentiably on the points' device; the gradient moves the edge's two endpoints along it.
        The triangulation itself is held fixed: it is recomputed on the next call, not differentiated.

    Ties between equal lengths are broken by the edge code; with ``complex="delaunay"``, a triangle or tetrahedron
    by the ranks of its edges in that order, sorted descending and compared lexicographically (the first is its
    critical edge).

    **What runs where.** The triangulation runs on the CPU (scipy, one cloud at a time, on a float64 copy); the
    edge lengths are computed where the points are (``torch.linalg.vector_norm`` of the differences); the C++
    operator runs on the CPU, in parallel over the clouds: ``gpuph::flag_pairs`` (the same engine as Rips, on
    adjacency lists) for the flag complex, ``gpuph::complex_flag_pairs`` (a standard reduction with clearing of the
    explicit complex, as for lower-star filtrations) for the Delaunay complex.

    Raises:
        TypeError / ValueError: as for :func:`rips_persistence`; ``ValueError`` for another ``complex``.
    """
    if complex not in ("flag", "delaunay"):
        raise ValueError(f'gpuph: complex must be "flag" or "delaunay", got {complex!r}')
    mask = dims_mask(dims, MAX_DIM + 1, _DIMS_ERROR)
    x, sizes, batch_shape = _as_clouds(points)
    B, N = int(x.shape[0]), int(x.shape[1])
    # As in pairwise_distances: finite coordinates, and clouds of extreme magnitude scaled by a power of two, so
    # that no difference or square overflows or underflows.
    scale = _scale_of(x)
    host = host_numpy(x, torch.float64)
    if complex == "flag":
        graphs = [delaunay_edges(host[b, : sizes[b]]) for b in range(B)]
        counts = torch.tensor([len(g) for g in graphs], dtype=torch.int64)
        edges = torch.from_numpy(np.concatenate(graphs, 0) if graphs else np.zeros((0, 2), np.int64))
        cells = None
    else:
        blocks = [b * N + s for b in range(B) for s in delaunay_simplices(host[b, : sizes[b]])]
        # One closed complex for the whole batch, on global vertex ids b * N + v: its rows are sorted by their
        # vertices, so each cloud's simplices are contiguous in every table.
        edges, counts, cells = _complex_tables(prepare_complex(blocks, B * N, max_dim=_top_dim(mask)), B, N)
    construction = "weak_alpha" if complex == "flag" else "delaunay"
    return _edge_diagrams(x, scale, sizes, batch_shape, mask, edges, counts, cells, construction)


def flag_persistence(points, simplices, *, dims: int | Iterable[int] = (0, 1)) -> ComplexDiagrams:
    r"""Persistence diagrams (H0, H1, H2; Z/2 coefficients) of the flag filtration of a given simplicial complex on
    point coordinates: every simplex enters at its longest edge (Euclidean), as TopologyLayer's ``FlagDiagram``
    (``SimplicialComplex.extendFlag``). Batched over clouds that share the complex; differentiable with respect to
    the points.

    Rips is the flag filtration of the complete complex, :func:`weak_alpha_persistence` that of the cliques of the
    Delaunay graph (or, with ``complex="delaunay"``, of the Delaunay complex); this takes any complex: a
    k-nearest-neighbour graph's cliques, a mesh, a fixed triangulation of a moving cloud.

    Args:
        points: ``(N, D)`` or ``(*batch, N, D)`` coordinates, float32 or float64 (half precision upcast to float32),
            finite (numpy / DLPack arrays accepted). Never modified.
        simplices: the complex on the vertices ``0 .. N - 1``, in any form :func:`gpuph.lower_star.prepare_complex`
            takes (its faces are added, duplicates merged; simplices above dimension 3 contribute their tetrahedra,
            which is all H2 needs), or a :class:`~gpuph.lower_star.ClosedComplex` of ``N`` vertices, used as it is
            (H1 needs ``max_dim >= 2``, H2 ``max_dim >= 3``: a complex truncated below is refused). Every vertex is
            present, listed or not (an unlisted one is an isolated point: an essential H0 class).
        dims: an int or an iterable within ``{0, 1, 2}`` (``None``: all three).

    Returns:
        :class:`~gpuph.diagrams.ComplexDiagrams` as for :func:`rips_persistence` (``construction="flag"``, edge
        codes ``i * N + j``, vertex codes ``v * N + v`` for H0 births, ``filtration_end`` the longest edge of the
        complex). Ties between equal lengths are broken by the edge code, and a triangle or tetrahedron by the ranks
        of its edges, sorted descending and compared lexicographically.

    The edge lengths are computed where the points are; the reduction (``gpuph::complex_flag_pairs``, the
    explicit reduction with clearing of :func:`weak_alpha_persistence` with ``complex="delaunay"``) runs on the
    CPU, in parallel over the clouds.

    Raises:
        TypeError / ValueError: as for :func:`rips_persistence` and :func:`gpuph.lower_star.prepare_complex` (vertex
        ids outside ``0 .. N - 1``, bad simplices); a ``ClosedComplex`` of another number of vertices, or truncated
        below the dimension ``dims`` needs.
    """
    mask = dims_mask(dims, MAX_DIM + 1, _DIMS_ERROR)
    x = _one_cloud(points, "points")
    if x.dim() < 2:
        raise ValueError(f"gpuph: points must be (N, D) or (*batch, N, D), got shape {tuple(x.shape)}")
    batch_shape = tuple(int(s) for s in x.shape[:-2])
    N = int(x.shape[-2])
    x = x.reshape(math.prod(batch_shape), N, x.shape[-1])
    if x.shape[-1] == 0:
        raise ValueError("gpuph: the points have D = 0 coordinates; a point cloud needs D >= 1")
    if x.dtype in (torch.float16, torch.bfloat16):
        x = x.float()
    if isinstance(simplices, ClosedComplex):
        if simplices.n_vertices != N:
            raise ValueError(f"gpuph: the complex has {simplices.n_vertices} vertices, the points {N}")
        top = _top_dim(mask)
        if simplices.max_dim < top and simplices.top_dim >= simplices.max_dim:
            raise ValueError(
                f"gpuph: the complex was truncated to dimension {simplices.max_dim}; homology up to dimension "
                f"{top - 1} needs prepare_complex(..., max_dim={top}) or more"
            )
        cx = simplices
    else:
        cx = prepare_complex(simplices, N, max_dim=_top_dim(mask))
    B = int(x.shape[0])
    scale = _scale_of(x)
    edges, counts, cells = _complex_tables(cx, 1, N)
    # Every cloud has the same tables: repeated, each copy's rows offset into its own copy of the table below.
    E, T, Q = int(counts[0]), int(cells[0].shape[0]), int(cells[2].shape[0])
    shift = torch.arange(B, dtype=torch.int64)[:, None, None]
    cells = (
        (cells[0][None] + shift * E).reshape(-1, 3), torch.arange(B + 1) * T,
        (cells[2][None] + shift * T).reshape(-1, 4), torch.arange(B + 1) * Q,
    )
    edges, counts = edges.repeat(B, 1), counts.repeat(B)
    return _edge_diagrams(x, scale, [N] * B, batch_shape, mask, edges, counts, cells, "flag")


def _top_dim(mask: int) -> int:
    """The simplices the requested homology dimensions need: edges for H0, triangles for H1, tetrahedra for H2."""
    return 3 if mask & 4 else 2 if mask & 2 else 1


def _complex_tables(cx: ClosedComplex, B: int, N: int):
    """A closed complex on the global vertex ids ``b * N + v`` of ``B`` clouds (each cloud's rows contiguous, as
    sorted rows are) as tables for ``gpuph::complex_flag_pairs``: the edges (local vertex ids), the number of each
    cloud's, and (triangles as edge rows, their offsets, tetrahedra as triangle rows, their offsets)."""

    def table(tables: tuple[Tensor, ...], i: int, width: int) -> Tensor:
        return tables[i] if i < len(tables) else torch.zeros(0, width, dtype=torch.int64)

    # (Simplices above dimension 3 change no homology up to H2: they are left out.)
    global_edges = table(cx.simplices, 0, 2)
    triangles, tetrahedra = table(cx.facets, 0, 3), table(cx.facets, 1, 4)
    edge_cloud = global_edges[:, 0] // max(N, 1)
    edges = global_edges - edge_cloud[:, None] * N
    triangle_cloud = edge_cloud[triangles[:, 0]]
    tetrahedron_cloud = triangle_cloud[tetrahedra[:, 0]]

    def offsets(cloud: Tensor) -> Tensor:
        return torch.cat([cloud.new_zeros(1), torch.bincount(cloud, minlength=B).cumsum(0)])

    counts = torch.bincount(edge_cloud, minlength=B)
    return edges, counts, (triangles, offsets(triangle_cloud), tetrahedra, offsets(tetrahedron_cloud))


def _edge_diagrams(x: Tensor, scale: Tensor | None, sizes: Sequence[int], batch_shape: tuple[int, ...], mask: int,
                   edges: Tensor, counts: Tensor, cells, construction: str) -> ComplexDiagrams:
    """The diagrams of the flag filtration of each cloud's edges (``edges``: ``(E, 2)`` local vertex ids, cloud by
    cloud, ``counts`` per cloud), of their flag complex (``cells`` None: ``gpuph::flag_pairs``) or of the explicit
    complex whose triangles and tetrahedra ``cells`` lists (``gpuph::complex_flag_pairs``), with the values gathered
    from the edge lengths, computed differentiably where the points are."""
    B, N, D = (int(s) for s in x.shape)
    offsets = torch.cat([counts.new_zeros(1), counts.cumsum(0)])
    E = int(edges.shape[0])
    edge_batch = torch.repeat_interleave(torch.arange(B), counts)
    ends = (edge_batch[:, None] * N + edges).to(x.device)
    if scale is None:
        flat = x.reshape(B * N, D)
        lengths = torch.linalg.vector_norm(flat[ends[:, 0]] - flat[ends[:, 1]], dim=-1)
    else:
        flat = (x / scale[:, None, None]).reshape(B * N, D)
        lengths = torch.linalg.vector_norm(flat[ends[:, 0]] - flat[ends[:, 1]], dim=-1) * scale[edge_batch.to(x.device)]
    host_lengths = lengths.detach().to("cpu").contiguous()
    if cells is None:
        rows = ops.flag_pairs(edges, host_lengths, offsets, _sizes_tensor(sizes), N, mask)
    else:
        rows = ops.complex_flag_pairs(edges, host_lengths, offsets, _sizes_tensor(sizes), N, mask, *cells)
    rows = rows.to(x.device)
    # Position E of the padded lengths holds 0: the value of vertex births (and a harmless target for -1).
    padded = torch.cat([lengths, lengths.new_zeros(1)])
    bp, dp = rows[:, 4], rows[:, 5]
    birth = padded[torch.where(bp >= 0, bp, E)]
    death = torch.where(dp >= 0, padded[torch.where(dp >= 0, dp, E)],
                        torch.full((), math.inf, dtype=lengths.dtype, device=x.device))
    pairs = torch.stack([birth, death], 1)
    # The longest edge of each cloud (first in edge order among equal lengths), gathered from the same lengths.
    eb = edge_batch.to(x.device)
    if E:
        ld = lengths.detach()
        longest = ld.new_full((B,), -math.inf).scatter_reduce(0, eb, ld, "amax")
        pos = torch.arange(E, device=x.device)
        is_max = ld == longest[eb]
        at = torch.full((B,), E, dtype=torch.int64, device=x.device).scatter_reduce(0, eb[is_max], pos[is_max],
                                                                                   "amin")
        end = padded[at]
    else:
        end = lengths.new_zeros(B)
    return _diagrams(pairs, rows[:, :4], B, N, batch_shape, construction, end, mask)
