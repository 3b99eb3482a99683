"""Oracle for lower-star filtrations on simplicial complexes: GUDHI's SimplexTree, {dim: sorted (n, 2) float64 array}
in gpuph's units (superlevel: birth >= death, essential death -inf; sublevel: essential death +inf)."""

from __future__ import annotations

import itertools

import numpy as np


def closure(simplices, max_dim: int) -> list[tuple[int, ...]]:
    """All faces of dimension 1..max_dim of the given simplices, each once (plain Python, independent of gpuph)."""
    out = set()
    for s in simplices:
        s = sorted(int(v) for v in s)
        for k in range(2, min(len(s), max_dim + 1) + 1):
            out.update(itertools.combinations(s, k))
    return sorted(out, key=lambda c: (len(c), c))


def gudhi_lower_star(f, simplices, maxdim: int, sublevel: bool) -> dict[int, np.ndarray]:
    """GUDHI SimplexTree with lower-star filtration values (each simplex at the max of its vertices' values, of
    ``-f`` for superlevel), Z/2 coefficients. Zero-length pairs are dropped; essential classes are kept, even one
    born at +-inf."""
    import gudhi

    f = np.asarray(f, dtype=np.float64).reshape(-1)
    g = f if sublevel else -f
    tree = gudhi.SimplexTree()
    for v in range(len(f)):
        tree.insert([v], g[v])
    for c in closure(simplices, maxdim + 1):
        tree.insert(list(c), max(g[list(c)]))
    tree.persistence(homology_coeff_field=2, min_persistence=0, persistence_dim_max=True)
    out = {}
    for k in range(maxdim + 1):
        iv = np.asarray(tree.persistence_intervals_in_dimension(k), dtype=np.float64).reshape(-1, 2)
        iv = iv[(iv[:, 0] != iv[:, 1]) | (iv[:, 1] == np.inf)]
        if not sublevel:
            iv = -iv
        out[k] = iv[np.lexsort((iv[:, 1], iv[:, 0]))]
    return out


def sorted_rows(a) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64).reshape(-1, 2)
    return a[np.lexsort((a[:, 1], a[:, 0]))]
