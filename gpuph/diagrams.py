"""The ``Diagrams`` container: persistence pairs of a batch of grids, ragged over the batch (like PyG's ``Batch``)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from torch import Tensor

from ._common import host_numpy, is_integer_at_least


def group_positions(group: Tensor, ngroups: int, sel: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """For rows ordered by ``group`` (``(N,)`` int64 in ``0..ngroups-1``, e.g. a diagram's ``batch``): the ``(N,)``
    int64 0-based position of each row among the rows of its group, counting only the rows with ``sel`` set
    (``(N,)`` int64 0/1; default all rows; meaningless for the others), and the ``(ngroups,)`` int64 counts.

    No branch on ``N`` and no ``bincount`` (whose output size depends on the data): ``torch.compile`` traces it in
    one graph, and on the GPU it makes no device-to-host synchronisation.
    """
    if ngroups == 0:  # no groups, so no rows (and torch.compile's inductor cannot index into no elements)
        return torch.zeros_like(group), torch.zeros(0, dtype=torch.int64, device=group.device)
    ones = torch.ones_like(group) if sel is None else sel
    counts = torch.zeros(ngroups, dtype=torch.int64, device=group.device).index_add_(0, group, ones)
    starts = torch.cumsum(counts, 0) - counts
    return torch.cumsum(ones, 0) - 1 - starts[group], counts


_INTEGER_DTYPES = (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8)


def group_sums(values: Tensor, group: Tensor, ngroups: int) -> Tensor:
    """``(ngroups,)`` sums of ``values`` (``(N,)``, differentiable) over the rows of each group (``group`` as for
    :func:`group_positions`): one ``index_add``, no synchronisation. Half-precision values add up in float32 and the
    sums come back in their dtype, as ``torch.sum`` does."""
    if ngroups == 0:  # no groups, so no rows (and torch.compile's inductor cannot index into no elements)
        return values[:0]
    # In their own dtype a bfloat16 sum of 500 unit lengths stalls at 256, where the spacing of its values is 2.
    acc = torch.float32 if values.dtype in (torch.float16, torch.bfloat16) else values.dtype
    return values.new_zeros(ngroups, dtype=acc).index_add(0, group, values.to(acc)).to(values.dtype)


def check_homology_dim(dim) -> int:
    """``dim`` as an ``int`` (an integer ``>= 0``, ``bool`` excluded; a float of integral value is taken).

    Raises:
        ValueError: anything else.
    """
    if not is_integer_at_least(dim, 0):
        raise ValueError(f"gpuph: dim must be a homology dimension (an integer >= 0), got {dim!r}")
    return int(dim)


# eq=False: equality is identity (the generated __eq__ compared tensors, whose truth value is ambiguous).
@dataclass(repr=False, eq=False)
class Diagrams:
    """Persistence diagrams of a batch of images, as one flat list of pairs.

    Attributes:
        pairs: ``(N, 2)`` tensor of (birth, death) values in the input's dtype and device, differentiable with respect
            to the input: each value is the input value at one critical pixel. Superlevel diagrams have
            ``birth >= death`` and essential classes die at ``-inf``; sublevel diagrams have ``birth <= death`` and
            essential classes die at ``+inf``.
        dim: ``(N,)`` int64 homology dimension of each pair.
        batch: ``(N,)`` int64 index of the image (flattened over all leading axes, C order) each pair belongs to.
        birth_index: ``(N,)`` int64 flat C-order index, within its grid, of the pixel whose value is the birth.
        death_index: ``(N,)`` int64 likewise for the death; ``-1`` for essential classes.
        batch_size: number of images ``B`` (the product of the leading axes).
        spatial_shape: shape of each grid.
        superlevel: filtration direction.
        construction: ``"V"``, ``"T"`` or ``"freudenthal"``.
        batch_shape: the leading (batch) axes of the input, whose product is ``batch_size``.
        filtration_end: ``(batch_size,)`` tensor (``pairs``' dtype and device, differentiable) with the last value of
            each image's filtration: the image minimum for superlevel, maximum for sublevel (for point clouds, the
            largest filtration value). Losses that give essential classes a finite death use it. ``None`` when unknown.
        dims: the homology dimensions computed, ascending (``None``: ``0 .. ndim - 1``); see :attr:`computed_dims`.

    Pairs are ordered by image, then dimension, then lifetime descending (essential classes first, among themselves
    by birth in filtration order: the earliest born lives longest once closed at ``filtration_end``), then birth
    index, then death index. Zero-length pairs are never present.
    """

    pairs: Tensor
    dim: Tensor
    batch: Tensor
    birth_index: Tensor
    death_index: Tensor
    batch_size: int
    spatial_shape: tuple[int, ...]
    superlevel: bool
    construction: str
    batch_shape: tuple[int, ...] = field(default=())
    filtration_end: Tensor | None = None
    dims: tuple[int, ...] | None = None

    # ---------------------------------------------------------------------------------------------- selection
    def __len__(self) -> int:
        return int(self.pairs.shape[0])

    @property
    def device(self) -> torch.device:
        return self.pairs.device

    @property
    def ndim(self) -> int:
        """Number of spatial dimensions of the grids."""
        return len(self.spatial_shape)

    @property
    def computed_dims(self) -> tuple[int, ...]:
        """The homology dimensions these diagrams hold, each possibly with no pairs: those computed (``dims`` of
        :func:`~gpuph.cubical_persistence` and of the point-cloud functions, ``0 .. maxdim`` of lower-star ones).
        The losses, barcode features and distances refuse any other dimension (:meth:`check_dim`) instead of
        reading it as empty."""
        return tuple(range(self.ndim)) if self.dims is None else self.dims

    def check_dim(self, dim: int) -> int:
        """``dim`` as an ``int``, checked to be one of :attr:`computed_dims`.

        Raises:
            ValueError: ``dim`` is not a non-negative integer, or not a dimension these diagrams hold.
        """
        dim = check_homology_dim(dim)
        if dim not in self.computed_dims:
            have = ", ".join(map(str, self.computed_dims)) or "none"
            raise ValueError(f"gpuph: no diagram of dimension {dim}: these diagrams hold only dimension(s) {have}, "
                             "those computed (read as empty, it would silently give a feature of 0)")
        return dim

    def _rows(self, keep: Tensor, **meta) -> Diagrams:
        if self.batch_size == 0:  # no rows (and torch.compile's inductor cannot index into no elements)
            return replace(self, **meta)
        idx = keep.nonzero().squeeze(1)  # one synchronisation on a GPU, not one per field as boolean indexing makes
        return replace(
            self,
            pairs=self.pairs.index_select(0, idx),
            dim=self.dim.index_select(0, idx),
            batch=self.batch.index_select(0, idx),
            birth_index=self.birth_index.index_select(0, idx),
            death_index=self.death_index.index_select(0, idx),
            **meta,
        )

    def select(self, batch: int | None = None, dim: int | None = None) -> Diagrams:
        """Pairs of one image and/or one dimension.

        Selecting an image keeps its index in ``batch`` and the original ``batch_size``; use :meth:`image` for a
        stand-alone one-image ``Diagrams``. Selecting a dimension leaves only that one in :attr:`computed_dims`.

        Raises:
            IndexError: ``batch`` out of range (negative values count from the end).
            ValueError: ``dim`` is not one of :attr:`computed_dims`.
        """
        keep = torch.ones(len(self), dtype=torch.bool, device=self.dim.device)
        meta = {}
        if batch is not None:
            b = self._check_image(batch)
            keep &= self.batch == b
        if dim is not None:
            k = self.check_dim(dim)
            keep &= self.dim == k
            meta["dims"] = (k,)
        return self._rows(keep, **meta)

    def image(self, b: int) -> Diagrams:
        """The diagrams of image ``b`` alone (``batch_size == 1``)."""
        b = self._check_image(b)
        end = None if self.filtration_end is None else self.filtration_end[b : b + 1]
        out = self._rows(self.batch == b, batch_size=1, batch_shape=(1,), filtration_end=end)
        out.batch = torch.zeros_like(out.batch)
        return out

    def in_dim(self, k: int) -> Diagrams:
        """Pairs of homology dimension ``k`` (all images)."""
        return self.select(dim=k)

    def finite(self) -> Diagrams:
        """Pairs with a finite death (drops the essential classes)."""
        return self._rows(self.death_index >= 0)

    def essential(self) -> Diagrams:
        """The essential classes (one H0 class per image for a full grid)."""
        return self._rows(self.death_index < 0)

    def _check_image(self, b: int) -> int:
        integer_tensor = isinstance(b, Tensor) and b.numel() == 1 and b.dtype in _INTEGER_DTYPES
        if isinstance(b, bool) or not (isinstance(b, (int, np.integer)) or integer_tensor):
            raise TypeError(f"gpuph: an image index must be an integer, got {b!r}")
        b = given = int(b)
        if b < 0:
            b += self.batch_size
        if not 0 <= b < self.batch_size:
            raise IndexError(f"gpuph: image {given} out of range for a batch of {self.batch_size}")
        return b

    # ---------------------------------------------------------------------------------------------- values
    def lifetimes(self) -> Tensor:
        """``(N,)`` non-negative ``|death - birth|`` (``inf`` for essential classes), differentiable."""
        life = (self.pairs[:, 0] - self.pairs[:, 1]).abs()
        # An essential class born at an infinite value has inf - inf = NaN: its lifetime is inf all the same.
        return life.masked_fill(self.death_index < 0, math.inf)

    def counts(self) -> Tensor:
        """``(batch_size, ndim)`` int64 number of pairs per image and dimension."""
        c = torch.zeros(self.batch_size * self.ndim, dtype=torch.int64, device=self.dim.device)
        c.index_add_(0, self.batch * self.ndim + self.dim, torch.ones_like(self.dim))
        return c.view(self.batch_size, self.ndim)

    def padded(self, dim: int | None = None, fill: float = 0.0) -> tuple[Tensor, Tensor]:
        """Pairs as a dense ``(B, K, 2)`` tensor plus a ``(B, K)`` bool mask, ``K`` the largest count per image.

        Rows keep the diagram order within each image; padding rows hold ``fill`` and are ``False`` in the mask.
        Differentiable with respect to the input.
        """
        d = self if dim is None else self.select(dim=dim)
        B = self.batch_size
        if B == 0:  # (inductor cannot index into no elements)
            return d.pairs.reshape(0, 0, 2), torch.zeros(0, 0, dtype=torch.bool, device=d.pairs.device)
        # No branch on the number of pairs (torch.compile would have to guard on it).
        pos, counts = group_positions(d.batch, B)
        K = int(counts.max()) if B > 0 else 0
        out = d.pairs.new_full((B, K, 2), fill)
        out = out.index_put((d.batch, pos), d.pairs)
        mask = torch.zeros(B, K, dtype=torch.bool, device=d.pairs.device)
        mask[d.batch, pos] = True
        return out, mask

    # ---------------------------------------------------------------------------------------------- export
    def to(self, device: torch.device | str) -> Diagrams:
        """A copy on ``device`` (``pairs`` stays differentiable).

        Raises:
            TypeError: a dtype instead of a device (the indices must stay int64: convert ``pairs`` itself).
        """
        if isinstance(device, torch.dtype):
            raise TypeError(f"gpuph: Diagrams.to takes a device, got the dtype {device}; the indices stay int64, so "
                            "convert the values themselves (dgm.pairs.to(dtype))")
        return replace(
            self,
            pairs=self.pairs.to(device),
            dim=self.dim.to(device),
            batch=self.batch.to(device),
            birth_index=self.birth_index.to(device),
            death_index=self.death_index.to(device),
            filtration_end=None if self.filtration_end is None else self.filtration_end.to(device),
        )

    def detach(self) -> Diagrams:
        end = None if self.filtration_end is None else self.filtration_end.detach()
        return replace(self, pairs=self.pairs.detach(), filtration_end=end)

    def to_numpy(self) -> list[list[np.ndarray]]:
        """GUDHI-style export: ``out[b][k]`` is a float64 ``(n, 2)`` array of (birth, death) of image ``b`` in
        dimension ``k`` (as ``persistence_intervals_in_dimension(k)``), in gpuph's units and order.

        GUDHI itself only knows sublevel filtrations: for a superlevel diagram, the GUDHI diagram of ``-x`` is
        ``-out[b][k]``.
        """
        pairs = host_numpy(self.pairs, torch.float64)
        batch, dims = host_numpy(self.batch), host_numpy(self.dim)
        starts = np.searchsorted(batch, np.arange(self.batch_size + 1))
        out = []
        for b in range(self.batch_size):
            sl = slice(starts[b], starts[b + 1])
            pb, db = pairs[sl], dims[sl]
            out.append([pb[db == k] for k in range(self.ndim)])
        return out

    def to_cupy(self) -> list[list]:
        """Like :meth:`to_numpy`, as CuPy float64 arrays on the diagrams' GPU (zero-copy views through DLPack of one
        float64 copy of ``pairs``). Needs CuPy and diagrams on a CUDA device.

        Raises:
            ImportError: CuPy is not installed.
            ValueError: the diagrams are not on a CUDA device.
        """
        try:
            import cupy
        except ImportError as exc:
            raise ImportError("gpuph: Diagrams.to_cupy needs CuPy (pip install cupy-cuda12x or cupy-cuda13x)") from exc
        if self.pairs.device.type != "cuda":
            raise ValueError(f"gpuph: to_cupy needs diagrams on a CUDA device, these are on {self.pairs.device}")
        pairs = cupy.from_dlpack(self.pairs.detach().to(torch.float64).contiguous())
        # Rows are sorted by (image, dim): every (image, dim) run is one contiguous slice.
        key = self.batch * self.ndim + self.dim
        runs = torch.arange(self.batch_size * self.ndim + 1, device=key.device)
        starts = torch.searchsorted(key, runs).tolist()
        return [
            [pairs[starts[b * self.ndim + k] : starts[b * self.ndim + k + 1]] for k in range(self.ndim)]
            for b in range(self.batch_size)
        ]

    def __repr__(self) -> str:
        counts = self.counts().sum(0).tolist() if self.batch_size else [0] * self.ndim
        per_dim = ", ".join(f"H{k}={counts[k] if k < len(counts) else 0}" for k in self.computed_dims) or "none"
        kind = "superlevel" if self.superlevel else "sublevel"
        return (
            f"Diagrams(batch_size={self.batch_size}, spatial_shape={tuple(self.spatial_shape)}, {kind}, "
            f"construction={self.construction!r}, pairs: {per_dim}, dtype={self.pairs.dtype}, device={self.device})"
        )


@dataclass(repr=False, eq=False)
class ComplexDiagrams(Diagrams):
    """:class:`Diagrams` of a filtered simplicial complex rather than a grid (point clouds, lower-star filtrations):
    ``ndim``, the number of homology dimensions (``counts()``, ``to_numpy()``), is ``maxdim + 1``, ``maxdim`` the
    highest homology dimension computed, not ``len(spatial_shape)``."""

    maxdim: int = 0

    @property
    def ndim(self) -> int:
        return self.maxdim + 1
