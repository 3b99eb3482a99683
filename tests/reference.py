"""Oracles: GUDHI's CubicalComplex (V and T) and SimplexTree (freudenthal), as {dim: sorted (n, 2) float64 array} in
gpuph's units (superlevel: birth >= death, essential death -inf; sublevel: essential death +inf)."""

from __future__ import annotations

import itertools

import numpy as np


def _sorted_pairs(pairs) -> np.ndarray:
    a = np.asarray(pairs, dtype=np.float64).reshape(-1, 2)
    if len(a) == 0:
        return a
    return a[np.lexsort((a[:, 1], a[:, 0]))]


def _by_dim(items, ndim: int, superlevel: bool) -> dict[int, np.ndarray]:
    out: dict[int, list] = {k: [] for k in range(ndim)}
    essential_seen = False
    for k, (b, d) in items:
        # The one essential H0 class is kept even when it is born at +inf (then b == d == inf); every other pair
        # of zero length is dropped, as gpuph does.
        if k == 0 and d == np.inf and not essential_seen:
            essential_seen = True
        elif k >= ndim or b == d:
            continue
        out[k].append((-b, -d) if superlevel else (b, d))
    return {k: _sorted_pairs(v) for k, v in out.items()}


def gudhi_cubical(x: np.ndarray, construction: str, superlevel: bool) -> dict[int, np.ndarray]:
    import gudhi

    x = np.asarray(x, dtype=np.float64)
    f = -x if superlevel else x
    if construction == "V":
        cc = gudhi.CubicalComplex(vertices=f)
    elif construction == "T":
        cc = gudhi.CubicalComplex(top_dimensional_cells=f)
    else:
        raise ValueError(construction)
    return _by_dim(cc.persistence(homology_coeff_field=2, min_persistence=0), x.ndim, superlevel)


def freudenthal_simplices(shape: tuple[int, ...]):
    """Simplices (as tuples of flat C-order indices) of the Freudenthal triangulation of a grid, by dimension."""
    d = len(shape)
    strides = np.array([int(np.prod(shape[a + 1 :])) for a in range(d)], dtype=np.int64)
    coords = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1).reshape(-1, d)
    by_dim: dict[int, list] = {k: [] for k in range(d + 1)}
    by_dim[0] = [(i,) for i in range(len(coords))]
    for k in range(1, d + 1):
        for masks in itertools.permutations(range(1, 2**d), k):
            if any(masks[i] & masks[j] for i in range(k) for j in range(i + 1, k)):
                continue
            offs = [np.zeros(d, dtype=np.int64)]
            for m in masks:
                offs.append(offs[-1] + np.array([(m >> a) & 1 for a in range(d)]))
            offs = np.array(offs)
            ok = np.all((coords[:, None, :] + offs[None]) < np.array(shape), axis=(1, 2))
            verts = ((coords[ok][:, None, :] + offs[None]) * strides).sum(-1)
            by_dim[k].extend(map(tuple, verts.tolist()))
    return by_dim


def gudhi_freudenthal(x: np.ndarray, superlevel: bool) -> dict[int, np.ndarray]:
    import gudhi

    x = np.asarray(x, dtype=np.float64)
    f = (-x if superlevel else x).reshape(-1)
    st = gudhi.SimplexTree()
    for simplices in freudenthal_simplices(x.shape).values():
        if not simplices:
            continue
        s = np.array(simplices, dtype=np.int64)
        st.insert_batch(s.T, f[s].max(axis=1))
    return _by_dim(
        st.persistence(homology_coeff_field=2, min_persistence=0, persistence_dim_max=True), x.ndim, superlevel
    )


def reference(x: np.ndarray, construction: str, superlevel: bool) -> dict[int, np.ndarray]:
    if construction == "freudenthal":
        return gudhi_freudenthal(x, superlevel)
    return gudhi_cubical(x, construction, superlevel)
