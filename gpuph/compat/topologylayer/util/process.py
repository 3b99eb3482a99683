"""TopologyLayer's diagram processing helpers (``topologylayer.util.process``), for ``(n, 2)`` tensors, plus the same
filters on a :class:`~gpuph.Diagrams`."""

from __future__ import annotations

import math

from ....diagrams import Diagrams
from .._common import diagrams_to_tuples

__all__ = ["diagrams_to_tuples", "remove_filler", "remove_infinite_bars", "remove_zero_bars"]


def remove_filler(dgm, val: float = math.inf):
    """Rows whose birth is not ``val`` (TopologyLayer's filler rows). gpuph's diagrams have no filler rows."""
    if isinstance(dgm, Diagrams):
        return dgm._rows(dgm.pairs[:, 0] != val)
    return dgm[dgm[:, 0] != val, :]


def _check_pair_rows(dgm) -> None:
    """An ``(n, 2)`` tensor (or array) of rows; anything else would fail inside its indexing."""
    if getattr(dgm, "ndim", None) != 2 or dgm.shape[1] != 2:
        shape = tuple(dgm.shape) if hasattr(dgm, "shape") else type(dgm).__name__
        raise ValueError(f"gpuph.compat.topologylayer: expected a gpuph.Diagrams or an (n, 2) tensor of "
                         f"[birth, death] rows, got {shape}")


def remove_zero_bars(dgm):
    """Rows with ``birth != death``. gpuph's diagrams contain no zero-length bars, so this only matters for other
    tensors (and for an essential class born at ``+-inf``)."""
    if isinstance(dgm, Diagrams):
        return dgm._rows(dgm.pairs[:, 0] != dgm.pairs[:, 1])
    _check_pair_rows(dgm)
    return dgm[dgm[:, 0] != dgm[:, 1], :]


def remove_infinite_bars(dgm, issub: bool):
    """Rows whose death is finite: not ``+inf`` for sublevel diagrams (``issub=True``), not ``-inf`` for
    superlevel ones."""
    inf = math.inf if issub else -math.inf
    if isinstance(dgm, Diagrams):
        return dgm._rows(dgm.pairs[:, 1] != inf)
    _check_pair_rows(dgm)
    return dgm[dgm[:, 1] != inf, :]
