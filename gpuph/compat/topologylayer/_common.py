"""Shared pieces of the TopologyLayer face: argument checks, input splitting, Diagrams -> (dgms, issublevel)."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ..._common import host_numpy
from ...cubical import _as_tensor
from ...diagrams import Diagrams

ALGS = ("hom", "hom2", "cohom")


def host_array(a) -> np.ndarray:
    """``a`` as a numpy array; a torch tensor on any device is copied to the host first (``np.asarray`` of a CUDA
    tensor raises)."""
    return host_numpy(a) if isinstance(a, Tensor) else np.asarray(a)


def check_alg(alg: str) -> str:
    """TopologyLayer's reduction algorithms; gpuph accepts their names and runs its own (the diagrams agree)."""
    if alg not in ALGS:
        raise ValueError(f"gpuph.compat.topologylayer: alg must be one of {ALGS}, got {alg!r}")
    return alg


def check_maxdim(maxdim) -> int:
    if isinstance(maxdim, bool) or not isinstance(maxdim, (int, np.integer)) or maxdim < 0:
        raise ValueError(f"gpuph.compat.topologylayer: maxdim must be a non-negative int, got {maxdim!r}")
    return int(maxdim)


def check_size(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"gpuph.compat.topologylayer: {name} must be a positive int, got {value!r}")
    return int(value)


def split_input(x, shape: tuple[int, ...], what: str) -> tuple[Tensor, bool]:
    """``(values, single)``: one function (any shape with ``prod(shape)`` entries, read in C order, as TopologyLayer's
    ``f.view(-1)``) becomes a batch of one with ``single=True``; a tensor whose trailing axes are ``shape`` is a
    batch."""
    x = _as_tensor(x)
    n = int(np.prod(shape))
    if x.numel() == n:
        return x.reshape(1, *shape), True
    if x.dim() > len(shape) and tuple(x.shape[x.dim() - len(shape):]) == tuple(shape):
        return x, False
    raise ValueError(
        f"gpuph.compat.topologylayer: {what} expects one function with {n} values (any shape) or a batch of shape "
        f"(*batch, {', '.join(map(str, shape))}), got shape {tuple(x.shape)}"
    )


def _tuples(dgm: Diagrams, maxdim: int) -> list[tuple[Tensor, ...]]:
    """Per image, the ``(n_k, 2)`` pair tensors of ``k = 0 .. maxdim``: slices of ``dgm.pairs`` (ordered by image,
    then dimension), sized by one transfer of the per-(image, dimension) counts: one synchronisation on a GPU in all,
    not one per boolean mask."""
    counts = dgm.counts()
    nd = counts.shape[1]
    chunks = torch.split(dgm.pairs, counts.reshape(-1).tolist())
    empty = dgm.pairs[:0]
    return [
        tuple(chunks[b * nd + k] if k < nd else empty for k in range(maxdim + 1)) for b in range(dgm.batch_size)
    ]


def to_tuple(dgm: Diagrams, maxdim: int) -> tuple[Tensor, ...]:
    """One image's diagrams as TopologyLayer's ``dgms``: ``dgms[k]`` is an ``(n_k, 2)`` tensor of [birth, death] rows,
    ``k = 0 .. maxdim`` (empty where gpuph has no pair). Rows keep gpuph's order (lifetime descending, essential
    first); zero-length bars are not listed. ``dgm`` holds one image."""
    if dgm.batch_size != 1:
        raise ValueError(f"gpuph.compat.topologylayer: expected the diagrams of one image, got {dgm.batch_size}")
    return _tuples(dgm, maxdim)[0]


def diagrams_to_tuples(dgm: Diagrams, maxdim: int | None = None) -> list[tuple[tuple[Tensor, ...], bool]]:
    """A batched :class:`~gpuph.Diagrams` as a list with one TopologyLayer ``(dgms, issublevel)`` per image
    (differentiable). ``maxdim`` defaults to the highest dimension the diagrams hold (``dgm.computed_dims``)."""
    top = max(dgm.computed_dims, default=dgm.ndim - 1) if maxdim is None else check_maxdim(maxdim)
    return [(dgms, not dgm.superlevel) for dgms in _tuples(dgm, top)]


__all__ = [
    "ALGS", "check_alg", "check_maxdim", "check_size", "diagrams_to_tuples", "host_array", "split_input", "to_tuple",
]
