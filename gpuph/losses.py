"""Batch-level topology losses and features computed from :class:`~gpuph.Diagrams`, differentiable through ``pairs``.

Every function takes the diagrams of a whole batch and returns one value per image (or their mean/sum) without a
Python loop over images, on whatever device the diagrams live on.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .diagrams import Diagrams

__all__ = ["persistence_energy"]

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


def rank_in_image(dgm: Diagrams) -> Tensor:
    """``(N,)`` int64 0-based position of each pair within its image's rows (so, in one dimension, its rank by
    lifetime: diagrams are ordered by image, dimension, then lifetime descending with essential classes first)."""
    n = len(dgm)
    if n == 0:
        return torch.zeros(0, dtype=torch.int64, device=dgm.batch.device)
    counts = torch.bincount(dgm.batch, minlength=dgm.batch_size)
    starts = torch.cumsum(counts, 0) - counts
    return torch.arange(n, device=dgm.batch.device) - starts[dgm.batch]


def closed_pairs(dgm: Diagrams) -> Tensor:
    """``(N, 2)`` pairs with every essential death replaced by its image's last filtration value
    (``dgm.filtration_end``), so that essential classes get a finite, differentiable lifetime.

    Raises:
        ValueError: the diagrams have essential classes but no ``filtration_end``.
    """
    essential = dgm.death_index < 0
    if dgm.filtration_end is None:
        if bool(essential.any()):
            raise ValueError(
                "gpuph: these diagrams have essential classes but no filtration_end to close them; "
                "skip them with i0 or pass dgm.finite()"
            )
        return dgm.pairs
    end = dgm.filtration_end.to(dgm.pairs.dtype)[dgm.batch]
    return torch.stack([dgm.pairs[:, 0], torch.where(essential, end, dgm.pairs[:, 1])], 1)


def persistence_energy(
    dgm: Diagrams, dim: int, p: float = 1.0, q: float = 0.0, i0: int = 1, reduction: str = "mean"
) -> Tensor:
    r"""The TopologyLayer paper's :math:`E(p, q, i_0; PD_k) = \sum_{i \ge i_0} |d_i - b_i|^p ((d_i + b_i)/2)^q`
    per image, with bars ranked by lifetime, longest first (``i0`` is 1-based: ``i0=2`` skips the most persistent
    class, as in the GAN loss :math:`E(1,0,2; PD_0)`).

    Essential classes rank first (infinite lifetime). When one is included in the sum, its death is the last value of
    its image's filtration (``dgm.filtration_end``: the image minimum for superlevel diagrams, maximum for sublevel).
    The gradient reaches the critical pixels of the summed bars. Signs (maximising a feature) are the caller's.

    Args:
        dgm: diagrams of a batch of ``B`` images.
        dim: homology dimension ``k``.
        p, q: exponents. ``q`` other than 0 with negative midpoints and non-integer ``q`` gives NaN, as ``pow`` does.
        i0: first rank included (``>= 1``).
        reduction: ``"mean"`` (over images), ``"sum"`` or ``"none"`` (a ``(B,)`` tensor).

    Returns:
        a scalar (``"mean"``, ``"sum"``) or ``(B,)`` tensor in the diagrams' dtype and device; images with fewer than
        ``i0`` bars contribute 0.

    Raises:
        ValueError: ``i0 < 1``, an unknown ``reduction``, or an essential class to include without ``filtration_end``.
    """
    _check_reduction(reduction)
    if int(i0) != i0 or i0 < 1:
        raise ValueError(f"gpuph: i0 is a 1-based rank and must be an integer >= 1, got {i0}")
    d = dgm.select(dim=dim)
    keep = rank_in_image(d) >= int(i0) - 1
    d = d._rows(keep)
    pairs = closed_pairs(d)
    length = (pairs[:, 1] - pairs[:, 0]).abs()
    term = length.pow(p)
    if q != 0:
        term = term * ((pairs[:, 0] + pairs[:, 1]) / 2).pow(q)
    per_image = term.new_zeros(dgm.batch_size).index_add(0, d.batch, term)
    return _reduce(per_image, reduction)
