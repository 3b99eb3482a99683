"""Batch-level topology losses and features computed from :class:`~gpuph.Diagrams`, differentiable through ``pairs``.

Every function takes the diagrams of a whole batch and returns one value per image (or their mean/sum) without a
Python loop over images, on whatever device the diagrams live on.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._common import check_finite_number, is_integer_at_least
from .barcode_features import BarcodePolyFeature, PartialSumBarcodeLengths, SumBarcodeLengths, TopKBarcodeLengths
from .diagrams import Diagrams, group_positions, group_sums

__all__ = [
    "BarcodePolyFeature",
    "PartialSumBarcodeLengths",
    "SumBarcodeLengths",
    "TopKBarcodeLengths",
    "betti_loss",
    "closed_pairs",
    "persistence_energy",
    "rank_in_image",
]

REDUCTIONS = ("mean", "sum", "none")


def _reduce(per_image: Tensor, reduction: str) -> Tensor:
    if reduction == "none":
        return per_image
    if reduction == "sum":
        return per_image.sum()
    return per_image.mean() if per_image.numel() else per_image.sum()  # the mean of no images is 0, not NaN


def _check_reduction(reduction: str) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"gpuph: reduction must be one of {REDUCTIONS}, got {reduction!r}")


def _check_diagrams(dgm) -> None:
    if not isinstance(dgm, Diagrams):
        raise TypeError(f"gpuph: the losses take a gpuph.Diagrams, got {type(dgm).__name__}")


def _check_i0(i0: int) -> int:
    if not is_integer_at_least(i0, 1):
        raise ValueError(f"gpuph: i0 is a 1-based rank and must be an integer >= 1, got {i0!r}")
    return int(i0)


def _check_k(k: int) -> int:
    if not is_integer_at_least(k, 0):
        raise ValueError(f"gpuph: k is a number of classes and must be an integer >= 0, got {k!r}")
    return int(k)


def _length_pow(length: Tensor, p: float) -> Tensor:
    """``length ** p`` whose gradient is 0 (not NaN) where ``length == 0`` (an essential class of a constant image,
    closed at its own birth): ``pow``'s derivative there is infinite for ``p < 1`` and meets ``abs``'s zero."""
    if p == 1.0:
        return length
    positive = length > 0
    safe = torch.where(positive, length, torch.ones_like(length))
    return torch.where(positive, safe.pow(p), length.detach().pow(p))


def rank_in_image(dgm: Diagrams) -> Tensor:
    """``(N,)`` int64 0-based position of each pair within its image's rows (so, in one dimension, its rank by
    lifetime: diagrams are ordered by image, dimension, then lifetime descending with essential classes first)."""
    _check_diagrams(dgm)
    return group_positions(dgm.batch, dgm.batch_size)[0]


def closed_pairs(dgm: Diagrams) -> Tensor:
    """``(N, 2)`` pairs with every essential death replaced by its image's last filtration value
    (``dgm.filtration_end``), so that essential classes get a finite, differentiable lifetime.

    Raises:
        TypeError: ``dgm`` is not a :class:`~gpuph.Diagrams`.
        ValueError: the diagrams have essential classes but no ``filtration_end``.
    """
    _check_diagrams(dgm)
    essential = dgm.death_index < 0
    if dgm.filtration_end is None:
        if bool(essential.any()):
            raise ValueError(
                "gpuph: these diagrams have essential classes but no filtration_end to close them; "
                "skip them with i0 or pass dgm.finite()"
            )
        return dgm.pairs
    if dgm.batch_size == 0:  # no rows (and torch.compile's inductor cannot index into no elements)
        return dgm.pairs
    end = dgm.filtration_end.to(dgm.pairs.dtype)[dgm.batch]
    return torch.stack([dgm.pairs[:, 0], torch.where(essential, end, dgm.pairs[:, 1])], 1)


# The losses mask rows instead of selecting them: no output size depends on the data, so a loss makes no
# device-to-host synchronisation (boolean indexing makes one per tensor) and torch.compile traces it in one graph.


def _rank_in_dim(dgm: Diagrams, dim: int) -> tuple[Tensor, Tensor]:
    """``(N,)`` bool mask of the rows of dimension ``dim`` and ``(N,)`` int64 0-based rank of each among them within
    its image (by lifetime, longest first, in the diagrams' order); the rank of other rows is meaningless."""
    in_dim = dgm.dim == dim
    return in_dim, group_positions(dgm.batch, dgm.batch_size, in_dim.long())[0]


def _closed_pairs_of(dgm: Diagrams, use: Tensor) -> Tensor:
    """:func:`closed_pairs` for the rows in ``use``; every other row reads ``(1, 2)``, so that terms computed from it
    are finite and their gradients (masked away by :func:`_per_image`) are 0, never NaN, whatever its values. The
    essential class of a constant +-inf image, closed at its own infinite birth, reads ``(1, 1)``: a bar of length 0
    as on a finite constant image (``inf - inf`` would be NaN), with a midpoint factor of 1 and no gradient."""
    if dgm.filtration_end is None and bool(((dgm.death_index < 0) & use).any()):
        closed_pairs(dgm._rows(use))  # raises its error
    pairs = dgm.pairs if dgm.filtration_end is None else closed_pairs(dgm)
    # (1, 2) made on the device: torch.tensor([1.0, 2.0], device=...) would be a blocking copy from the host.
    pairs = torch.where(use.unsqueeze(1), pairs, torch.arange(1, 3, dtype=pairs.dtype, device=pairs.device))
    infinite_point = (pairs[:, 0] == pairs[:, 1]) & pairs[:, 0].isinf()
    return torch.where(infinite_point.unsqueeze(1), torch.ones((), dtype=pairs.dtype, device=pairs.device), pairs)


def _per_image(dgm: Diagrams, use: Tensor, term: Tensor) -> Tensor:
    """``(B,)`` sums of ``term`` over each image's rows in ``use``."""
    return group_sums(torch.where(use, term, torch.zeros_like(term)), dgm.batch, dgm.batch_size)


def persistence_energy(
    dgm: Diagrams, dim: int, p: float = 1.0, q: float = 0.0, i0: int = 1, reduction: str = "mean"
) -> Tensor:
    r"""The TopologyLayer paper's :math:`E(p, q, i_0; PD_k) = \sum_{i \ge i_0} |d_i - b_i|^p ((d_i + b_i)/2)^q`
    per image, with bars ranked by lifetime, longest first (``i0`` is 1-based: ``i0=2`` skips the most persistent
    class, as in the GAN loss :math:`E(1,0,2; PD_0)`).

    Essential classes rank first (infinite lifetime), among themselves by their lifetimes once closed (the earliest
    born first: the diagrams' order), so the value does not depend on how vertices or points are numbered. When one
    is included in the sum, its death is the last value of its image's filtration (``dgm.filtration_end``: the image
    minimum for superlevel diagrams, maximum for sublevel).
    The gradient reaches the critical pixels of the summed bars. Signs (maximising a feature) are the caller's.

    Args:
        dgm: diagrams of a batch of ``B`` images.
        dim: homology dimension ``k``.
        p, q: finite exponents (``p = 0`` counts bars). ``q`` other than 0 with negative midpoints and non-integer
            ``q`` gives NaN, as ``pow`` does. A bar of length 0 (only the closed essential class of a constant image)
            gets no gradient, and for ``p > 0`` adds 0 whatever ``q`` (its midpoint factor reads 1).
        i0: first rank included (``>= 1``).
        reduction: ``"mean"`` (over images), ``"sum"`` or ``"none"`` (a ``(B,)`` tensor).

    Returns:
        a scalar (``"mean"``, ``"sum"``) or ``(B,)`` tensor in the diagrams' dtype and device; images with fewer than
        ``i0`` bars contribute 0.

    Raises:
        TypeError: ``dgm`` is not a :class:`~gpuph.Diagrams`.
        ValueError: ``i0 < 1``, a ``dim`` the diagrams do not hold (:meth:`~gpuph.Diagrams.check_dim`: one not
            computed is an error, not an empty diagram), a non-finite ``p`` or ``q``, an unknown ``reduction``, or an
            essential class to include without ``filtration_end``.
    """
    _check_diagrams(dgm)
    _check_reduction(reduction)
    dim = dgm.check_dim(dim)
    p, q = check_finite_number("p", p), check_finite_number("q", q)
    i0 = _check_i0(i0)
    in_dim, rank = _rank_in_dim(dgm, dim)
    use = in_dim & (rank >= i0 - 1)
    pairs = _closed_pairs_of(dgm, use)
    term = _length_pow((pairs[:, 1] - pairs[:, 0]).abs(), p)
    if q != 0:
        mid = (pairs[:, 0] + pairs[:, 1]) / 2
        # A bar of length 0 gets no gradient through its midpoint either (pow's derivative is infinite at a midpoint
        # of 0 for q < 1), and for p > 0 adds 0 whatever q (0 * 0 ** q is NaN for q < 0): its factor then reads 1.
        zero = pairs[:, 0] == pairs[:, 1]
        term = term * torch.where(zero, torch.ones_like(mid) if p > 0 else mid.detach(), mid).pow(q)
    return _reduce(_per_image(dgm, use, term), reduction)


def betti_loss(dgm: Diagrams, dim: int, k: int, p: float = 1.0, reduction: str = "mean") -> Tensor:
    r"""A Betti-number prior ("``k`` classes in dimension ``dim``", the TopologyLayer paper's prior on the number of
    components or holes): per image, with lifetimes ranked longest first,

    .. math::
        \mathrm{betti}(PD_{dim}; k) = \sum_{i > k} l_i^p - \sum_{i \le k} l_i^p
        = E(p, 0, k+1; PD_{dim}) - \left(E(p, 0, 1; PD_{dim}) - E(p, 0, k+1; PD_{dim})\right),

    so minimising it lengthens the ``k`` most persistent classes and shortens (removes) all others. ``k = 0`` asks
    for no class at all (every bar is penalised). Lifetimes are as in :func:`persistence_energy`: essential classes
    rank first and are closed at their image's last filtration value (``dgm.filtration_end``), so the essential H0
    class of an image counts as its most persistent component with lifetime ``max - min``.

    The reward term is unbounded below: on unbounded inputs, minimising it can push the values apart without limit.
    Use it on bounded outputs (a sigmoid or tanh layer) or weight it against a data term. Between classes of equal
    lifetime, the ones earlier in the diagram's order (by birth index) count as the top ``k``; the value does not
    depend on this choice, only which critical pixels receive the gradient.

    Args:
        dgm: diagrams of a batch of ``B`` images.
        dim: homology dimension.
        k: the wanted number of classes (an integer ``>= 0``).
        p: finite exponent of the lifetimes.
        reduction: ``"mean"`` (over images), ``"sum"`` or ``"none"`` (a ``(B,)`` tensor).

    Returns:
        a scalar (``"mean"``, ``"sum"``) or ``(B,)`` tensor in the diagrams' dtype and device.

    Raises:
        TypeError: ``dgm`` is not a :class:`~gpuph.Diagrams`.
        ValueError: ``k < 0`` or not an integer, a ``dim`` the diagrams do not hold, a non-finite ``p``, an unknown
            ``reduction``, or an essential class among the bars without ``filtration_end``.
    """
    _check_diagrams(dgm)
    _check_reduction(reduction)
    dim = dgm.check_dim(dim)
    p = check_finite_number("p", p)
    k = _check_k(k)
    in_dim, rank = _rank_in_dim(dgm, dim)
    pairs = _closed_pairs_of(dgm, in_dim)
    term = _length_pow((pairs[:, 1] - pairs[:, 0]).abs(), p)
    return _reduce(_per_image(dgm, in_dim, torch.where(rank < k, -term, term)), reduction)
