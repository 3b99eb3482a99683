"""``torch.nn`` modules over the functional API."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from torch import Tensor, nn

from ._common import check_finite_number, check_flag, check_spatial_dims, dims_mask
from .cubical import check_construction, cubical_persistence
from .diagrams import Diagrams, check_homology_dim
from .losses import (
    _check_i0,
    _check_k,
    _check_reduction,
    betti_loss,
    persistence_energy,
)

__all__ = ["BettiLoss", "CubicalPersistence", "TopologyLoss"]


class CubicalPersistence(nn.Module):
    """:func:`gpuph.cubical_persistence` as a module: ``dgm = CubicalPersistence(...)(x)``.

    The module holds no state between calls (unlike TopologyLayer's layers, whose shared C++ complex is overwritten
    by the next forward), so several forwards may share one backward.

    Args: as :func:`gpuph.cubical_persistence` (``dims``, ``superlevel``, ``construction``, ``spatial_dims``).

    Raises:
        ValueError, TypeError: at construction, for settings :func:`gpuph.cubical_persistence` would refuse whatever
            the input (``dims`` past a given ``spatial_dims`` included).
    """

    def __init__(
        self,
        dims: int | Iterable[int] | None = None,
        superlevel: bool = True,
        construction: str = "V",
        spatial_dims: int | None = None,
    ) -> None:
        super().__init__()
        check_construction(construction)
        if isinstance(dims, (Tensor, np.ndarray)):
            dims = dims.tolist()
        self.dims = None if dims is None else (tuple(dims) if isinstance(dims, Iterable) else dims)
        # What every input would refuse is refused here: the dimensions' range where the grids' is known, else
        # their type and the 3D grids' range.
        sd = 3 if spatial_dims is None else check_spatial_dims(spatial_dims)
        dims_mask(self.dims, sd, f"homology dimension {{k}} out of range 0..{sd - 1} for {sd}D grids")
        self.superlevel = check_flag(superlevel, "superlevel")
        self.construction = construction
        self.spatial_dims = spatial_dims

    def forward(self, x: Tensor) -> Diagrams:
        return cubical_persistence(
            x, dims=self.dims, superlevel=self.superlevel, construction=self.construction,
            spatial_dims=self.spatial_dims,
        )

    def extra_repr(self) -> str:
        return (f"dims={self.dims}, superlevel={self.superlevel}, construction={self.construction!r}, "
                f"spatial_dims={self.spatial_dims}")


class _CubicalLoss(CubicalPersistence):
    """Shared part of the loss modules: the persistence settings of :class:`CubicalPersistence`, computing only the
    one dimension the loss needs, and a weight."""

    def __init__(
        self, dim: int, reduction: str, weight: float, superlevel: bool, construction: str, spatial_dims: int | None
    ) -> None:
        super().__init__(check_homology_dim(dim), superlevel, construction, spatial_dims)
        _check_reduction(reduction)
        self.dim = self.dims
        self.reduction = reduction
        self.weight = check_finite_number("weight", weight)

    def _weighted(self, value: Tensor) -> Tensor:
        return value if self.weight == 1.0 else self.weight * value

    def diagrams(self, x: Tensor) -> Diagrams:
        """The diagrams (dimension ``dim`` only) that the loss is computed from."""
        return super().forward(x)

    def _settings_repr(self) -> str:
        return f"weight={self.weight}, " + CubicalPersistence.extra_repr(self).split(", ", 1)[1]


class TopologyLoss(_CubicalLoss):
    r"""``weight * persistence_energy(cubical_persistence(x), dim, p, q, i0)`` as a module: ``loss = topo(x)``.

    The TopologyLayer paper's :math:`E(p, q, i_0; PD_{dim})` (see :func:`gpuph.losses.persistence_energy`) of the
    diagrams of a whole batch, one call without a loop over images; only dimension ``dim`` is computed. A negative
    ``weight`` maximises the feature. Stateless, so several forwards may share one backward.

    Args:
        dim: homology dimension.
        p, q, i0: the energy's exponents and first rank (1-based; ``i0=2`` skips the most persistent class).
        reduction: ``"mean"`` (over images), ``"sum"`` or ``"none"`` (a ``(B,)`` tensor).
        weight: factor applied to the loss (a finite number).
        superlevel, construction, spatial_dims: as :func:`gpuph.cubical_persistence`.

    Shape:
        - Input: ``(*, *grid)`` with ``spatial_dims`` grid axes (e.g. ``(B, 1, 28, 28)`` with ``spatial_dims=2``).
        - Output: a scalar, or ``(B,)`` with ``reduction="none"`` (``B`` the product of the leading axes).

    Example (the paper's GAN regulariser: one component per generated digit, penalising every other bright
    component of the superlevel filtration)::

        >>> topo = gpuph.nn.TopologyLoss(dim=0, p=1, q=0, i0=2, superlevel=True, construction="V", spatial_dims=2)
        >>> fake = generator(z)                         # (B, 1, 28, 28)
        >>> g_loss = adversarial_loss(discriminator(fake)) + lam * topo(fake)
        >>> g_loss.backward()

    Raises:
        ValueError: as :func:`gpuph.losses.persistence_energy` and :func:`gpuph.cubical_persistence`, at
            construction for bad settings.
    """

    def __init__(
        self,
        dim: int = 0,
        p: float = 1.0,
        q: float = 0.0,
        i0: int = 1,
        reduction: str = "mean",
        weight: float = 1.0,
        superlevel: bool = True,
        construction: str = "V",
        spatial_dims: int | None = None,
    ) -> None:
        super().__init__(dim, reduction, weight, superlevel, construction, spatial_dims)
        self.p, self.q = check_finite_number("p", p), check_finite_number("q", q)
        self.i0 = _check_i0(i0)

    def forward(self, x: Tensor) -> Tensor:
        return self._weighted(persistence_energy(self.diagrams(x), self.dim, self.p, self.q, self.i0, self.reduction))

    def extra_repr(self) -> str:
        return (f"dim={self.dim}, p={self.p}, q={self.q}, i0={self.i0}, reduction={self.reduction!r}, "
                + self._settings_repr())


class BettiLoss(_CubicalLoss):
    """``weight * betti_loss(cubical_persistence(x), dim, k, p)`` as a module: a prior for ``k`` classes in
    dimension ``dim`` (see :func:`gpuph.losses.betti_loss`; its reward term is unbounded, so use it on bounded
    outputs or weigh it against a data term).

    Args:
        dim: homology dimension.
        k: the wanted number of classes.
        p: exponent of the lifetimes.
        reduction, weight, superlevel, construction, spatial_dims: as :class:`TopologyLoss`.

    Shape: as :class:`TopologyLoss`.
    """

    def __init__(
        self,
        dim: int = 0,
        k: int = 1,
        p: float = 1.0,
        reduction: str = "mean",
        weight: float = 1.0,
        superlevel: bool = True,
        construction: str = "V",
        spatial_dims: int | None = None,
    ) -> None:
        super().__init__(dim, reduction, weight, superlevel, construction, spatial_dims)
        self.k = _check_k(k)
        self.p = check_finite_number("p", p)

    def forward(self, x: Tensor) -> Tensor:
        return self._weighted(betti_loss(self.diagrams(x), self.dim, self.k, self.p, self.reduction))

    def extra_repr(self) -> str:
        return f"dim={self.dim}, k={self.k}, p={self.p}, reduction={self.reduction!r}, " + self._settings_repr()
