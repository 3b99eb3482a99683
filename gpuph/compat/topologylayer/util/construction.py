"""TopologyLayer's complex constructors (``topologylayer.util.construction``)."""

from __future__ import annotations

from itertools import combinations

import numpy as np

from .._common import host_array
from ..functional.persistence import SimplicialComplex

__all__ = ["clique_complex", "unique_simplices"]


def unique_simplices(faces, dim: int) -> SimplicialComplex:
    """The complex of all faces of dimension ``<= dim`` of the given simplices, each once, by dimension."""
    faces = np.asarray(host_array(faces), dtype=np.int64)
    if faces.ndim != 2:
        raise ValueError(f"gpuph.compat.topologylayer: faces must have shape (m, k), got {faces.shape}")
    faces = np.sort(faces, axis=1)
    s = SimplicialComplex()
    for k in range(min(dim, faces.shape[1] - 1) + 1):
        cols = list(combinations(range(faces.shape[1]), k + 1))
        cells = np.unique(faces[:, cols].reshape(-1, k + 1), axis=0) if len(faces) else np.zeros((0, k + 1), int)
        for cell in cells.tolist():
            s.append(cell)
    return s


def clique_complex(n: int, d: int) -> SimplicialComplex:
    """The ``d``-skeleton of the full simplex on ``n`` vertices."""
    s = SimplicialComplex()
    for k in range(d + 1):
        for cell in combinations(range(n), k + 1):
            s.append(list(cell))
    return s
