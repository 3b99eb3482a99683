"""Benchmark inputs: cases (batch x grid) and the seeded fields (uniform noise, Gaussian-smoothed noise) on them."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

FIELDS = ("noise", "smooth")
SMOOTH_SIGMA = 2.0
SEED = 20240611
# One image larger than this is left to the GPU: the CPU libraries (gpuph's CPU path included) would take minutes.
CPU_MAX_PIXELS_PER_IMAGE = 128**3


@dataclass(frozen=True)
class Case:
    """A batch of ``batch`` grids of shape ``grid`` (2D or 3D)."""

    batch: int
    grid: tuple[int, ...]

    @property
    def name(self) -> str:
        """``"256x28x28"``, ``"64x32x32x32"``: batch, then the grid's sides."""
        return "x".join(str(n) for n in (self.batch, *self.grid))

    @property
    def ndim(self) -> int:
        return len(self.grid)

    @property
    def pixels_per_image(self) -> int:
        return math.prod(self.grid)

    @property
    def pixels(self) -> int:
        """Pixels (voxels) in the whole batch."""
        return self.batch * self.pixels_per_image

    @property
    def gpu_only(self) -> bool:
        return self.pixels_per_image > CPU_MAX_PIXELS_PER_IMAGE

    def __str__(self) -> str:
        return self.name


_CASE_RE = re.compile(r"^\s*(\d+)\s*x\s*(\d+(?:\s*x\s*\d+)*)\s*(?:\^\s*(\d))?\s*$")


def parse_case(text: str) -> Case:
    """``"256x28x28"``, ``"64x32x32x32"`` or the shorthand ``"64x32^3"`` (batch 64 of 32x32x32 grids).

    Raises:
        ValueError: not of the form ``B x N1 x N2 [x N3]`` / ``B x N^d``, a side or batch below 1, or a grid that is
            not 2D or 3D.
    """
    m = _CASE_RE.match(text)
    if not m:
        raise ValueError(f"case {text!r}: expected BxHxW, BxDxHxW or BxN^d (e.g. 256x28x28, 64x32^3)")
    batch = int(m.group(1))
    sides = [int(s) for s in m.group(2).split("x")]
    if m.group(3) is not None:
        if len(sides) != 1:
            raise ValueError(f"case {text!r}: the ^d shorthand takes one side, as in 64x32^3")
        sides = sides * int(m.group(3))
    if batch < 1 or min(sides) < 1:
        raise ValueError(f"case {text!r}: batch and sides must be at least 1")
    if len(sides) not in (2, 3):
        raise ValueError(f"case {text!r}: grids must be 2D or 3D, got {len(sides)}D")
    return Case(batch, tuple(sides))


# The cases. 1x256^3 is GPU-only (see CPU_MAX_PIXELS_PER_IMAGE).
DEFAULT_CASES = tuple(
    parse_case(c)
    for c in ("256x28x28", "64x64x64", "64x256x256", "1x1024x1024", "64x32^3", "1x64^3", "1x128^3", "1x256^3")
)
# --quick: the smallest 2D case of the issue and a small 3D batch, so every library's 2D and 3D paths run.
QUICK_CASES = (parse_case("256x28x28"), parse_case("2x32^3"))


def run_order(cases: list[Case]) -> list[Case]:
    """2D before 3D, small before large (the time cap extrapolates from the cases already measured)."""
    return sorted(dict.fromkeys(cases), key=lambda c: (c.ndim, c.pixels, c.pixels_per_image))


def make_field(case: Case, field: str, seed: int = SEED) -> np.ndarray:
    """float32 array ``(B, *grid)``: seeded uniform noise in [0, 1), or that noise smoothed image by image with a
    Gaussian of ``SMOOTH_SIGMA`` pixels (``scipy.ndimage.gaussian_filter``, reflecting borders).

    The seed depends on the case's shape only, so a case gets the same input whatever else runs.
    """
    if field not in FIELDS:
        raise ValueError(f"unknown field {field!r}; expected one of {FIELDS}")
    rng = np.random.default_rng([seed, case.batch, *case.grid])
    x = rng.random((case.batch, *case.grid), dtype=np.float32)
    if field == "smooth":
        from scipy.ndimage import gaussian_filter

        # sigma 0 along the batch axis: each image is smoothed on its own
        x = gaussian_filter(x, sigma=(0.0,) + (SMOOTH_SIGMA,) * case.ndim)
    return np.ascontiguousarray(x, dtype=np.float32)
