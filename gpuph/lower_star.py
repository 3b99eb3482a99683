"""Exact persistence of lower-star filtrations of vertex values on any simplicial complex (meshes, tetrahedralised
volumes, graphs), batched over value vectors on one shared complex."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ._common import check_flag, gather_pairs
from ._ext import ops
from .cubical import FLOAT_DTYPES, _as_tensor, _check_storage, _dtype_message
from .diagrams import ComplexDiagrams

__all__ = ["ClosedComplex", "LowerStarDiagrams", "lower_star_persistence", "prepare_complex"]

# Keys of sorted vertex tuples packed into one int64 (for a fast torch.unique) when they fit in 63 bits.
_KEY_BITS = 63


@dataclass(repr=False, eq=False)
class LowerStarDiagrams(ComplexDiagrams):
    """:class:`~gpuph.Diagrams` of a lower-star filtration on a simplicial complex.

    The fields mean what they mean for grids, with vertices for pixels: ``spatial_shape == (n_vertices,)``,
    ``birth_index`` / ``death_index`` are the ids of the critical vertices (the vertex of largest value, in the
    filtration order, of the simplex that creates / destroys the class), ``construction == "lower_star"``. ``maxdim``
    is the highest homology dimension computed, so ``ndim`` (the number of homology dimensions: ``counts()``,
    ``to_numpy()``) is ``maxdim + 1``.
    """


@dataclass(frozen=True, repr=False)
class ClosedComplex:
    """A simplicial complex closed under faces and deduplicated, ready for :func:`lower_star_persistence`.

    Built by :func:`prepare_complex`; reuse one for many calls on the same complex (a training loop). One built by
    hand is checked when used (``ValueError``): each facet row must name its simplex's facets (in any order), and no
    simplex may repeat a vertex or be listed twice.

    Attributes:
        n_vertices: number of vertices; every id ``0 .. n_vertices - 1`` is a vertex, listed or not.
        simplices: ``simplices[d - 1]`` is an int64 ``(m_d, d + 1)`` CPU tensor of the ``d``-simplices, ``d = 1 ..
            top_dim``, each row sorted ascending, rows sorted lexicographically.
        facets: ``facets[d - 2]`` is an int64 ``(m_d, d + 1)`` tensor, for ``d = 2 .. top_dim``: row ``i`` holds the
            row indices in ``simplices[d - 2]`` of the facets of ``d``-simplex ``i`` (column ``j``: vertex ``j``
            left out).
        max_dim: the dimension the complex was truncated to (its ``max_dim``-skeleton).
    """

    n_vertices: int
    simplices: tuple[Tensor, ...]
    facets: tuple[Tensor, ...]
    max_dim: int

    @property
    def top_dim(self) -> int:
        """Highest dimension present (0: vertices only)."""
        return len(self.simplices)

    def counts(self) -> tuple[int, ...]:
        """Number of simplices per dimension, ``(n_vertices, m_1, ..., m_top)``."""
        return (self.n_vertices, *(int(s.shape[0]) for s in self.simplices))

    def __repr__(self) -> str:
        return f"ClosedComplex(simplices per dimension={self.counts()}, max_dim={self.max_dim})"


# ---------------------------------------------------------------------------------------------- input parsing
def _int_block(a, what: str) -> Tensor:
    """One (m, k) block of simplices as an int64 CPU tensor."""
    if isinstance(a, Tensor):
        t = _check_storage(a).detach()
    else:
        arr = np.asarray(a)
        if arr.dtype == object:
            raise TypeError(f"gpuph: {what} must be a rectangular array of vertex ids")
        t = torch.from_numpy(np.ascontiguousarray(arr)) if arr.size else torch.zeros(arr.shape, dtype=torch.int64)
    if t.dtype == torch.bool or t.is_floating_point() or t.is_complex():
        raise TypeError(f"gpuph: {what} must hold integer vertex ids, got dtype {t.dtype}")
    if t.dim() != 2:
        raise ValueError(f"gpuph: {what} must have shape (m, k) (m simplices of k vertices), got {tuple(t.shape)}")
    return t.to("cpu", torch.int64)


def _blocks(simplices) -> list[Tensor]:
    """The user's simplices as a list of (m, k) int64 blocks (one k per block)."""
    if isinstance(simplices, (Tensor, np.ndarray)):
        return [_int_block(simplices, "simplices")]
    if hasattr(simplices, "cells") and not isinstance(simplices, (list, tuple)):
        simplices = simplices.cells  # a TopologyLayer-style SimplicialComplex (gpuph.compat.topologylayer)
    if isinstance(simplices, dict):
        simplices = list(simplices.values())
    if not isinstance(simplices, (Sequence, set, frozenset)) or isinstance(simplices, (str, bytes)):
        raise TypeError(
            "gpuph: simplices must be an (m, k) integer array/tensor, a list of such arrays, or a list of simplices "
            f"(sequences of vertex ids); got {type(simplices).__name__}"
        )
    items = list(simplices)
    if items and all(isinstance(s, (Tensor, np.ndarray)) and s.ndim == 2 for s in items):
        return [_int_block(s, f"simplices[{i}]") for i, s in enumerate(items)]
    by_size: dict[int, list] = {}
    for s in items:
        if isinstance(s, (Tensor, np.ndarray)):
            if s.ndim != 1:
                raise ValueError(f"gpuph: a simplex must be a flat list of vertex ids, got an array of shape {s.shape}")
            s = s.tolist()
        if isinstance(s, (int, np.integer)) and not isinstance(s, bool):
            s = [s]
        try:
            verts = list(s)
        except TypeError:
            raise TypeError(f"gpuph: a simplex must be a sequence of vertex ids, got {s!r}") from None
        if any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) for v in verts):
            raise TypeError(f"gpuph: vertex ids must be integers, got the simplex {s!r}")
        if not verts:
            raise ValueError("gpuph: empty simplex (a simplex needs at least one vertex)")
        by_size.setdefault(len(verts), []).append(verts)
    return [torch.tensor(v, dtype=torch.int64) for _k, v in sorted(by_size.items())]


