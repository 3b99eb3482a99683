"""TopologyLayer's ``SimplicialComplex`` and its forward functions (``topologylayer.functional.persistence``), in
Python over :func:`gpuph.lower_star_persistence` and :func:`gpuph.flag_persistence`."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ....lower_star import ClosedComplex, lower_star_persistence, prepare_complex
from ....point_cloud import flag_persistence
from .._common import check_maxdim, host_array, to_tuple


class SimplicialComplex:
    """A simplicial complex built simplex by simplex, as TopologyLayer's: ``append([0]); append([0, 1]); ...``.

    Unlike TopologyLayer's, missing faces are added (``append([0, 1, 2])`` alone is a filled triangle), duplicates are
    merged, and complexes that are not acyclic or not connected are handled exactly. Vertex ids run from 0 to
    ``n_vertices - 1`` (the largest id plus one); a function on the complex has one value per id.

    Methods used by TopologyLayer code: ``append``, ``initialize``, ``extendFloat`` (a lower-star filtration of
    vertex values) or ``extendFlag`` (the flag filtration of point coordinates: each simplex at its longest edge),
    then :func:`persistenceForwardHom` / :func:`persistenceForwardCohom`; ``dim``, ``printCells`` /
    ``printComplex``, ``printDims``.
    """

    def __init__(self) -> None:
        self.cells: list[list[int]] = []
        self._f: Tensor | None = None
        self._points: Tensor | None = None  # set by extendFlag; the last extend* call picks the filtration
        self._closed: ClosedComplex | None = None
        self._closed_key: tuple[int, int] | None = None

    def append(self, x) -> None:
        """Add one simplex (a sequence of vertex ids; stored sorted, as TopologyLayer does)."""
        cell = sorted(int(v) for v in host_array(x).reshape(-1).tolist())
        if not cell:
            raise ValueError("gpuph.compat.topologylayer: empty simplex")
        self.cells.append(cell)

    def initialize(self) -> None:
        """Nothing to precompute ahead of time (the closure is built and cached on first use); kept for
        compatibility."""

    @property
    def n_vertices(self) -> int:
        return 1 + max((max(c) for c in self.cells), default=-1)

    def closed(self, maxdim: int) -> ClosedComplex:
        """The complex closed under faces for homology up to ``maxdim`` (cached until the next ``append``)."""
        key = (len(self.cells), check_maxdim(maxdim))
        if self._closed is None or self._closed_key != key:
            self._closed = prepare_complex(self.cells, self.n_vertices, max_dim=key[1] + 2)
            self._closed_key = key
        return self._closed

    def extendFloat(self, f) -> None:  # noqa: N802 - TopologyLayer's name
        """Set the vertex function (one value per vertex id) used by the next forward."""
        self._f, self._points = torch.as_tensor(f), None

    def extendFlag(self, x) -> None:  # noqa: N802
        """Set the point coordinates (``(n, d)``, one row per vertex id) of a flag filtration for the next forward:
        each simplex enters at its longest edge."""
        self._f, self._points = None, torch.as_tensor(x)

    def sortedOrder(self) -> None:  # noqa: N802
        """No-op (gpuph orders the simplices itself)."""

    def dim(self, j: int) -> int:
        return len(self.cells[j]) - 1

    def printCells(self) -> None:  # noqa: N802
        for c in self.cells:
            print(c)

    printComplex = printCells  # noqa: N815

    def printDims(self) -> None:  # noqa: N802
        for c in np.bincount([len(c) - 1 for c in self.cells]).tolist():
            print(c)

    def __len__(self) -> int:
        return len(self.cells)

    def __repr__(self) -> str:
        return f"SimplicialComplex({len(self.cells)} simplices, {self.n_vertices} vertices)"


def _forward(X: SimplicialComplex, maxdim: int) -> list[Tensor]:
    if not isinstance(X, SimplicialComplex):
        raise TypeError(f"gpuph.compat.topologylayer: expected a SimplicialComplex, got {type(X).__name__}")
    maxdim = check_maxdim(maxdim)
    if X._points is not None:
        return list(to_tuple(flag_persistence(X._points, X.cells, dims=tuple(range(maxdim + 1))), maxdim))
    if X._f is None:
        raise ValueError("gpuph.compat.topologylayer: call extendFloat(f) or extendFlag(x) before computing "
                         "persistence")
    f = X._f.reshape(-1)
    dgm = lower_star_persistence(f, X.closed(maxdim), maxdim=maxdim, sublevel=True)
    return list(to_tuple(dgm, maxdim))


def persistenceForwardHom(X: SimplicialComplex, maxdim: int, alg_opt: int = 0) -> list[Tensor]:  # noqa: N802
    """Sublevel diagrams of the filtration set by ``X.extendFloat(f)`` or ``X.extendFlag(x)``: a list with one
    ``(n_k, 2)`` tensor per dimension ``0 .. maxdim`` (zero-length bars not listed). ``alg_opt`` is accepted and
    ignored."""
    return _forward(X, maxdim)


def persistenceForwardCohom(X: SimplicialComplex, maxdim: int) -> list[Tensor]:  # noqa: N802
    """As :func:`persistenceForwardHom` (the diagrams of homology and cohomology are equal)."""
    return _forward(X, maxdim)
