"""What the suite needs from a library: :class:`Runner`, one timed configuration, and :class:`Unavailable`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

FORWARD = "forward"
BACKWARD = "forward+backward"
MODES = (FORWARD, BACKWARD)
CONSTRUCTIONS = ("V", "T", "freudenthal")


class Unavailable(Exception):
    """A library that cannot run here (not installed, or not applicable); the message says why."""


@dataclass
class Runner:
    """One timed configuration of one library.

    ``prepare(x)`` turns the float32 ``(B, *grid)`` numpy batch into the library's input, untimed (conversions such
    as negation, float64 or padding: this favours the other libraries). ``run(prepared)`` is the timed call and
    returns the library's raw output; ``diagrams(output, prepared)`` converts it, untimed, to canonical per-image
    diagrams (see :mod:`gpuph.bench.agreement`), or returns None when there is nothing comparable.

    ``field_dependent_dims`` lists, per grid dimension, the homology dimensions whose diagrams may legitimately differ
    from gpuph's because the library computes over another coefficient field (GUDHI's default Z/11 gives other H1
    diagrams of some 3D grids than Z/2): a difference there is still reported, but explained.
    """

    library: str
    construction: str
    mode: str
    prepare: Callable[[np.ndarray], Any]
    run: Callable[[Any], Any]
    diagrams: Callable[[Any, Any], list[np.ndarray] | None]
    note: str
    device: str = "cpu"  # "cpu" or "cuda"
    ndims: tuple[int, ...] = (2, 3)
    field_dependent_dims: dict[int, tuple[int, ...]] | None = None

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.library, self.construction, self.mode)

    @property
    def label(self) -> str:
        """Short name for tables and plots: ``gudhi``, ``gudhi T``, ``cripser-torch fwd+bwd``."""
        s = self.library if self.construction == "V" else f"{self.library} {self.construction}"
        return s if self.mode == FORWARD else f"{s} fwd+bwd"


def finite_lifetime_sum(birth: torch.Tensor, death: torch.Tensor) -> torch.Tensor:
    """The loss every forward+backward row backpropagates: the sum of the finite pairs' lifetimes."""
    finite = torch.isfinite(birth) & torch.isfinite(death)
    return (birth[finite] - death[finite]).abs().sum()
