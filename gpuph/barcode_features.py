"""TopologyLayer's barcode features (Brüel-Gabrielsson et al., "A Topology Layer for Machine Learning"), batched.

Each feature reads one homology dimension of either a :class:`~gpuph.Diagrams` (any batch: one result row per image,
computed without a Python loop over images) or TopologyLayer's ``(dgms, issublevel)`` tuple (one image, the output of
its layers and of :mod:`gpuph.compat.topologylayer`), with TopologyLayer's formulas and conventions:

- a bar's *start* and *end* are ``(birth, death)`` for sublevel diagrams and ``(death, birth)`` for superlevel ones,
  so that ``length = end - start >= 0`` in both;
- a length equal to ``+inf`` (an essential class) or NaN counts as 0, and so does the midpoint of such a bar;
- top-k lists are zero-padded (or truncated) to ``k``.

gpuph's diagrams contain no zero-length bars, TopologyLayer's contain many; every feature except
``BarcodePolyFeature(..., remove_zero=False)`` with ``p == 0`` gives the same value either way (a zero-length bar adds
0 to a sum of lengths and sorts among the zero padding of a top-k list).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from ._common import check_finite_number, check_flag
from .diagrams import Diagrams, check_homology_dim, group_positions, group_sums

__all__ = [
    "BarcodePolyFeature",
    "PartialSumBarcodeLengths",
    "SumBarcodeLengths",
    "TopKBarcodeLengths",
    "barcode_poly_feature",
    "partial_sum_barcode_lengths",
    "sum_barcode_lengths",
    "top_k_barcode_lengths",
]


class _Bars:
    """The bars of one homology dimension: ``pairs (N, 2)``, ``batch (N,)``, number of images, direction, whether
    the input was batched (a ``Diagrams``) or one TopologyLayer tuple, and for a ``Diagrams`` the ``(N,)`` mask
    ``use`` of its rows that are bars of that dimension. Rows are masked, not selected, so that no output size
    depends on the data: a feature of a ``Diagrams`` on the GPU makes no device-to-host synchronisation."""

    def __init__(
        self, pairs: Tensor, batch: Tensor, batch_size: int, sublevel: bool, batched: bool, use: Tensor | None = None
    ) -> None:
        self.pairs, self.batch, self.batch_size = pairs, batch, batch_size
        self.sublevel, self.batched, self.use = sublevel, batched, use

    def without_zero_length(self) -> _Bars:
        nonzero = self.pairs[:, 0] != self.pairs[:, 1]
        if self.use is not None:
            return _Bars(self.pairs, self.batch, self.batch_size, self.sublevel, True, self.use & nonzero)
        return _Bars(self.pairs[nonzero], self.batch[nonzero], self.batch_size, self.sublevel, self.batched)

    def masked(self, values: Tensor, fill: float = 0.0) -> Tensor:
        """``values`` where the row is a bar, ``fill`` elsewhere (a ``where``: no gradient reaches other rows)."""
        if self.use is None:
            return values
        return torch.where(self.use, values, torch.full_like(values, fill))


def _check_index(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"gpuph: {name} must be a non-negative int, got {value!r}")
    return int(value)


def _bars(dgminfo, dim: int) -> _Bars:
    dim = check_homology_dim(dim)  # as the losses and distances take it
    if isinstance(dgminfo, Diagrams):
        d = dgminfo
        d.check_dim(dim)  # as for tuples below: no diagram of that dimension exists (not an empty one)
        return _Bars(d.pairs, d.batch, d.batch_size, not d.superlevel, True, d.dim == dim)
    if not (isinstance(dgminfo, Sequence) and len(dgminfo) == 2):
        raise TypeError(
            "gpuph: expected a gpuph.Diagrams or TopologyLayer's (dgms, issublevel) tuple, "
            f"got {type(dgminfo).__name__}"
        )
    if not isinstance(dgminfo[1], (bool, np.bool_)):
        raise TypeError(f"gpuph: issublevel, the second item of a (dgms, issublevel) tuple, must be a bool, got "
                        f"{dgminfo[1]!r}")
    dgms, issublevel = dgminfo
    if not isinstance(dgms, Sequence) or isinstance(dgms, Tensor):
        raise TypeError(f"gpuph: dgms must be a tuple of (n_k, 2) tensors, got {type(dgms).__name__}")
    if dim >= len(dgms):
        raise ValueError(f"gpuph: no diagram of dimension {dim}: the layer computed dimensions 0..{len(dgms) - 1}")
    pairs = torch.as_tensor(dgms[dim])
    if pairs.dim() != 2 or pairs.shape[1] != 2:
        raise ValueError(f"gpuph: dgms[{dim}] must have shape (n, 2), got {tuple(pairs.shape)}")
    batch = torch.zeros(pairs.shape[0], dtype=torch.int64, device=pairs.device)
    return _Bars(pairs, batch, 1, bool(issublevel), False)


def _start_end(bars: _Bars) -> tuple[Tensor, Tensor]:
    if bars.sublevel:
        return bars.pairs[:, 0], bars.pairs[:, 1]
    return bars.pairs[:, 1], bars.pairs[:, 0]


def _lengths_means(bars: _Bars) -> tuple[Tensor, Tensor]:
    """TopologyLayer's lengths and midpoints; both 0 where the length is +inf or NaN."""
    start, end = _start_end(bars)
    lengths = end - start
    means = (end + start) / 2
    drop = (lengths == math.inf) | torch.isnan(lengths)
    zero = torch.zeros_like(lengths)
    return torch.where(drop, zero, lengths), torch.where(drop, zero, means)


