"""A procedural data set of solid 32^3 voxel shapes (chairs, tables, lamps, tori, blobs), a stand-in for ShapeNet.

Every shape is a union of boxes, cylinders, cones, spheres or a torus with random sizes, proportions and pose, drawn
from one seeded ``torch.Generator`` and rasterised for a whole chunk of shapes at once (no Python loop over shapes or
voxels): 2000 shapes take about 2 s on 2 CPU cores.

Grid convention: a shape is a ``(1, 32, 32, 32)`` float tensor of occupancies in ``{0., 1.}`` (1 = solid); axis 0 of
the grid (``D``) is the vertical axis (furniture and lamps stand on the floor at low indices), axes 1 and 2 are
horizontal. Voxel ``(i, j, k)`` is filled when its centre lies inside the solid.

Topology, with 6-connectivity (the H0 connectivity of the V construction of :func:`gpuph.cubical_persistence`, and
``scipy.ndimage.label``'s default in 3D): **every class is one connected solid** by construction (each part overlaps
the part it is attached to by at least one voxel, and parts are at least two voxels thick, so no part rasterises to
diagonal-only contacts); the test suite checks this on every shape of a sample. No shape has a cavity (H2). Tunnels
(H1), measured on 500 shapes: tori always one; chairs with a slatted back one per window between slats (0-4; 45% of
chairs have some); lamps rarely (7%); blobs very rarely (< 1%, a chain of
balls that curls back onto itself); tables never (legs hang from the top and meet nothing else).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torch.utils.data import Dataset

__all__ = ["CLASSES", "GRID", "VoxelShapes", "make_shapes"]

CLASSES = ("chair", "table", "lamp", "torus", "blob")
GRID = 32
_FLOOR = -GRID / 2 + 1.5  # floor height (vertical coordinate) of furniture and lamps: 1 voxel of air below
_CHUNK = 256  # shapes rasterised at once: 256 * 32^3 * 3 float32 coordinates = 100 MB


# ------------------------------------------------------------------------------------------------- sampling helpers
def _u(g: torch.Generator, n: int, lo: float, hi: float) -> Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=g, dtype=torch.float64)


def _coin(g: torch.Generator, n: int, p: float) -> Tensor:
    return torch.rand(n, generator=g, dtype=torch.float64) < p


def _yaw(angle: Tensor) -> Tensor:
    """(n, 3, 3) rotations about the vertical axis 0."""
    c, s = angle.cos(), angle.sin()
    r = torch.zeros(len(angle), 3, 3, dtype=torch.float64)
    r[:, 0, 0] = 1
    r[:, 1, 1], r[:, 1, 2], r[:, 2, 1], r[:, 2, 2] = c, -s, s, c
    return r


def _random_rotation(g: torch.Generator, n: int) -> Tensor:
    """(n, 3, 3) rotations, uniform on SO(3) (normalised Gaussian quaternions)."""
    q = torch.randn(n, 4, generator=g, dtype=torch.float64)
    w, x, y, z = (q / q.norm(dim=1, keepdim=True)).unbind(1)
    return torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ], 1).view(n, 3, 3)


# Each sampler returns (params, rotation (n,3,3), translation (n,3), scale (n,3)): a world point w maps to the shape's
# local frame as ((w - translation) @ rotation) / scale, and the shape's ``_occupancy`` function is evaluated there.
def _sample_chair(g: torch.Generator, n: int) -> tuple[dict, Tensor, Tensor, Tensor]:
    w, d = _u(g, n, 12, 20), _u(g, n, 11, 18)
    p = {
        "w": w, "d": d,
        "seat_h": _u(g, n, 7, 12), "seat_t": _u(g, n, 2, 3.2),
        "leg_t": _u(g, n, 2.5, 3.5), "leg_round": _coin(g, n, 0.4), "leg_inset": _u(g, n, 0, 1.5),
        "back_h": _u(g, n, 8, 14), "back_t": _u(g, n, 2, 3),
        "slatted": _coin(g, n, 0.5), "post_w": _u(g, n, 2.5, 3.5), "rail_h": _u(g, n, 2, 3.5),
        "n_slats": torch.randint(0, 4, (n,), generator=g).double(), "slat_w": _u(g, n, 2.5, 3),
    }
    shift = torch.stack([torch.full((n,), _FLOOR, dtype=torch.float64), _u(g, n, -1.5, 1.5), _u(g, n, -1.5, 1.5)], 1)
    return p, _yaw(_u(g, n, 0, 2 * torch.pi)), shift, torch.ones(n, 3, dtype=torch.float64)


def _sample_table(g: torch.Generator, n: int) -> tuple[dict, Tensor, Tensor, Tensor]:
    w = _u(g, n, 16, 28)
    d = w * _u(g, n, 0.5, 1.0)
    fit = (28.5 / (w * w + d * d).sqrt()).clamp(max=1)  # the rotated top must fit in the grid
    p = {
        "w": w * fit, "d": d * fit, "round": _coin(g, n, 0.3),
        "top_h": _u(g, n, 11, 19), "top_t": _u(g, n, 2, 3.2),
        "pedestal": _coin(g, n, 0.35), "leg_t": _u(g, n, 2.5, 3.5), "leg_inset": _u(g, n, 0.5, 2.5),
        "ped_r": _u(g, n, 1.6, 3.5), "foot_r": _u(g, n, 5, 9), "foot_t": _u(g, n, 2, 3),
    }
    shift = torch.stack([torch.full((n,), _FLOOR, dtype=torch.float64), _u(g, n, -1, 1), _u(g, n, -1, 1)], 1)
    return p, _yaw(_u(g, n, 0, 2 * torch.pi)), shift, torch.ones(n, 3, dtype=torch.float64)


def _sample_lamp(g: torch.Generator, n: int) -> tuple[dict, Tensor, Tensor, Tensor]:
    arm = torch.where(_coin(g, n, 0.4), _u(g, n, 4, 9), torch.zeros(n, dtype=torch.float64))
    p = {
        "base_r": _u(g, n, 3.5, 7), "base_t": _u(g, n, 1.5, 3), "base_box": _coin(g, n, 0.3),
        "pole_r": _u(g, n, 1.3, 2.0), "pole_h": _u(g, n, 15, 22), "arm": arm, "arm_t": _u(g, n, 2.2, 3),
        "cone": _coin(g, n, 0.65), "shade_r0": _u(g, n, 4, 8), "shade_r1": _u(g, n, 1.5, 4), "shade_h": _u(g, n, 5, 8),
        "bulb_r": _u(g, n, 3.5, 6),
    }
    # centre the footprint (pole at 0, shade at +arm along axis 2) in the grid
    shift = torch.stack([torch.full((n,), _FLOOR, dtype=torch.float64), _u(g, n, -1, 1), -arm / 2 + _u(g, n, -1, 1)], 1)
    rot = _yaw(_u(g, n, 0, 2 * torch.pi))
    shift[:, 1:] = (rot[:, 1:, 1:] @ shift[:, 1:, None])[..., 0]  # so that the rotation keeps the centring
    return p, rot, shift, torch.ones(n, 3, dtype=torch.float64)


def _sample_torus(g: torch.Generator, n: int) -> tuple[dict, Tensor, Tensor, Tensor]:
    # R + r + shift <= 14.5 < 15.5: a torus clipped on two sides by the grid would fall apart into two arcs
    big = _u(g, n, 6, 10)
    small = 2 + (torch.clamp(big - 3.5, max=3.5) - 2) * _u(g, n, 0, 1)  # r <= R - 3.5: the hole stays open
    shift = torch.stack([_u(g, n, -1, 1) for _ in range(3)], 1)
    return {"R": big, "r": small}, _random_rotation(g, n), shift, torch.ones(n, 3, dtype=torch.float64)


def _sample_blob(g: torch.Generator, n: int, k_max: int = 6) -> tuple[dict, Tensor, Tensor, Tensor]:
    """A chain of ``2..k_max`` balls, each overlapping the previous one, squashed by an anisotropic scale."""
    k = torch.randint(2, k_max + 1, (n,), generator=g)
    radius = _u(g, n * k_max, 3.2, 6.5).view(n, k_max)
    step = torch.randn(n, k_max, 3, generator=g, dtype=torch.float64)
    step = step / step.norm(dim=2, keepdim=True)
    # consecutive centres are 0.35..0.75 of the sum of their radii apart: the balls overlap by a wide neck
    dist = torch.zeros(n, k_max, dtype=torch.float64)
    dist[:, 1:] = (radius[:, 1:] + radius[:, :-1]) * _u(g, n * (k_max - 1), 0.35, 0.75).view(n, k_max - 1)
    centre = (step * dist[..., None]).cumsum(1)
    active = torch.arange(k_max)[None] < k[:, None]
    scale = _u(g, n * 3, 0.75, 1.3).view(n, 3)
    # shrink uniformly (keeps every overlap) so that the shape fits in a ball of radius 14 around its centroid
    mean = (centre * active[..., None]).sum(1) / k[:, None]
    extent = (((centre - mean[:, None]).norm(dim=2) + radius) * active).amax(1) * scale.amax(1)
    shrink = (14.0 / extent).clamp(max=1)
    centre = (centre - mean[:, None]) * shrink[:, None, None]
    radius = torch.where(active, radius * shrink[:, None], torch.full_like(radius, -1.0))  # -1: unused ball
    shift = torch.stack([_u(g, n, -1, 1) for _ in range(3)], 1)
    return {"centre": centre, "radius": radius}, _random_rotation(g, n), shift, scale


# ------------------------------------------------------------------------------------------------- rasterising
# Furniture and lamps only turn about the vertical axis, so their parts are vertical extrusions of 2D footprints (or
# solids of revolution about a vertical axis): a part is (vertical interval, (m, 32, 1)) & (footprint, (m, 1, 1024)),
# and only that AND touches the full (m, 32, 1024) grid. Tori and blobs turn freely and are evaluated in 3D through
# quadratic forms (one batched matmul each). Parameters are (m,) tensors; _c broadcasts one to (m, 1, 1).
def _c(t: Tensor) -> Tensor:
    return t[:, None, None]


def _span(z: Tensor, lo: Tensor, hi: Tensor) -> Tensor:
    return (z >= _c(lo)) & (z <= _c(hi))


def _rect(h1: Tensor, h2: Tensor, lo1: Tensor, hi1: Tensor, lo2: Tensor, hi2: Tensor) -> Tensor:
    return (h1 >= _c(lo1)) & (h1 <= _c(hi1)) & (h2 >= _c(lo2)) & (h2 <= _c(hi2))


def _disc(h1: Tensor, h2: Tensor, c1: Tensor, c2: Tensor, r: Tensor) -> Tensor:
    return (h1 - _c(c1)) ** 2 + (h2 - _c(c2)) ** 2 <= _c(r) ** 2


def _legs(h1: Tensor, h2: Tensor, w: Tensor, d: Tensor, inset: Tensor, t: Tensor, round_: Tensor) -> Tensor:
    """Footprint of four legs of width ``t``, square or round, at the corners of a ``d`` x ``w`` rectangle."""
    out = torch.zeros(h1.shape, dtype=torch.bool, device=h1.device)
    for s1 in (-1, 1):
        for s2 in (-1, 1):
            c1, c2 = s1 * (d / 2 - inset - t / 2), s2 * (w / 2 - inset - t / 2)
            square = _rect(h1, h2, c1 - t / 2, c1 + t / 2, c2 - t / 2, c2 + t / 2)
            out |= torch.where(_c(round_), _disc(h1, h2, c1, c2, t / 2 + 0.15), square)
    return out


def _chair(z: Tensor, h1: Tensor, h2: Tensor, q: dict) -> Tensor:
    seat_top = q["seat_h"] + q["seat_t"]
    half_w, half_d = q["w"] / 2, q["d"] / 2
    zero = torch.zeros_like(half_w)
    seat = _span(z, q["seat_h"], seat_top) & _rect(h1, h2, -half_d, half_d, -half_w, half_w)
    legs = _span(z, zero, q["seat_h"] + 1) & _legs(h1, h2, q["w"], q["d"], q["leg_inset"], q["leg_t"], q["leg_round"])
    # back: a panel on the -d edge, from inside the seat up to back_h above it
    back_foot = _rect(h1, h2, -half_d, -half_d + q["back_t"], -half_w, half_w)
    back = _span(z, q["seat_h"] + 0.5, seat_top + q["back_h"]) & back_foot
    # slatted backs: windows between two side posts, under a top rail, split by 0..3 vertical slats
    inner = q["w"] - 2 * q["post_w"]
    window = (h2 >= _c(-half_w + q["post_w"])) & (h2 <= _c(half_w - q["post_w"])) & _c(q["slatted"])
    for i in range(3):
        centre = -inner / 2 + inner * (i + 1) / (q["n_slats"] + 1)
        window &= ~(_c(q["n_slats"] > i) & ((h2 - _c(centre)).abs() <= _c(q["slat_w"]) / 2))
    back &= ~(_span(z, seat_top, seat_top + q["back_h"] - q["rail_h"]) & window)
    return seat | legs | back


def _table(z: Tensor, h1: Tensor, h2: Tensor, q: dict) -> Tensor:
    half_w, half_d = q["w"] / 2, q["d"] / 2
    zero = torch.zeros_like(half_w)
    disc_r = torch.minimum(half_w, half_d) * 1.1
    top_foot = torch.where(_c(q["round"]), _disc(h1, h2, zero, zero, disc_r), _rect(h1, h2, -half_d, half_d, -half_w,
                                                                                       half_w))
    top = _span(z, q["top_h"], q["top_h"] + q["top_t"]) & top_foot
    # corner legs lie inside the top, rectangle or disc (for a disc the leg corners are at 0.62 of its radius)
    leg_w = torch.where(q["round"], disc_r * 1.25, q["w"])
    leg_d = torch.where(q["round"], disc_r * 1.25, q["d"])
    leg_foot = _legs(h1, h2, leg_w, leg_d, q["leg_inset"], q["leg_t"], q["round"])
    support_foot = torch.where(_c(q["pedestal"]), _disc(h1, h2, zero, zero, q["ped_r"]), leg_foot)
    support = _span(z, zero, q["top_h"] + 1) & support_foot
    foot = _span(z, zero, q["foot_t"]) & _disc(h1, h2, zero, zero, q["foot_r"]) & _c(q["pedestal"])
    return top | support | foot


def _lamp(z: Tensor, h1: Tensor, h2: Tensor, q: dict) -> Tensor:
    zero = torch.zeros_like(q["pole_h"])
    r = q["base_r"]
    base_foot = torch.where(_c(q["base_box"]), _rect(h1, h2, -r, r, -r, r), _disc(h1, h2, zero, zero, r))
    out = _span(z, zero, q["base_t"]) & base_foot
    out |= _span(z, zero, q["pole_h"]) & _disc(h1, h2, zero, zero, q["pole_r"])
    # arm: a horizontal bar along axis 2 at the top of the pole, from the pole to the shade's axis
    has_arm, t = q["arm"] > 0, q["arm_t"]
    arm_foot = _rect(h1, h2, -t / 2, t / 2, -q["pole_r"], q["arm"] + t / 2) & _c(has_arm)
    out |= _span(z, q["pole_h"] - t, q["pole_h"]) & arm_foot
    # shade: a cone (radius shade_r0 at the bottom, r1 at the top) or a ball, overlapping the pole's (or arm's) top
    top = q["pole_h"] + torch.where(has_arm, zero, q["shade_h"] * 0.4)
    bottom = top - q["shade_h"]
    rho2 = h1 ** 2 + (h2 - _c(q["arm"])) ** 2
    frac = ((z - _c(bottom)) / _c(q["shade_h"])).clamp(0, 1)
    cone_r2 = torch.where(_span(z, bottom, top), (_c(q["shade_r0"]) + _c(q["shade_r1"] - q["shade_r0"]) * frac) ** 2,
                          torch.full_like(z, -1.0))
    ball_r2 = _c(q["bulb_r"]) ** 2 - (z - _c(top - q["bulb_r"] * 0.8)) ** 2
    return out | (rho2 <= torch.where(_c(q["cone"]), cone_r2, ball_r2))


def _torus(w: Tensor, rot: Tensor, shift: Tensor, scale: Tensor, q: dict) -> Tensor:
    # (rho - R)^2 + p0^2 <= r^2  <=>  2 R rho >= |p|^2 + R^2 - r^2 =: a  <=>  a <= 0 or 4 R^2 (|p|^2 - p0^2) >= a^2,
    # with p = (w - shift) @ rot (scale is 1): |p|^2 = |w - shift|^2 and p0 = (w - shift) . rot[:, :, 0]
    m = len(rot)
    wt = w @ torch.cat([shift, rot[:, :, 0]], 0).T                             # (V, 2m): w.shift, w.rot0
    sq = (w * w).sum(1)[None] - 2 * wt[:, :m].T + (shift * shift).sum(1)[:, None]
    p0 = wt[:, m:].T - (shift * rot[:, :, 0]).sum(1)[:, None]
    big, small = q["R"][:, None], q["r"][:, None]
    a = sq + big * big - small * small
    return (a <= 0) | (4 * big * big * (sq - p0 * p0) >= a * a)


def _blob(w: Tensor, rot: Tensor, shift: Tensor, scale: Tensor, q: dict) -> Tensor:
    # local p = (w - shift) @ rot / scale; |p - c|^2 <= r^2  <=>  2 p.c - |p|^2 >= |c|^2 - r^2, all balls at once
    mat = rot / scale[:, None, :]
    p = torch.matmul(w, mat) - (shift[:, None] @ mat)                          # (m, V, 3)
    c, r = q["centre"], q["radius"]
    rhs = (c * c).sum(-1) - r * r + 1e9 * (r <= 0)  # unused balls (r <= 0) cover nothing
    return (2 * torch.bmm(p, c.transpose(1, 2)) - (p * p).sum(-1, keepdim=True) >= rhs[:, None, :]).any(-1)


_SAMPLERS = {"chair": _sample_chair, "table": _sample_table, "lamp": _sample_lamp, "torus": _sample_torus,
             "blob": _sample_blob}
_EXTRUDED = {"chair": _chair, "table": _table, "lamp": _lamp}
_FREE = {"torus": _torus, "blob": _blob}


def _rasterise(kind: str, params: dict, rot: Tensor, shift: Tensor, scale: Tensor, out: Tensor) -> None:
    """Writes the (m, 32^3) occupancies of m shapes of one class into ``out``."""
    device = out.device
    ax = torch.arange(GRID, dtype=torch.float32, device=device) - (GRID - 1) / 2
    m = len(rot)
    f32 = lambda t: t.to(device=device, dtype=torch.float32 if t.is_floating_point() else t.dtype)
    for s in range(0, m, _CHUNK):
        e = min(m, s + _CHUNK)
        q = {k: f32(v[s:e]) for k, v in params.items()}
        r, t = f32(rot[s:e]), f32(shift[s:e])
        if kind in _EXTRUDED:  # r is a turn about axis 0: only the footprint's coordinates turn
            z = (ax[None, :] - t[:, :1])[:, :, None]                                         # (m, 32, 1)
            plane = torch.stack(torch.meshgrid(ax, ax, indexing="ij"), -1).view(1, -1, 2)     # (1, 1024, 2)
            h = torch.bmm(plane - t[:, None, 1:], r[:, 1:, 1:])[:, None]                      # (m, 1, 1024, 2)
            occ = _EXTRUDED[kind](z, h[..., 0], h[..., 1], q)
        else:
            world = torch.stack(torch.meshgrid(ax, ax, ax, indexing="ij"), -1).view(-1, 3)
            occ = _FREE[kind](world, r, t, f32(scale[s:e]), q)
        out[s:e] = occ.reshape(e - s, -1)


def make_shapes(
    n: int,
    seed: int = 0,
    *,
    classes: Sequence[str] | None = None,
    device: torch.device | str | None = None,
    return_labels: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """``n`` random solid voxel shapes, deterministic given ``seed``.

    Args:
        n: number of shapes (``>= 0``).
        seed: seed of the ``torch.Generator`` that draws the classes and every parameter (on the CPU, so the shapes
            are the same on every device).
        classes: names from :data:`CLASSES` to draw from, uniformly (default: all five).
        device: where the shapes are rasterised and returned (default CPU).
        return_labels: also return the ``(n,)`` int64 class index of each shape (into ``classes``).

    Returns:
        ``(n, 1, 32, 32, 32)`` float32 occupancies in ``{0., 1.}``, axis 2 (the first grid axis) vertical; with
        ``return_labels``, the pair ``(shapes, labels)``.

    Raises:
        ValueError: ``n < 0`` or an unknown class name.
    """
    shapes, labels = _generate(n, seed, classes, device, torch.float32)
    return (shapes, labels) if return_labels else shapes


def _generate(n: int, seed: int, classes: Sequence[str] | None, device: torch.device | str | None,
              dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    if isinstance(n, bool) or int(n) != n or n < 0:
        raise ValueError(f"gpuph: n must be an integer >= 0, got {n!r}")
    if isinstance(classes, str):
        raise TypeError(f"gpuph: classes is a sequence of names, e.g. [{classes!r}], got the string {classes!r}")
    names = tuple(CLASSES if classes is None else classes)
    bad = [c for c in names if c not in CLASSES]
    if bad or not names:
        raise ValueError(f"gpuph: classes must be a non-empty subset of {CLASSES}, got {list(names)}")
    if isinstance(seed, bool) or int(seed) != seed or not -(2**63) <= seed < 2**64:
        raise ValueError(f"gpuph: seed must be an integer in [-2^63, 2^64) (torch.Generator's), got {seed!r}")
    n = int(n)
    device = torch.device("cpu") if device is None else torch.device(device)
    g = torch.Generator().manual_seed(int(seed))
    labels = torch.randint(len(names), (n,), generator=g)
    out = torch.empty(n, GRID ** 3, dtype=dtype, device=device)
    for i, kind in enumerate(names):
        idx = (labels == i).nonzero()[:, 0]
        if len(idx) == 0:
            continue
        params, rot, shift, scale = _SAMPLERS[kind](g, len(idx))
        part = torch.empty(len(idx), GRID ** 3, dtype=dtype, device=device)
        _rasterise(kind, params, rot, shift, scale, part)
        out[idx.to(device)] = part
    return out.view(n, 1, GRID, GRID, GRID), labels


class VoxelShapes(Dataset):
    """:func:`make_shapes` as a ``torch.utils.data.Dataset``: item ``i`` is ``(shape (1,32,32,32) float32, label)``.

    All shapes are generated once, at construction, and kept as uint8 (32 KB a shape; float32 would take 1.3 GB for
    10k shapes); items are converted to float32.

    Args: ``n``, ``seed``, ``classes`` as :func:`make_shapes`.
    """

    def __init__(self, n: int, seed: int = 0, classes: Sequence[str] | None = None) -> None:
        self.classes = tuple(CLASSES if classes is None else classes)
        self.shapes, self.labels = _generate(n, seed, self.classes, None, torch.uint8)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        return self.shapes[i].float(), int(self.labels[i])
