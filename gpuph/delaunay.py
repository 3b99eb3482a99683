"""The Delaunay complex of a point cloud (scipy's Delaunay triangulation, degenerate clouds included) and its graph
(the 1-skeleton), whose flag complex is the weak Alpha complex of :func:`gpuph.weak_alpha_persistence`."""

from __future__ import annotations

import numpy as np
import torch

from ._common import host_numpy

__all__ = ["delaunay_edges", "delaunay_simplices"]

# Relative singular-value cut-off below which a cloud counts as lying in a lower-dimensional affine subspace.
RANK_TOL = 1e-9


def _unit_size(q: np.ndarray) -> np.ndarray:
    """q scaled by the power of two that brings its largest ``|coordinate|`` into ``[0.5, 1)``: exact, so that
    distinct points stay distinct (a division by the maximum itself rounds, and can merge points an ulp apart)."""
    top = np.abs(q).max()
    return q if top == 0 else np.ldexp(q, -np.frexp(top)[1])


def _simplex_edges(simplices: np.ndarray) -> np.ndarray:
    k = simplices.shape[1]
    cols = [simplices[:, [a, b]] for a in range(k) for b in range(a + 1, k)]
    return np.concatenate(cols, 0) if cols else np.zeros((0, 2), np.int64)


def _distinct_points_simplices(q: np.ndarray) -> list[np.ndarray]:
    """Maximal simplices of the Delaunay complex of ``m`` pairwise distinct points (local indices), degenerate clouds
    included, as blocks of ``(count, k)`` arrays (one ``k`` per block)."""
    from scipy.spatial import Delaunay, QhullError

    m, d = q.shape
    if m < 2:
        return []
    centered = _unit_size(q)  # before centring: the mean of huge coordinates would overflow
    centered = centered - centered.mean(0)
    _, s, vt = np.linalg.svd(centered, full_matrices=False)
    if s[0] == 0:  # distinct, but centring rounded them together: a chain in lexicographic order
        order = np.lexsort(q.T[::-1])
        return [np.stack([order[:-1], order[1:]], 1).astype(np.int64)]
    rank = int(np.sum(s > RANK_TOL * s[0]))
    if rank == 1:  # collinear: consecutive points along the line
        order = np.argsort(centered @ vt[0], kind="stable")
        return [np.stack([order[:-1], order[1:]], 1).astype(np.int64)]
    if m <= rank + 1:  # the vertices of one simplex
        return [np.arange(m, dtype=np.int64)[None]]
    # Qhull gets the cloud centred and scaled to unit size: its tolerances are relative to the coordinates'
    # magnitude, and on raw ones far from the origin, or huge, it fails or crashes.
    coords = _unit_size(centered if rank == d else centered @ vt[:rank].T)
    try:
        tri = Delaunay(coords)
    except QhullError:  # nearly degenerate input: let Qhull joggle it (a triangulation of a nearby cloud)
        try:
            tri = Delaunay(coords, qhull_options="QJ")
        except QhullError as err:
            raise ValueError(f"gpuph: scipy's Delaunay triangulation (Qhull) failed on a cloud of {m} distinct "
                             f"points: {err}") from err
    blocks = [tri.simplices.astype(np.int64)]
    # Points Qhull merged into others (within its precision) are no vertices: join each to its nearest vertex.
    used = np.zeros(m, dtype=bool)
    used[tri.simplices.reshape(-1)] = True
    if len(tri.coplanar):
        cop = tri.coplanar.astype(np.int64)
        cop = cop[~used[cop[:, 0]]]
        blocks.append(cop[:, [0, 2]])
        used[cop[:, 0]] = True
    # Points not reported at all (Qhull can drop near-coincident points): each is joined to its nearest point
    # already in the graph, which keeps the graph connected (its nearest point overall may be another such point).
    for i in np.nonzero(~used)[0]:
        graph = np.nonzero(used)[0]
        j = int(graph[np.argmin(np.linalg.norm(coords[graph] - coords[i], axis=1))])
        blocks.append(np.array([[i, j]], np.int64))
        used[i] = True
    return blocks