def _per_image_sum(bars: _Bars, terms: Tensor) -> Tensor:
    if not bars.batched:
        return terms.sum(0)
    return group_sums(bars.masked(terms), bars.batch, bars.batch_size)


def _rank_by_length(bars: _Bars, lengths: Tensor) -> Tensor:
    """``(N,)`` 0-based rank of each bar among its image's bars by length, longest first (ties by row order); rows
    that are not bars rank after them. Two stable sorts, no synchronisation."""
    if bars.batch_size == 0:  # (no rows; inductor cannot index into no elements)
        return torch.zeros_like(bars.batch)
    key = bars.masked(lengths.detach(), -1.0)  # lengths are >= 0
    order = torch.argsort(key, descending=True, stable=True)
    order = order[torch.argsort(bars.batch[order], stable=True)]
    rank = torch.empty_like(order)
    rank[order] = group_positions(bars.batch[order], bars.batch_size)[0]
    return rank


def _sorted_lengths(bars: _Bars, width: int) -> Tensor:
    """``(K,)`` lengths of one TopologyLayer tuple's bars sorted descending, then zero-padded to ``K >= width`` (as
    TopologyLayer pads its sorted lengths)."""
    lengths = _lengths_means(bars)[0].sort(descending=True).values
    return torch.cat([lengths, lengths.new_zeros(max(width - lengths.shape[0], 0))])


# ---------------------------------------------------------------------------------------------- functional forms
def sum_barcode_lengths(dgminfo, dim: int = 0) -> Tensor:
    """Sum of the bar lengths in dimension ``dim`` (infinite bars count 0).

    Returns:
        ``(B,)`` for a :class:`~gpuph.Diagrams` of ``B`` images; a 0-dim tensor for a ``(dgms, issublevel)`` tuple.
    """
    bars = _bars(dgminfo, dim)
    lengths, _ = _lengths_means(bars)
    return _per_image_sum(bars, lengths)


def top_k_barcode_lengths(dgminfo, dim: int, k: int) -> Tensor:
    """The ``k`` largest bar lengths in dimension ``dim``, descending, zero-padded to ``k`` (infinite bars count 0).

    Returns:
        ``(B, k)`` for a :class:`~gpuph.Diagrams`; ``(k,)`` for a ``(dgms, issublevel)`` tuple.
    """
    k = _check_index(k, "k")
    bars = _bars(dgminfo, dim)
    if not bars.batched:
        return _sorted_lengths(bars, k)[:k]
    lengths, _ = _lengths_means(bars)
    if bars.batch_size == 0:  # (no rows; inductor cannot index into no elements)
        return lengths[:0].unsqueeze(1).expand(0, k)
    rank = _rank_by_length(bars, lengths)
    top = bars.use & (rank < k)
    # Each image's top k bars into its row of a (B, k + 1) table, every other row into the spare last column.
    col = torch.where(top, rank, torch.full_like(rank, k))
    table = lengths.new_zeros(bars.batch_size, k + 1)
    table = table.index_put((bars.batch, col), torch.where(top, lengths, torch.zeros_like(lengths)), accumulate=True)
    return table[:, :k]


def partial_sum_barcode_lengths(dgminfo, dim: int, skip: int) -> Tensor:
    """Sum of the bar lengths in dimension ``dim`` after leaving out the ``skip`` longest. Infinite bars count 0, so
    ``skip=1`` leaves out the longest *finite* bar, not the essential class (TopologyLayer's convention).

    Returns:
        ``(B,)`` for a :class:`~gpuph.Diagrams`; a 0-dim tensor for a ``(dgms, issublevel)`` tuple.
    """
    skip = _check_index(skip, "skip")
    bars = _bars(dgminfo, dim)
    if not bars.batched:
        return _sorted_lengths(bars, 0)[skip:].sum()
    lengths, _ = _lengths_means(bars)
    kept = torch.where(_rank_by_length(bars, lengths) >= skip, lengths, torch.zeros_like(lengths))
    return _per_image_sum(bars, kept)


