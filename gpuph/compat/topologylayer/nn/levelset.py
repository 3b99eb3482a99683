"""TopologyLayer's level-set layers (``topologylayer.nn.levelset``) over gpuph.

``LevelSetLayer2D`` and ``LevelSetLayer1D`` map to :func:`gpuph.cubical_persistence` (the Freudenthal construction is
TopologyLayer's default 2D complex; its ``"grid"`` complex has the persistence of the T construction in dimensions 0
and 1, by the nerve theorem: its simplices are the vertex sets of the 2x2 blocks, which are the nerve of the closed
pixel squares); ``LevelSetLayer`` and the other complexes map to :func:`gpuph.lower_star_persistence`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from torch import Tensor, nn

from ...._common import check_flag
from ....cubical import cubical_persistence
from ....diagrams import ComplexDiagrams, Diagrams
from ....lower_star import lower_star_persistence, prepare_complex
from .. import _grids
from .._common import check_alg, check_maxdim, check_size, host_array, split_input, to_tuple
from ..functional.persistence import SimplicialComplex

__all__ = [
    "LevelSetLayer",
    "LevelSetLayer1D",
    "LevelSetLayer2D",
    "init_freudenthal_2d",
    "init_grid_2d",
    "init_line_complex",
    "init_tri_complex",
]

COMPLEXES = ("freudenthal", "grid", "delaunay")


class _LevelSet(nn.Module):
    """Shared forward: one function -> ``(dgms, issublevel)``; a batch -> :class:`~gpuph.Diagrams`."""

    shape: tuple[int, ...]

    def __init__(self, maxdim: int, sublevel: bool, alg: str) -> None:
        super().__init__()
        self.maxdim = check_maxdim(maxdim)
        self.sublevel = check_flag(sublevel, "sublevel")
        self.alg = check_alg(alg)

    def _persistence(self, values: Tensor) -> Diagrams:
        raise NotImplementedError

    def diagrams(self, x) -> Diagrams:
        """gpuph's :class:`~gpuph.Diagrams` of ``x``, a batch ``(*batch, *shape)`` (or one function, as a batch of
        one), in one call."""
        values, _single = split_input(x, self.shape, type(self).__name__)
        return self._persistence(values)

    def forward(self, x):
        """One function (any shape with the layer's number of values, as TopologyLayer): TopologyLayer's
        ``(dgms, issublevel)``, ``dgms[k]`` an ``(n_k, 2)`` tensor for ``k = 0 .. maxdim``. A batch (trailing axes
        equal to the layer's shape, more than one function): a :class:`~gpuph.Diagrams` for the whole batch, which
        the feature layers reduce per image."""
        values, single = split_input(x, self.shape, type(self).__name__)
        dgm = self._persistence(values)
        if single:
            return to_tuple(dgm, self.maxdim), self.sublevel
        return dgm

    def extra_repr(self) -> str:
        return f"shape={self.shape}, maxdim={self.maxdim}, sublevel={self.sublevel}"


class LevelSetLayer(_LevelSet):
    """Level-set persistence of a function on the vertices of a simplicial complex (lower-star filtration).

    Args:
        complex: a :class:`~gpuph.compat.topologylayer.SimplicialComplex`, or any simplices
            :func:`gpuph.lower_star_persistence` accepts (a list of vertex-id lists, an ``(m, k)`` array, ...).
            Missing faces are added; complexes need not be acyclic or connected (unlike TopologyLayer's).
        maxdim: highest homology dimension.
        sublevel: sublevel (``True``) or superlevel persistence.
        alg: ``"hom"``, ``"hom2"`` or ``"cohom"``: accepted and ignored.

    The input has one value per vertex id ``0 .. n - 1`` (``n`` the largest id plus one), in any shape, or a batch
    ``(*batch, n)``.
    """

    def __init__(self, complex, maxdim: int = 1, sublevel: bool = True, alg: str = "hom") -> None:  # noqa: A002
        super().__init__(maxdim, sublevel, alg)
        self.complex = complex
        if isinstance(complex, SimplicialComplex):
            complex.initialize()
            self._closed = complex.closed(self.maxdim)
        else:
            cells = complex.cells if hasattr(complex, "cells") else complex
            n = _max_vertex(cells) + 1
            self._closed = prepare_complex(cells, n, max_dim=self.maxdim + 2)
        self.shape = (self._closed.n_vertices,)

    def _persistence(self, values: Tensor) -> Diagrams:
        return lower_star_persistence(values, self._closed, maxdim=self.maxdim, sublevel=self.sublevel)


def _max_vertex(cells) -> int:
    if hasattr(cells, "shape"):
        arr = host_array(cells)
        return int(arr.max()) if arr.size else -1
    top = -1
    for c in cells:
        arr = host_array(c)
        if arr.size:
            top = max(top, int(arr.max()))
    return top


class LevelSetLayer2D(_LevelSet):
    """Level-set persistence of images, TopologyLayer's ``LevelSetLayer2D``.

    Args:
        size: ``(width, height)``: an image has ``height`` rows of ``width`` values (row-major, as TopologyLayer).
        maxdim: highest homology dimension (dimensions above 1 are empty except for ``complex="grid"``).
        sublevel: sublevel (``True``) or superlevel persistence.
        complex: ``"freudenthal"`` (default; :func:`gpuph.cubical_persistence` with ``construction="freudenthal"``),
            ``"grid"`` (both diagonals and four triangles per square; equal to the ``"T"`` construction in
            dimensions 0 and 1; with ``maxdim >= 2`` the explicit complex, whose H2 has one essential class per
            square), or ``"delaunay"`` (scipy's triangulation of the lattice, as TopologyLayer builds it; lower-star
            persistence on it).
        alg: accepted and ignored.

    Input: one image with ``width * height`` values in any shape (e.g. ``(height, width)``), or a batch
    ``(*batch, height, width)``.
    """

    def __init__(self, size, maxdim: int = 1, sublevel: bool = True, complex: str = "freudenthal",  # noqa: A002
                 alg: str = "hom") -> None:
        super().__init__(maxdim, sublevel, alg)
        if not isinstance(size, (Sequence, Tensor)) or len(size) != 2:
            raise ValueError(f"gpuph.compat.topologylayer: size must be a (width, height) pair, got {size!r}")
        width, height = size
        width, height = check_size(width, "width"), check_size(height, "height")
        if complex not in COMPLEXES:
            raise ValueError(f"gpuph.compat.topologylayer: complex must be one of {COMPLEXES}, got {complex!r}")
        self.size = (width, height)
        self.shape = (height, width)
        self.complex_name = complex
        self._closed = None
        if complex == "delaunay" or (complex == "grid" and self.maxdim >= 2):
            build = _grids.delaunay_2d if complex == "delaunay" else _grids.grid_2d
            self._closed = prepare_complex(build(width, height), width * height, max_dim=self.maxdim + 2)

    def _persistence(self, values: Tensor) -> Diagrams:
        if self._closed is not None:
            flat = values.reshape(*values.shape[:-2], self.shape[0] * self.shape[1])
            return lower_star_persistence(flat, self._closed, maxdim=self.maxdim, sublevel=self.sublevel)
        construction = "freudenthal" if self.complex_name == "freudenthal" else "T"
        dgm = cubical_persistence(values, dims=range(min(self.maxdim, 1) + 1), superlevel=not self.sublevel,
                                  construction=construction, spatial_dims=2)
        if self.maxdim <= 1:
            return dgm
        # Dimensions 2 .. maxdim of a 2D complex are known to be empty: held, as the one-image tuples hold them, and
        # counted (counts(), to_numpy()) as a complex's diagrams count theirs.
        fields = {f.name: getattr(dgm, f.name) for f in dataclasses.fields(dgm)}
        return ComplexDiagrams(**{**fields, "dims": tuple(range(self.maxdim + 1))}, maxdim=self.maxdim)

    def extra_repr(self) -> str:
        return f"size={self.size}, maxdim={self.maxdim}, sublevel={self.sublevel}, complex={self.complex_name!r}"


class LevelSetLayer1D(_LevelSet):
    """Level-set persistence (H0) of signals on a line, TopologyLayer's ``LevelSetLayer1D``:
    :func:`gpuph.cubical_persistence` with ``spatial_dims=1``.

    Args:
        size: number of values; input: one signal with ``size`` values in any shape, or a batch ``(*batch, size)``.
        sublevel: sublevel (``True``) or superlevel persistence.
        alg: accepted and ignored.
    """

    def __init__(self, size: int, sublevel: bool = True, alg: str = "hom") -> None:
        super().__init__(0, sublevel, alg)
        self.size = check_size(size, "size")
        self.shape = (self.size,)

    def _persistence(self, values: Tensor) -> Diagrams:
        return cubical_persistence(values, dims=0, superlevel=not self.sublevel, construction="V", spatial_dims=1)


# ---------------------------------------------------------------------------------------------- TopologyLayer helpers
def _complex_of(arrays) -> SimplicialComplex:
    s = SimplicialComplex()
    for a in arrays:
        for cell in a.tolist():
            s.append(cell)
    return s


def init_freudenthal_2d(width: int, height: int) -> SimplicialComplex:
    """The Freudenthal triangulation of a ``height x width`` grid (vertex ``i * width + j``)."""
    return _complex_of(_grids.freudenthal_2d(width, height))


def init_grid_2d(width: int, height: int) -> SimplicialComplex:
    """The grid with both diagonals and four triangles per square."""
    return _complex_of(_grids.grid_2d(width, height))


def init_tri_complex(width: int, height: int) -> SimplicialComplex:
    """scipy's Delaunay triangulation of the lattice: its vertices, edges and triangles, as TopologyLayer lists
    them (``unique_simplices`` of the triangles)."""
    from ..util.construction import unique_simplices

    return unique_simplices(_grids.delaunay_2d(width, height)[1], 2)


def init_line_complex(p: int) -> SimplicialComplex:
    """The path on ``p`` vertices."""
    return _complex_of(_grids.line(p))