def delaunay_edges(points) -> np.ndarray:
    """Edges of the Delaunay graph of a point cloud, as an int64 ``(E, 2)`` array of point indices, each row
    ``(i, j)`` with ``i < j``, rows sorted and distinct: the edges of :func:`delaunay_simplices`.

    The triangulation is scipy's ``Delaunay`` (Qhull) on float64 coordinates, in any dimension it supports (it grows
    quickly with the dimension; up to about 6 is practical). Degenerate clouds are handled so that every cloud
    gets a connected graph:

    - repeated points: each copy is joined by one (zero-length) edge to the first occurrence of its point, and only
      the distinct points are triangulated (the diagrams equal those of the cloud without the copies, plus nothing:
      zero-length pairs are dropped);
    - a cloud in a lower-dimensional affine subspace (singular values below ``1e-9`` of the largest): triangulated
      in that subspace; collinear points are joined to their neighbours along the line; ``k + 1`` affinely
      independent points form one simplex (all edges);
    - points that Qhull merges with others (closer than its precision) are joined to the vertex it names, or, if
      it names none, to their nearest point in the graph.

    Qhull runs on the cloud centred and scaled to unit size, so that clouds far from the origin or of any
    magnitude triangulate alike.

    Args:
        points: ``(N, D)`` array-like of finite coordinates.

    Returns:
        ``(E, 2)`` int64 numpy array.

    Raises:
        ValueError: ``points`` is not 2-dimensional or not finite, or Qhull fails even on joggled input.
    """
    p = _cloud(points, "delaunay_edges")
    n = len(p)
    blocks = [_simplex_edges(b) for b in _maximal_simplices(p)]
    if not blocks:
        return np.zeros((0, 2), np.int64)
    e = np.concatenate(blocks, 0)  # rows sorted already: i < j
    codes = np.unique(e[:, 0] * n + e[:, 1])
    return np.stack([codes // n, codes % n], 1)


def delaunay_simplices(points) -> list[np.ndarray]:
    """The maximal simplices of the Delaunay complex of a point cloud, the complex of TopologyLayer's
    ``AlphaLayer`` (``gpuph.weak_alpha_persistence(..., complex="delaunay")``; their faces complete it).

    The simplices of scipy's ``Delaunay`` (Qhull), and for degenerate clouds the simplices described in
    :func:`delaunay_edges` (a copy of a point: an edge to its first occurrence; collinear points: the edges between
    neighbours along the line; a cloud in a lower-dimensional subspace: its triangulation there, or one simplex of
    all its points; points Qhull merged: an edge to a vertex). Their 1-skeleton is :func:`delaunay_edges`.

    Args:
        points: ``(N, D)`` array-like of finite coordinates.

    Returns:
        a list of int64 numpy arrays ``(count, k)``, one ``k`` (number of vertices) per array, every row sorted
        ascending; empty for fewer than 2 points or ``D = 0`` (repeated copies of one point are joined by edges).

    Raises:
        ValueError: as :func:`delaunay_edges`.
    """
    return _maximal_simplices(_cloud(points, "delaunay_simplices"))


def _maximal_simplices(p: np.ndarray) -> list[np.ndarray]:
    n = len(p)
    if n < 2 or p.shape[1] == 0:
        return []
    rep = _first_copies(p)
    copies = np.nonzero(rep != np.arange(n))[0]
    distinct = np.nonzero(rep == np.arange(n))[0]
    blocks = [distinct[b] for b in _distinct_points_simplices(p[distinct])]
    blocks.append(np.stack([rep[copies], copies], 1).astype(np.int64))
    return [np.sort(b, axis=1) for b in blocks if len(b)]


def _cloud(points, who: str) -> np.ndarray:
    if isinstance(points, torch.Tensor):  # possibly requiring grad or on a GPU
        points = host_numpy(points)
    try:
        raw = np.asarray(points)
        # Complex coordinates would lose their imaginary part with a mere warning; bool and text are no coordinates.
        if raw.dtype.kind not in "iuf" and raw.dtype != object:
            raise TypeError(f"dtype {raw.dtype}")
        p = raw.astype(np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"gpuph: {who} expects an (N, D) cloud of real coordinates ({err})") from None
    if p.ndim != 2:
        raise ValueError(f"gpuph: {who} expects an (N, D) cloud, got shape {p.shape}")
    if p.shape[1] == 0:
        raise ValueError(f"gpuph: {who} got points with D = 0 coordinates; a point cloud needs D >= 1")
    if not np.isfinite(p).all():
        raise ValueError(f"gpuph: {who} needs finite coordinates (the cloud has NaN or +-inf)")
    return p + 0.0  # -0.0 -> +0.0, so that equal points compare equal bytewise in np.unique


def _first_copies(p: np.ndarray) -> np.ndarray:
    """For every point, the smallest index of a point equal to it (a lexicographic sort of the rows)."""
    order = np.lexsort(p.T[::-1])
    sp = p[order]
    start = np.ones(len(p), dtype=bool)
    start[1:] = np.any(sp[1:] != sp[:-1], axis=1)
    first_of_group = np.minimum.reduceat(order, np.nonzero(start)[0])
    rep = np.empty(len(p), dtype=np.int64)
    rep[order] = first_of_group[np.cumsum(start, dtype=np.int64) - 1]  # (a bool cumsum fails under torch.compile)
    return rep
