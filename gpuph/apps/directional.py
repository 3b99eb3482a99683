"""Directional-sweep persistence features of images (the TopologyLayer paper's TopModel features), batched.

For each image ``x (H, W)`` and each of ``D`` directions ``u_k = (cos 2 pi k / D, sin 2 pi k / D)`` (in (column, row)
pixel coordinates, rows pointing down), the filtration is

.. math::
    f_k(p) = \\begin{cases} h_k(p) + \\alpha (1 - x_p) & x_p > t \\\\ +\\infty & \\text{otherwise} \\end{cases}
    \\qquad h_k(p) = \\frac{u_k \\cdot (p - c)}{R},

the height of pixel ``p`` along ``u_k`` (``c`` the image centre, ``R`` half the diagonal, so ``|h| <= 1``), on the
pixels of the digit only: the others are excluded (``+inf``, entering after everything else). Sublevel persistence
(``construction="T"`` by default: 8-connected digit components, 4-connected holes) of the whole batch times ``D``
directions is one :func:`gpuph.cubical_persistence` call. Classes that only the excluded pixels close (the digit's
components and holes) die at ``+inf``; they are closed at ``cap = 1 + alpha``, the largest finite value.

**How the gradient reaches the image.** The height does not depend on ``x``, and the digit mask ``x > t`` is a step
function, so a pure height filtration has zero gradient almost everywhere. The term ``alpha * (1 - x_p)`` (bright
pixels enter a little earlier) makes births and deaths differentiable in the intensities of the critical digit pixels,
with derivative ``-alpha``: the gradient reaches exactly those pixels and moves bars by at most ``alpha`` each. It
does *not* see changes of the mask (pixels crossing ``t``), which change the diagrams discontinuously: gradient
attacks on a model built on these features can only shift bars, not create or remove classes through the gradient.
With ``alpha = 0`` the features are the pure directional-sweep ones and carry no gradient.

Vectorisation: per image, direction and dimension (0, 1), the ``k`` longest bars (lifetime and birth height),
zero-padded: ``(B, D, 2, k, 2)`` with last axis (lifetime, birth), flattened by :func:`directional_features`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..cubical import cubical_persistence

__all__ = ["directional_features", "directional_filtrations", "directional_topk", "sweep_heights"]


def sweep_heights(height: int, width: int, directions: int = 8, dtype: torch.dtype = torch.float32,
                  device: torch.device | str | None = None) -> Tensor:
    """``(directions, height, width)`` heights ``u_k . (p - c) / R`` in [-1, 1] of every pixel along each
    direction (``u_k`` at angle ``2 pi k / directions`` from the column axis towards the row axis)."""
    if directions < 1:
        raise ValueError(f"gpuph: directions must be >= 1, got {directions}")
    rows = torch.arange(height, dtype=torch.float64, device=device) - (height - 1) / 2
    cols = torch.arange(width, dtype=torch.float64, device=device) - (width - 1) / 2
    radius = max(math.hypot(height - 1, width - 1) / 2, 1e-12)
    angles = 2 * math.pi * torch.arange(directions, dtype=torch.float64, device=device) / directions
    h = torch.cos(angles)[:, None, None] * cols[None, None, :] + torch.sin(angles)[:, None, None] * rows[None, :, None]
    return (h / radius).to(dtype)


def _check_images(x: Tensor) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"gpuph: images must be a torch tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"gpuph: images must be floating point (e.g. x.float() / 255), got {x.dtype}")
    if x.dim() == 4 and x.shape[1] == 1:
        x = x[:, 0]
    if x.dim() != 3:
        raise ValueError(f"gpuph: expected images (B, H, W) or (B, 1, H, W), got shape {tuple(x.shape)}")
    return x


def directional_filtrations(x: Tensor, directions: int = 8, threshold: float = 0.5, alpha: float = 0.1) -> Tensor:
    """The filtrations ``f_k`` of the module docstring: ``(B, H, W)`` or ``(B, 1, H, W)`` images ->
    ``(B, directions, H, W)``, ``+inf`` off the digit (``x <= threshold``), differentiable in ``x`` through
    ``alpha * (1 - x)``."""
    x = _check_images(x)
    h = sweep_heights(x.shape[-2], x.shape[-1], directions, x.dtype, x.device)
    on = (x > threshold)[:, None]
    value = h[None] + alpha * (1 - x[:, None])
    return torch.where(on, value, torch.full_like(value, float("inf")))


def directional_topk(x: Tensor, k: int = 3, directions: int = 8, threshold: float = 0.5, alpha: float = 0.1,
                     construction: str = "T") -> Tensor:
    """Top-``k`` bars of the directional sweeps of a batch of images, ``(B, directions, 2, k, 2)``.

    Args:
        x: images ``(B, H, W)`` or ``(B, 1, H, W)``, floating point (MNIST scaled to [0, 1]).
        k: bars kept per image, direction and homology dimension (longest first; zero rows pad).
        directions: number of sweep directions, evenly spaced.
        threshold: pixels with ``x > threshold`` form the digit.
        alpha: weight of the intensity term (see the module docstring); ``0`` gives pure height sweeps.
        construction: ``"T"`` (8-connected digit) or ``"V"`` (4-connected digit).

    Returns:
        ``(B, directions, 2, k, 2)``: for dimension 0 and 1, the ``k`` longest bars as (lifetime, birth), deaths
        at ``+inf`` closed at ``1 + alpha``. An empty digit gives zeros. Differentiable in ``x`` (for ``alpha != 0``).
    """
    x = _check_images(x)
    if isinstance(k, bool) or int(k) != k or k < 1:
        raise ValueError(f"gpuph: k must be an integer >= 1, got {k!r}")
    k = int(k)
    B = x.shape[0]
    f = directional_filtrations(x, directions, threshold, alpha)
    dgm = cubical_persistence(f, spatial_dims=2, superlevel=False, construction=construction)
    cap = 1.0 + alpha
    birth, death = dgm.pairs[:, 0], dgm.pairs[:, 1]
    born = torch.isfinite(birth)  # a class born at +inf (an empty digit) has no content
    death = torch.where(torch.isfinite(death), death, torch.full_like(death, cap))
    safe_birth = torch.where(born, birth, torch.zeros_like(birth))
    life = torch.where(born, death - safe_birth, torch.zeros_like(birth))
    # dense (group, slot) layout; groups are (image, dimension) and contiguous in the diagram's row order
    groups = dgm.batch * 2 + dgm.dim
    G = B * directions * 2
    counts = torch.bincount(groups, minlength=G)
    width = max(int(counts.max()) if len(dgm) else 0, k)
    slot = torch.arange(len(dgm), device=x.device) - (torch.cumsum(counts, 0) - counts)[groups]
    dense_life = life.new_zeros(G, width).index_put((groups, slot), life)
    dense_birth = life.new_zeros(G, width).index_put((groups, slot), safe_birth)
    top_life, idx = dense_life.topk(k, dim=1)
    top_birth = dense_birth.gather(1, idx) * (top_life > 0)
    return torch.stack([top_life, top_birth], -1).reshape(B, directions, 2, k, 2)


def directional_features(x: Tensor, k: int = 3, directions: int = 8, threshold: float = 0.5, alpha: float = 0.1,
                         construction: str = "T") -> Tensor:
    """:func:`directional_topk` flattened to ``(B, directions * 2 * k * 2)`` feature vectors."""
    return directional_topk(x, k, directions, threshold, alpha, construction).flatten(1)