def barcode_poly_feature(dgminfo, dim: int, p: float, q: float, remove_zero: bool = True) -> Tensor:
    r"""Adcock-Carlsson-Carlsson polynomial feature :math:`\sum_i \mathrm{length}_i^p \, \mathrm{mean}_i^q` over the
    bars of dimension ``dim``, mean being the bar's midpoint ``(start + end) / 2``.

    As in TopologyLayer, an infinite bar has length 0 and mean 0 and so contributes ``0**p * 0**q`` (which is 1 for
    ``p == q == 0``, as ``torch.pow`` defines it). ``remove_zero`` drops bars with ``birth == death`` first (gpuph's
    diagrams have none, so it only matters for tuples).

    Returns:
        ``(B,)`` for a :class:`~gpuph.Diagrams`; a 0-dim tensor for a ``(dgms, issublevel)`` tuple.
    """
    p, q = check_finite_number("p", p), check_finite_number("q", q)
    bars = _bars(dgminfo, dim)
    if check_flag(remove_zero, "remove_zero"):
        bars = bars.without_zero_length()
    lengths, means = _lengths_means(bars)
    # Other rows read 1 and 1: finite powers, so their masked-out terms pass no NaN gradient.
    return _per_image_sum(bars, torch.pow(bars.masked(lengths, 1.0), p) * torch.pow(bars.masked(means, 1.0), q))


# ---------------------------------------------------------------------------------------------- modules
class SumBarcodeLengths(nn.Module):
    """TopologyLayer's ``SumBarcodeLengths(dim=0)``: :func:`sum_barcode_lengths` as a module.

    ``forward(dgminfo)`` takes a :class:`~gpuph.Diagrams` (returns ``(B,)``) or a ``(dgms, issublevel)`` tuple
    (returns a 0-dim tensor).
    """

    def __init__(self, dim: int = 0) -> None:
        super().__init__()
        self.dim = check_homology_dim(dim)

    def forward(self, dgminfo) -> Tensor:
        return sum_barcode_lengths(dgminfo, self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class TopKBarcodeLengths(nn.Module):
    """TopologyLayer's ``TopKBarcodeLengths(dim, k)``: :func:`top_k_barcode_lengths` as a module.

    ``forward(dgminfo)`` returns ``(B, k)`` for a :class:`~gpuph.Diagrams`, ``(k,)`` for a tuple.
    """

    def __init__(self, dim: int, k: int) -> None:
        super().__init__()
        self.dim = check_homology_dim(dim)
        self.k = _check_index(k, "k")

    def forward(self, dgminfo) -> Tensor:
        return top_k_barcode_lengths(dgminfo, self.dim, self.k)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, k={self.k}"


class PartialSumBarcodeLengths(nn.Module):
    """TopologyLayer's ``PartialSumBarcodeLengths(dim, skip)``: :func:`partial_sum_barcode_lengths` as a module.

    ``forward(dgminfo)`` returns ``(B,)`` for a :class:`~gpuph.Diagrams`, a 0-dim tensor for a tuple.
    """

    def __init__(self, dim: int, skip: int) -> None:
        super().__init__()
        self.dim = check_homology_dim(dim)
        self.skip = _check_index(skip, "skip")

    def forward(self, dgminfo) -> Tensor:
        return partial_sum_barcode_lengths(dgminfo, self.dim, self.skip)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, skip={self.skip}"


class BarcodePolyFeature(nn.Module):
    """TopologyLayer's ``BarcodePolyFeature(dim, p, q, remove_zero=True)``: :func:`barcode_poly_feature` as a module.

    ``forward(dgminfo)`` returns ``(B,)`` for a :class:`~gpuph.Diagrams`, a 0-dim tensor for a tuple.
    """

    def __init__(self, dim: int, p: float, q: float, remove_zero: bool = True) -> None:
        super().__init__()
        self.dim = check_homology_dim(dim)
        self.p, self.q = check_finite_number("p", p), check_finite_number("q", q)
        self.remove_zero = check_flag(remove_zero, "remove_zero")

    def forward(self, dgminfo) -> Tensor:
        return barcode_poly_feature(dgminfo, self.dim, self.p, self.q, self.remove_zero)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, p={self.p}, q={self.q}, remove_zero={self.remove_zero}"
