"""The complexes of TopologyLayer's image layers as vertex-id arrays (row-major ids ``i * width + j`` for row
``i < height`` and column ``j < width``, as TopologyLayer numbers them)."""

from __future__ import annotations

import numpy as np


def _ids(width: int, height: int) -> np.ndarray:
    return np.arange(width * height, dtype=np.int64).reshape(height, width)


def line(p: int) -> list[np.ndarray]:
    """The path 0 - 1 - ... - (p-1): vertices and edges."""
    v = np.arange(p, dtype=np.int64)
    return [v[:, None], np.stack([v[:-1], v[1:]], 1)]


def _axis_edges(ids: np.ndarray) -> list[np.ndarray]:
    horizontal = np.stack([ids[:, :-1].ravel(), ids[:, 1:].ravel()], 1)
    vertical = np.stack([ids[:-1, :].ravel(), ids[1:, :].ravel()], 1)
    return [ids.reshape(-1, 1), horizontal, vertical]


def freudenthal_2d(width: int, height: int) -> list[np.ndarray]:
    """Every square split along its (i, j) - (i+1, j+1) diagonal (TopologyLayer's ``init_freudenthal_2d``)."""
    ids = _ids(width, height)
    a, b, c, d = ids[:-1, :-1].ravel(), ids[:-1, 1:].ravel(), ids[1:, :-1].ravel(), ids[1:, 1:].ravel()
    return [*_axis_edges(ids), np.stack([a, d], 1), np.stack([a, b, d], 1), np.stack([a, c, d], 1)]


def grid_2d(width: int, height: int) -> list[np.ndarray]:
    """Both diagonals of every square and its four triangles (TopologyLayer's ``init_grid_2d``)."""
    ids = _ids(width, height)
    a, b, c, d = ids[:-1, :-1].ravel(), ids[:-1, 1:].ravel(), ids[1:, :-1].ravel(), ids[1:, 1:].ravel()
    return [
        *_axis_edges(ids),
        np.stack([a, d], 1),
        np.stack([b, c], 1),
        np.stack([a, b, d], 1),
        np.stack([a, c, d], 1),
        np.stack([b, c, d], 1),
        np.stack([a, b, c], 1),
    ]


def delaunay_2d(width: int, height: int) -> list[np.ndarray]:
    """scipy's Delaunay triangulation of the lattice points (x = column, y = row), the triangles of TopologyLayer's
    ``init_tri_complex`` (which also lists their edges): every square is split, along a diagonal that qhull picks."""
    try:
        from scipy.spatial import Delaunay
    except ImportError as exc:  # pragma: no cover - scipy is a test dependency
        raise ImportError("gpuph.compat.topologylayer: complex='delaunay' needs scipy") from exc
    if width < 2 or height < 2:
        raise ValueError(f"gpuph.compat.topologylayer: complex='delaunay' needs width and height >= 2, "
                         f"got {width}x{height}")
    xs, ys = np.meshgrid(np.arange(width), np.arange(height))
    points = np.stack([xs.ravel(), ys.ravel()], 1).astype(np.float64)
    return [_ids(width, height).reshape(-1, 1), np.asarray(Delaunay(points).simplices, dtype=np.int64)]