def _check_block(t: Tensor, n_vertices: int) -> Tensor:
    """Sorted rows; ids in range; no repeated vertex."""
    if t.numel() == 0:
        return t.reshape(0, t.shape[1])
    lo, hi = int(t.min()), int(t.max())
    if lo < 0 or hi >= n_vertices:
        bad = ((t < 0) | (t >= n_vertices)).any(1).nonzero()[0, 0]
        raise ValueError(
            f"gpuph: simplex {t[bad].tolist()} has a vertex id out of range 0..{n_vertices - 1} "
            f"(the complex has {n_vertices} vertices)"
        )
    t = t.sort(1).values
    if t.shape[1] > 1:
        rep = (t[:, 1:] == t[:, :-1]).any(1)
        if bool(rep.any()):
            raise ValueError(f"gpuph: simplex {t[rep.nonzero()[0, 0]].tolist()} repeats a vertex")
    return t


def _faces(t: Tensor, size: int) -> Tensor:
    """All faces with ``size`` vertices of the rows of ``t`` (rows sorted, so faces come out sorted)."""
    k = t.shape[1]
    cols = list(itertools.combinations(range(k), size))
    return t[:, cols].reshape(-1, size) if t.shape[0] else t.new_zeros(0, size)


def _unique_rows(rows: Tensor, n_vertices: int) -> tuple[Tensor, Tensor]:
    """Sorted unique rows and the inverse map."""
    k = rows.shape[1]
    bits = max(1, math.ceil(math.log2(max(n_vertices, 2))))
    if rows.shape[0] == 0:
        return rows, torch.zeros(0, dtype=torch.int64)
    if bits * k <= _KEY_BITS:
        key = torch.zeros(rows.shape[0], dtype=torch.int64)
        for c in range(k):
            key = (key << bits) | rows[:, c]
        ukey, inv = torch.unique(key, sorted=True, return_inverse=True)
        mask = (1 << bits) - 1
        shifts = torch.tensor([bits * (k - 1 - c) for c in range(k)], dtype=torch.int64)
        return (ukey[:, None] >> shifts) & mask, inv
    uniq, inv = torch.unique(rows, dim=0, sorted=True, return_inverse=True)
    return uniq, inv


