"""The correctness check of the benchmark: every library's diagrams against gpuph's, image by image.

A diagram of one image is held in canonical form: an ``(n, 3)`` float64 array of ``(dim, birth, death)`` rows in
gpuph's superlevel units (birth >= death, essential classes die at ``-inf``), zero-length pairs dropped (they depend on
tie-breaking; GUDHI, cripser and gpuph drop them too), rows sorted. Two libraries agree on an image when these arrays
are equal exactly: diagram values are copies of input values, so there is no tolerance to choose.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


def canonical(dim, birth, death) -> np.ndarray:
    """``(n, 3)`` sorted float64 rows ``(dim, birth, death)``, zero-length pairs dropped (see the module docstring)."""
    cols = [np.asarray(v, np.float64).ravel() for v in (dim, birth, death)]
    a = np.column_stack(cols).reshape(-1, 3)
    a = a[a[:, 1] != a[:, 2]]
    return a[np.lexsort((a[:, 2], a[:, 1], a[:, 0]))]


def from_negated_sublevel(dim, birth, death) -> np.ndarray:
    """Canonical rows from a sublevel diagram of ``-x`` (how GUDHI, cripser and most layers give superlevel
    diagrams): values are negated, so an essential class (death ``+inf`` or cripser's ``DBL_MAX``) dies at ``-inf``."""
    birth = -np.asarray(birth, np.float64)
    death = np.asarray(death, np.float64)
    death = np.where(death >= np.finfo(np.float64).max, -np.inf, -death)
    return canonical(dim, birth, death)


def gpuph_canonical(dgm) -> list[np.ndarray]:
    """Canonical per-image diagrams of a :class:`gpuph.Diagrams` (superlevel), on any device."""
    if not dgm.superlevel:
        raise ValueError("the benchmark compares superlevel diagrams")
    pairs = dgm.pairs.detach().to("cpu", torch.float64).numpy()
    dims = dgm.dim.cpu().numpy()
    batch = dgm.batch.cpu().numpy()
    order = np.argsort(batch, kind="stable")
    pairs, dims, batch = pairs[order], dims[order], batch[order]
    starts = np.searchsorted(batch, np.arange(dgm.batch_size + 1))
    return [canonical(dims[s:e], pairs[s:e, 0], pairs[s:e, 1]) for s, e in zip(starts[:-1], starts[1:])]


@dataclass
class Agreement:
    """Outcome of :func:`compare`. ``agrees`` is None when there was nothing to compare."""

    agrees: bool | None
    image: int | None = None  # the first image that differs
    dims: tuple[int, ...] = ()  # homology dimensions that differ on that image
    message: str | None = None

    def only_in(self, dims: tuple[int, ...]) -> bool:
        """True when the first difference is confined to ``dims`` (e.g. the coefficient-dependent H1 of 3D grids)."""
        return self.agrees is False and bool(self.dims) and set(self.dims) <= set(dims)


def compare(ref: list[np.ndarray], got: list[np.ndarray] | None) -> Agreement:
    """Compare per-image canonical diagrams ``got`` with the reference ``ref`` (gpuph's)."""
    if got is None:
        return Agreement(None)
    if len(got) != len(ref):
        return Agreement(False, 0, (), f"{len(got)} images, expected {len(ref)}")
    for b, (r, g) in enumerate(zip(ref, got)):
        if r.shape == g.shape and np.array_equal(r, g):
            continue
        ks = sorted({int(k) for k in np.concatenate([r[:, 0], g[:, 0]])})
        diff_dims = tuple(
            k for k in ks if not np.array_equal(r[r[:, 0] == k], g[g[:, 0] == k])
        )
        counts = {k: (int((r[:, 0] == k).sum()), int((g[:, 0] == k).sum())) for k in ks}
        rs = {tuple(row) for row in r.tolist()}
        gs = {tuple(row) for row in g.tolist()}
        only_ref = sorted(rs - gs)[:2]
        only_got = sorted(gs - rs)[:2]
        msg = (
            f"image {b}, dims {list(diff_dims)}: pairs per dim (gpuph, library) {counts}; "
            f"only in gpuph {only_ref}; only in library {only_got}"
        )
        return Agreement(False, b, diff_dims, msg)
    return Agreement(True)
