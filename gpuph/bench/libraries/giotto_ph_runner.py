"""giotto-ph (``gph.ripser_parallel``): no cubical complexes, but the Freudenthal triangulation of a grid is the flag
complex of its graph, so the lower-star filtration of ``-x`` on that graph (vertex weights on the diagonal of a sparse
matrix, an edge entering at the larger weight of its ends) gives gpuph's ``construction="freudenthal"`` diagrams."""

from __future__ import annotations

import importlib
import itertools

import numpy as np

from ..agreement import from_negated_sublevel
from .base import FORWARD, Runner, Unavailable


def freudenthal_edges(shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Both ends (flat C-order indices) of every edge of the Freudenthal triangulation of a grid: each vertex ``v``
    is joined to ``v + e`` for every ``e`` in ``{0, 1}^d`` except 0."""
    idx = np.arange(int(np.prod(shape))).reshape(shape)
    heads, tails = [], []
    for e in itertools.product((0, 1), repeat=len(shape)):
        if any(e):
            heads.append(idx[tuple(slice(0, n - o) for n, o in zip(shape, e))].ravel())
            tails.append(idx[tuple(slice(o, n) for n, o in zip(shape, e))].ravel())
    return np.concatenate(heads), np.concatenate(tails)


def runners(modes: tuple[str, ...], constructions: tuple[str, ...], library: str = "giotto-ph") -> list[Runner]:
    if "freudenthal" not in constructions or FORWARD not in modes:
        return []
    try:
        gph = importlib.import_module("gph")
        sparse = importlib.import_module("scipy.sparse")
    except ImportError as exc:
        raise Unavailable(f"not installed ({exc})") from exc

    def prepare(x: np.ndarray):
        heads, tails = freudenthal_edges(x.shape[1:])
        n = int(np.prod(x.shape[1:]))
        diag = np.arange(n)
        rows, cols = np.concatenate([heads, diag]), np.concatenate([tails, diag])
        mats = []
        for img in x:
            f = -img.ravel().astype(np.float64)
            w = np.concatenate([np.maximum(f[heads], f[tails]), f])
            mats.append(sparse.coo_matrix((w, (rows, cols)), shape=(n, n)).tocsr())
        return x.ndim - 2, mats

    def run(job):
        maxdim, mats = job
        return [gph.ripser_parallel(a, metric="precomputed", maxdim=maxdim, n_threads=1)["dgms"] for a in mats]

    def diagrams(out, _):
        res = []
        for dgms in out:
            dims = np.concatenate([np.full(len(d), k) for k, d in enumerate(dgms)])
            pairs = np.concatenate([np.asarray(d, np.float64).reshape(-1, 2) for d in dgms])
            res.append(from_negated_sublevel(dims, pairs[:, 0], pairs[:, 1]))
        return res

    return [
        Runner(
            library="giotto-ph",
            construction="freudenthal",
            mode=FORWARD,
            prepare=prepare,
            run=run,
            diagrams=diagrams,
            note=(
                "ripser_parallel(A, metric='precomputed', maxdim=d-1, n_threads=1) image by image: A is the sparse "
                "Freudenthal graph of -x (vertex values on the diagonal; prepared untimed), whose flag complex is "
                "the Freudenthal triangulation; Z/2. giotto-ph has no cubical complexes, so no V or T rows"
            ),
        )
    ]