def prepare_complex(simplices, n_vertices: int, max_dim: int = 2) -> ClosedComplex:
    r"""Close a list of simplices under faces, deduplicate it, and index the facets, once, for
    :func:`lower_star_persistence`.

    Args:
        simplices: the complex, in any of these forms: an integer ``(m, k)`` tensor or array (``m`` simplices of
            ``k`` vertices, e.g. the ``(F, 3)`` faces of a triangle mesh or the ``(T, 4)`` cells of a tetrahedral
            mesh); a list of such arrays (one per size); a list of simplices, each a sequence of vertex ids (as
            TopologyLayer's ``SimplicialComplex.append``); or an object with a ``cells`` attribute holding such a
            list. Vertex order within a simplex does not matter.
        n_vertices: number of vertices; every id in ``0 .. n_vertices - 1`` is a vertex of the complex whether it is
            listed or not (an unlisted vertex is an isolated point).
        max_dim: keep simplices up to this dimension; a larger simplex contributes its ``max_dim``-faces. Homology
            up to dimension ``maxdim`` needs ``max_dim >= maxdim + 1``; ``maxdim + 2`` lets the reduction skip the
            columns of positive simplices (clearing) and is faster on solid complexes.

    Faces are added automatically (a triangle brings its three edges), duplicates (in any vertex order) are merged.

    Raises:
        TypeError: simplices not integer, or of an unsupported container type.
        ValueError: a vertex id outside ``0 .. n_vertices - 1``, a simplex with a repeated vertex, an empty simplex,
            a badly shaped array, ``max_dim < 0``.
    """
    if isinstance(n_vertices, bool) or not isinstance(n_vertices, (int, np.integer)) or n_vertices < 0:
        raise ValueError(f"gpuph: n_vertices must be a non-negative int, got {n_vertices!r}")
    if isinstance(max_dim, bool) or not isinstance(max_dim, (int, np.integer)) or max_dim < 0:
        raise ValueError(f"gpuph: max_dim must be a non-negative int, got {max_dim!r}")
    n_vertices, max_dim = int(n_vertices), int(max_dim)
    given: dict[int, list[Tensor]] = {}
    for t in _blocks(simplices):
        if t.shape[1] == 0:
            if t.shape[0]:
                raise ValueError("gpuph: empty simplex (a simplex needs at least one vertex)")
            continue
        t = _check_block(t, n_vertices)
        d = t.shape[1] - 1
        if d > max_dim:
            t, d = _faces(t, max_dim + 1), max_dim
        given.setdefault(d, []).append(t)
    top = max((d for d, ts in given.items() if any(t.shape[0] for t in ts)), default=0)
    by_dim: dict[int, Tensor] = {}
    facets: dict[int, Tensor] = {}
    below = None  # facets of the dimension above, (m * (d + 2), d + 1)
    for d in range(top, 0, -1):
        parts = ([below] if below is not None else []) + given.get(d, [])
        rows = torch.cat(parts) if parts else torch.zeros(0, d + 1, dtype=torch.int64)
        uniq, inv = _unique_rows(rows, n_vertices)
        by_dim[d] = uniq
        if below is not None:
            facets[d + 1] = inv[: below.shape[0]].reshape(-1, d + 2)
        # Facet j leaves out vertex j: columns (0..d) minus j, so facets[:, j] matches that convention.
        below = uniq[:, [[c for c in range(d + 1) if c != j] for j in range(d + 1)]].reshape(-1, d) if d > 1 else None
    return ClosedComplex(
        n_vertices=n_vertices,
        simplices=tuple(by_dim[d] for d in range(1, top + 1)),
        facets=tuple(facets[d] for d in range(2, top + 1)),
        max_dim=max_dim,
    )


