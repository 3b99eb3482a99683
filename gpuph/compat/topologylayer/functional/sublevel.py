"""TopologyLayer's ``SubLevelSetDiagram`` (``topologylayer.functional.sublevel``)."""

from __future__ import annotations

from torch import Tensor

from ....lower_star import lower_star_persistence
from .._common import check_alg, check_maxdim, to_tuple


class SubLevelSetDiagram:
    """``SubLevelSetDiagram.apply(X, f, maxdim, alg='hom')``: the sublevel diagrams of ``f`` on the complex ``X``,
    a tuple of ``(n_k, 2)`` tensors, differentiable with respect to ``f`` (through gpuph's gather, not a custom
    autograd Function: nothing is stored on ``X``)."""

    @staticmethod
    def apply(X, f: Tensor, maxdim: int, alg: str = "hom") -> tuple[Tensor, ...]:
        check_alg(alg)
        maxdim = check_maxdim(maxdim)
        simplices = X.closed(maxdim) if hasattr(X, "closed") else X
        dgm = lower_star_persistence(f.reshape(-1), simplices, maxdim=maxdim, sublevel=True)
        return to_tuple(dgm, maxdim)
