"""TopologyLayer's point-cloud layers (``RipsLayer``, ``AlphaLayer``) over gpuph's point-cloud persistence."""

from __future__ import annotations

import math

from torch import Tensor, nn

from ....cubical import _as_tensor
from .._common import check_alg, check_maxdim, check_size, to_tuple

__all__ = ["AlphaLayer", "RipsLayer"]


def _gpuph_function(name: str):
    # Imported when first used: the point-cloud functions live in another part of gpuph than the image code.
    import gpuph

    fn = getattr(gpuph, name, None)
    if fn is None:
        raise NotImplementedError(f"gpuph.compat.topologylayer: this build of gpuph has no gpuph.{name}")
    return fn


class _PointCloudLayer(nn.Module):
    def __init__(self, maxdim: int, alg: str) -> None:
        super().__init__()
        self.maxdim = check_maxdim(maxdim)
        if self.maxdim > 2:  # refused at construction, not at the first forward
            raise ValueError(f"gpuph.compat.topologylayer: point-cloud layers compute homology dimensions 0, 1 and 2 "
                             f"only, got maxdim={self.maxdim}")
        self.alg = check_alg(alg)

    def _points(self, x) -> tuple[Tensor, bool]:
        x = _as_tensor(x)
        if x.dim() not in (2, 3):
            raise ValueError(f"gpuph.compat.topologylayer: expected points of shape (n, d) or a batch (B, n, d), "
                             f"got {tuple(x.shape)}")
        return x, x.dim() == 2

    def _result(self, dgm, single: bool):
        if single:
            return to_tuple(dgm, self.maxdim), True
        return dgm


class RipsLayer(_PointCloudLayer):
    """Vietoris-Rips persistence of a point cloud, TopologyLayer's ``RipsLayer``:
    ``gpuph.rips_persistence(x, dims=(0, ..., maxdim), max_edge_length=inf)``.

    Args:
        n: number of points.
        maxdim: highest homology dimension.
        alg: accepted and ignored.

    Input: ``(n, d)`` points (returns ``(dgms, True)``) or a batch ``(B, n, d)`` (returns a :class:`~gpuph.Diagrams`).
    """

    def __init__(self, n: int, maxdim: int = 1, alg: str = "hom") -> None:
        super().__init__(maxdim, alg)
        self.n = check_size(n, "n")

    def forward(self, x):
        x, single = self._points(x)
        if x.shape[-2] != self.n:
            raise ValueError(f"gpuph.compat.topologylayer: RipsLayer({self.n}) got {x.shape[-2]} points")
        fn = _gpuph_function("rips_persistence")
        return self._result(fn(x, dims=tuple(range(self.maxdim + 1)), max_edge_length=math.inf), single)

    def extra_repr(self) -> str:
        return f"n={self.n}, maxdim={self.maxdim}"


class AlphaLayer(_PointCloudLayer):
    """Weak-alpha persistence (the Rips filtration restricted to the Delaunay triangulation), TopologyLayer's
    ``AlphaLayer``: ``gpuph.weak_alpha_persistence(x, dims=(0, ..., maxdim), complex="delaunay")``.

    The complex is TopologyLayer's: the faces of scipy's Delaunay simplices, each entering with its longest edge.
    (``gpuph.weak_alpha_persistence``'s default, the flag complex of the Delaunay graph, has the same H0, and the
    same H1 for 2D clouds; H1 of 3D clouds and H2 can differ.)

    Args:
        maxdim: highest homology dimension.
        alg: accepted and ignored.

    Input: ``(n, d)`` points (returns ``(dgms, True)``) or a batch ``(B, n, d)`` (returns a :class:`~gpuph.Diagrams`).
    """

    def __init__(self, maxdim: int = 0, alg: str = "hom") -> None:
        super().__init__(maxdim, alg)

    def forward(self, x):
        x, single = self._points(x)
        fn = _gpuph_function("weak_alpha_persistence")
        return self._result(fn(x, dims=tuple(range(self.maxdim + 1)), complex="delaunay"), single)

    def extra_repr(self) -> str:
        return f"maxdim={self.maxdim}"