# ---------------------------------------------------------------------------------------------- persistence
def lower_star_persistence(
    values,
    simplices,
    *,
    maxdim: int = 1,
    sublevel: bool = True,
) -> LowerStarDiagrams:
    r"""Persistence diagrams of the lower-star filtration of vertex values on a simplicial complex.

    Each simplex enters the filtration at the largest value of its vertices (``sublevel=True``; the smallest for
    superlevel), as GUDHI's ``SimplexTree`` with lower-star filtration values, TopologyLayer's ``LevelSetLayer``,
    or the Freudenthal construction of :func:`gpuph.cubical_persistence` on a grid. Homology over Z/2, exact.

    Args:
        values: vertex values, a tensor (or numpy / DLPack array) of float16, bfloat16, float32 or float64 of shape
            ``(n_vertices,)`` or ``(*batch, n_vertices)``: a batch of functions on one shared complex (leading axes
            flattened in C order). ``+inf``/``-inf`` are valid; NaN is an error. Never modified.
        simplices: the complex (see :func:`prepare_complex` for the accepted forms), or a :class:`ClosedComplex`
            from :func:`prepare_complex` to skip the preparation on repeated calls. Missing faces are added and
            duplicates merged; vertex ids must lie in ``0 .. n_vertices - 1`` and every such id is a vertex, listed
            or not (unlisted ones are isolated points).
        maxdim: highest homology dimension computed (``0 .. maxdim``).
        sublevel: ``True`` filters by increasing value (``birth <= death``, essential classes die at ``+inf``);
            ``False`` by decreasing value (superlevel: ``birth >= death``, essential deaths ``-inf``).

    Returns:
        :class:`LowerStarDiagrams` (a :class:`~gpuph.Diagrams`) with ``spatial_shape == (n_vertices,)``,
        ``construction == "lower_star"``, ``superlevel == not sublevel``, pairs in ``values``' dtype and device.
        ``birth_index`` / ``death_index`` are critical vertex ids: ``pairs[i, 0] == values_b[birth_index[i]]`` bit
        for bit (likewise deaths), so the backward is one scatter-add onto the critical vertices. Every connected
        component gives one essential H0 class; higher essential classes (cycles of a closed surface, ...) are
        returned with death ``+-inf`` and ``death_index == -1``. Zero-length pairs are not returned.

    Ties are broken by a total order: vertices by (value, id), values descending for superlevel; a simplex by its
    vertex ranks sorted descending, compared lexicographically (so by value first). Critical vertices, and so
    gradients, are deterministic.

    Raises:
        TypeError: values not floating point (or not an array), simplices not integer, a sparse or nested tensor,
            ``sublevel`` not a bool.
        ValueError: NaN in ``values``, ``values`` without a vertex axis, ``maxdim < 0``, a :class:`ClosedComplex`
            for a different number of vertices or truncated below ``maxdim + 1``, or bad simplices (see
            :func:`prepare_complex`).

    Example::

        >>> faces = torch.tensor([[0, 1, 2], [0, 2, 3], [0, 3, 1], [1, 3, 2]])   # a tetrahedron's surface
        >>> f = torch.rand(8, 4, requires_grad=True)                             # 8 functions on its vertices
        >>> dgm = gpuph.lower_star_persistence(f, faces, maxdim=2)               # H0, H1, H2 (one essential H2)
    """
    x = _as_tensor(values)
    if x.is_complex() or not x.is_floating_point() or x.dtype not in FLOAT_DTYPES:
        raise TypeError(_dtype_message(str(x.dtype)))
    sublevel = check_flag(sublevel, "sublevel")
    if isinstance(maxdim, bool) or not isinstance(maxdim, (int, np.integer)) or maxdim < 0:
        raise ValueError(f"gpuph: maxdim must be a non-negative int, got {maxdim!r}")
    maxdim = int(maxdim)
    if x.dim() == 0:
        raise ValueError("gpuph: values must have a vertex axis: shape (n_vertices,) or (*batch, n_vertices)")
    n = int(x.shape[-1])
    batch_shape = tuple(int(s) for s in x.shape[:-1])
    B = math.prod(batch_shape)
    if isinstance(simplices, ClosedComplex):
        cx = simplices
        if cx.n_vertices != n:
            raise ValueError(f"gpuph: the complex has {cx.n_vertices} vertices but values has {n} per function")
        if cx.max_dim < maxdim + 1 and cx.top_dim >= cx.max_dim:
            raise ValueError(
                f"gpuph: the complex was truncated to dimension {cx.max_dim}; homology up to dimension {maxdim} "
                f"needs prepare_complex(..., max_dim={maxdim + 1}) or more"
            )
    else:
        cx = prepare_complex(simplices, n, max_dim=maxdim + 2)
    # H_k needs the simplices up to dimension k + 1; dimension maxdim + 2 only serves clearing, which H0 (a
    # union-find over the edges) does not use.
    keep = min(cx.top_dim, 1 if maxdim == 0 else maxdim + 2)
    xb = x.reshape(B, n)
    work = xb.detach()
    if work.dtype in (torch.float16, torch.bfloat16):
        work = work.float()  # exact
    rows = ops.lower_star_pairs(
        work.cpu().contiguous(), list(cx.simplices[:keep]), list(cx.facets[: max(keep - 1, 0)]), maxdim,
        not sublevel,
    )
    rows = rows.to(x.device)
    b, k, bi, di = rows.unbind(1)
    if n:
        pairs, end = gather_pairs(xb, rows, not sublevel)
    else:  # no vertices: no pairs and no filtration; the empty pairs stay in the graph (losses of them backpropagate)
        pairs, end = xb.reshape(0, 2), None
    return LowerStarDiagrams(
        pairs=pairs,
        dim=k,
        batch=b,
        birth_index=bi,
        death_index=di,
        batch_size=B,
        spatial_shape=(n,),
        superlevel=not sublevel,
        construction="lower_star",
        batch_shape=batch_shape,
        filtration_end=end,
        maxdim=maxdim,
    )
