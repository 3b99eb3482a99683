"""Hand-made ``Diagrams`` for the loss and distance tests: any points (empty images, only an essential class, ties,
points at infinity), laid out in gpuph's pinned row order, and random generators of such point sets."""

from __future__ import annotations

import numpy as np
import torch

import gpuph


def make_diagrams(
    images: list[dict[int, np.ndarray]],
    superlevel: bool = True,
    ends: np.ndarray | None = None,
    dtype: torch.dtype = torch.float64,
    ndim: int = 2,
    requires_grad: bool = False,
) -> gpuph.Diagrams:
    """``images[b][k]``: an ``(n, 2)`` array of (birth, death) of image ``b`` in dimension ``k``. A row is essential
    when its death is ``-inf`` (superlevel) / ``+inf`` (sublevel). Rows are sorted by image, dimension, then
    lifetime descending (essential first, by birth in filtration order), as gpuph orders them; critical indices are
    made-up distinct integers."""
    inf_death = -np.inf if superlevel else np.inf
    rows = []
    for b, by_dim in enumerate(images):
        for k in sorted(by_dim):
            pts = np.asarray(by_dim[k], dtype=np.float64).reshape(-1, 2)
            essential = pts[:, 1] == inf_death
            with np.errstate(invalid="ignore"):
                life = np.where(essential, np.inf, np.abs(pts[:, 1] - pts[:, 0]))
            life = np.nan_to_num(life, nan=np.inf)
            born = np.where(essential, -pts[:, 0] if superlevel else pts[:, 0], 0.0)
            order = sorted(range(len(pts)), key=lambda i: (not essential[i], -life[i], born[i]))
            rows += [(b, k, pts[i], bool(essential[i])) for i in order]
    n = len(rows)
    pairs = torch.tensor(np.array([r[2] for r in rows]).reshape(n, 2), dtype=dtype)
    death_index = torch.tensor([-1 if r[3] else 2 * i + 1 for i, r in enumerate(rows)], dtype=torch.int64)
    end = None if ends is None else torch.tensor(np.asarray(ends, dtype=np.float64), dtype=dtype)
    if requires_grad:
        pairs.requires_grad_(True)
        if end is not None:
            end.requires_grad_(True)
    return gpuph.Diagrams(
        pairs=pairs,
        dim=torch.tensor([r[1] for r in rows], dtype=torch.int64),
        batch=torch.tensor([r[0] for r in rows], dtype=torch.int64),
        birth_index=torch.arange(0, 2 * n, 2, dtype=torch.int64),
        death_index=death_index,
        batch_size=len(images),
        spatial_shape=(4,) * ndim,
        superlevel=superlevel,
        construction="V",
        batch_shape=(len(images),),
        filtration_end=end,
    )


def random_points(rng: np.random.Generator, n: int, superlevel: bool, integer: bool = False) -> np.ndarray:
    """``n`` finite (birth, death) pairs in the diagram's orientation; ``integer`` values make lifetime ties likely."""
    if integer:
        a, b = rng.integers(-4, 5, n).astype(float), rng.integers(-4, 5, n).astype(float)
        b = np.where(a == b, b + 1, b)
    else:
        a, b = rng.normal(size=n), rng.normal(size=n)
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    return np.stack([hi, lo] if superlevel else [lo, hi], 1)


def random_images(
    rng: np.random.Generator, B: int, superlevel: bool, max_points: int = 12, essential: bool = True,
    integer: bool = False, ndim: int = 2,
) -> list[dict[int, np.ndarray]]:
    """Random per-image point sets in dimensions ``0..ndim-1``: some images empty, H0 with one essential class
    (when ``essential``) born at the largest (superlevel) / smallest (sublevel) value."""
    out = []
    for _ in range(B):
        by_dim = {}
        for k in range(ndim):
            n = int(rng.integers(0, max_points + 1))
            pts = random_points(rng, n, superlevel, integer)
            if k == 0 and essential and rng.random() < 0.8:
                top = (pts[:, 0].max() if superlevel else pts[:, 0].min()) if n else 0.0
                top = top + (1.0 if superlevel else -1.0)
                pts = np.concatenate([[[top, -np.inf if superlevel else np.inf]], pts])
            by_dim[k] = pts
        out.append(by_dim)
    return out
