"""TopologyLayer's ``FlagDiagram`` (``topologylayer.functional.flag``)."""

from __future__ import annotations

from torch import Tensor

from ....point_cloud import flag_persistence
from .._common import check_alg, check_maxdim, to_tuple


class FlagDiagram:
    """``FlagDiagram.apply(X, y, maxdim, alg='hom')``: the diagrams of the flag filtration of the complex ``X`` on
    the points ``y`` (``(n, d)``; each simplex enters at its longest edge), a tuple of ``(n_k, 2)`` tensors for
    ``k = 0 .. maxdim`` (at most 2), differentiable with respect to ``y``: :func:`gpuph.flag_persistence`. ``X`` is
    a :class:`~gpuph.compat.topologylayer.SimplicialComplex` or anything ``flag_persistence`` takes."""

    @staticmethod
    def apply(X, y: Tensor, maxdim: int, alg: str = "hom") -> tuple[Tensor, ...]:
        check_alg(alg)
        maxdim = check_maxdim(maxdim)
        dgm = flag_persistence(y, getattr(X, "cells", X), dims=tuple(range(maxdim + 1)))
        return to_tuple(dgm, maxdim)
