"""``torch.nn`` modules over the functional API."""

from __future__ import annotations

from collections.abc import Iterable

from torch import Tensor, nn

from .cubical import CONSTRUCTIONS, cubical_persistence
from .diagrams import Diagrams


class CubicalPersistence(nn.Module):
    """:func:`gpuph.cubical_persistence` as a module: ``dgm = CubicalPersistence(...)(x)``.

    The module holds no state between calls (unlike TopologyLayer's layers, whose shared C++ complex is overwritten
    by the next forward), so several forwards may share one backward.

    Args: as :func:`gpuph.cubical_persistence` (``dims``, ``superlevel``, ``construction``, ``spatial_dims``).
    """

    def __init__(
        self,
        dims: int | Iterable[int] | None = None,
        superlevel: bool = True,
        construction: str = "V",
        spatial_dims: int | None = None,
    ) -> None:
        super().__init__()
        if construction not in CONSTRUCTIONS:
            raise ValueError(f"gpuph: construction must be one of {sorted(CONSTRUCTIONS)}, got {construction!r}")
        self.dims = None if dims is None else (tuple(dims) if isinstance(dims, Iterable) else dims)
        self.superlevel = superlevel
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
