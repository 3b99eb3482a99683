"""Helpers shared by the persistence front ends (cubical, lower-star, point clouds): the ``dims`` argument, the
differentiable gather of diagram values from the integer rows that the C++ operators return, and host reads of
tensors that ``torch.func`` transforms wrap."""

from __future__ import annotations

import math
import operator
from collections.abc import Iterable

import numpy as np
import torch
from torch import Tensor

from ._ext import VMAP_MESSAGE, ops


def host_numpy(t: Tensor, dtype: torch.dtype | None = None) -> np.ndarray:
    """The values of ``t`` as a NumPy array on the host (in ``dtype`` if given), for host code (NumPy, SciPy) and
    for values that carry no gradient (indices, counts, coordinates for a triangulation). May share memory with
    ``t`` when it is a CPU tensor of that dtype already: read, never write.

    Works under ``torch.func`` transforms (``grad``, ``jacrev``, ``hessian``, ...): their tensors are wrappers
    without storage, and every op inside them wraps its result, so ``t.detach().cpu().numpy()`` fails there; the
    values are those of the tensor the wrappers hold, copied with the transforms set aside.

    Raises:
        RuntimeError: ``t`` is batched by ``torch.vmap`` (the message says what to do instead).
    """
    functorch = getattr(torch._C, "_functorch", None)
    if functorch is None or torch.compiler.is_compiling() or functorch.maybe_current_level() is None:
        return _to_numpy(t, dtype)
    t = unwrap_functorch(t)
    from torch._functorch.pyfunctorch import temporarily_clear_interpreter_stack

    with temporarily_clear_interpreter_stack():
        return _to_numpy(t, dtype)


def _to_numpy(t: Tensor, dtype: torch.dtype | None) -> np.ndarray:
    # A lazily negated or conjugated view (x.conj().imag, torch.neg views) has its sign bit set, which numpy()
    # refuses: the values are materialised first (a no-op for ordinary tensors).
    return t.detach().to("cpu", dtype).resolve_conj().resolve_neg().numpy()


def unwrap_functorch(t: Tensor) -> Tensor:
    """The tensor inside ``torch.func``'s gradient wrappers of ``t`` (``t`` itself outside the transforms and while
    compiling).

    Raises:
        RuntimeError: ``t`` is batched by ``torch.vmap`` at some level (gpuph's message says what to do instead).
    """
    functorch = getattr(torch._C, "_functorch", None)
    if functorch is None or torch.compiler.is_compiling():
        return t
    batched = False
    try:
        while functorch.is_functorch_wrapped_tensor(t):
            if functorch.is_batchedtensor(t):
                batched = True
                break
            t = functorch.get_unwrapped(t)
    except (AttributeError, RuntimeError):  # private API: should it change, the op's vmap rule still says why
        return t
    if batched:
        raise RuntimeError(VMAP_MESSAGE)
    return t


def check_flag(value, name: str) -> bool:
    """``value`` if it is a bool (Python's or numpy's), as a Python bool.

    Raises:
        TypeError: any other value (a string such as ``"no"`` would silently count as True).
    """
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"gpuph: {name} must be a bool, got {value!r}")
    return bool(value)


def dims_mask(dims, num_dims: int, out_of_range: str) -> int:
    """Bit mask of the homology dimensions in ``dims`` (an int or ints in ``0..num_dims-1``; None: all).

    Raises:
        TypeError: ``dims`` is not an int or an iterable of ints.
        ValueError: a dimension out of range; the message is ``out_of_range`` formatted with ``k``.
    """
    if dims is None:
        return (1 << num_dims) - 1
    if isinstance(dims, (Tensor, np.ndarray)):  # 0-d ones do not iterate; take their values
        dims = dims.tolist()
    if isinstance(dims, (int, np.integer)) and not isinstance(dims, bool):
        dims = [int(dims)]
    if not isinstance(dims, Iterable):
        raise TypeError(f"gpuph: dims must be an int or an iterable of ints, got {type(dims).__name__}")
    mask = 0
    for k in dims:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
            raise TypeError(f"gpuph: dims must hold ints, got {k!r}")
        if not 0 <= int(k) < num_dims:
            raise ValueError("gpuph: " + out_of_range.format(k=k))
        mask |= 1 << int(k)
    return mask


def is_integer_at_least(value, lowest: int) -> bool:
    """Whether ``value`` is an integer ``>= lowest``: an int, a float of integral value, a NumPy or one-element tensor
    integer; never a ``bool`` or a string, and no error for None, NaN or inf."""
    try:
        return not isinstance(value, (bool, str, bytes)) and int(value) == value and value >= lowest
    except (TypeError, ValueError, OverflowError):  # None, NaN, inf
        return False


def check_finite_number(name: str, value) -> float:
    """``value`` as a finite ``float``: a Python, NumPy or one-element tensor number (``float()`` alone would also
    read the string ``"2"``; ``bool`` is refused).

    Raises:
        ValueError: anything else, NaN or +-inf.
    """
    number = not isinstance(value, (bool, str, bytes)) and isinstance(value, (int, float, np.number, Tensor))
    if not number or (isinstance(value, Tensor) and value.numel() != 1):
        raise ValueError(f"gpuph: {name} must be a finite number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"gpuph: {name} must be a finite number, got {value}")
    return value


def check_spatial_dims(sd, shape: tuple[int, ...] | None = None, hint: str = "") -> int:
    """``sd`` as an ``int`` in ``1..3`` (an integer, also a NumPy or 0-d integer torch scalar; ``bool`` excluded).

    Raises:
        ValueError: anything else; the message names ``shape`` (the input's) and ends with ``hint`` when given.
    """
    try:
        value = None if isinstance(sd, bool) else operator.index(sd)
    except TypeError:
        value = None
    if value is None or not 1 <= value <= 3:
        where = "" if shape is None else f" for an input of shape {tuple(shape)}"
        raise ValueError(f"gpuph: spatial_dims must be 1, 2 or 3, got {sd!r}{where}{hint}")
    return value


def mask_dims(mask: int) -> tuple[int, ...]:
    """The homology dimensions of a :func:`dims_mask` bit mask, ascending."""
    return tuple(k for k in range(mask.bit_length()) if mask >> k & 1)


def gather_pairs(
    values: Tensor, rows: Tensor, superlevel: bool, end_index: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Diagram values and each image's last filtration value, gathered from ``values``.

    Args:
        values: ``(B, n)`` differentiable filtration values of the critical cells (pixels, vertices), ``n >= 1``.
        rows: ``(N, 4)`` int64 (image, dim, birth index, death index or -1 for essential classes).
        superlevel: essential classes die at ``-inf`` (superlevel) or ``+inf`` (sublevel).
        end_index: optional ``(B,)`` int64 on ``values``' device, each image's ``argmin`` (superlevel) or ``argmax``
            (sublevel) of ``values``, when the caller has it already.

    Returns:
        ``pairs (N, 2)`` and ``end (B,)`` (the image minimum for superlevel, maximum for sublevel), both gathered at
        single entries, so that autograd's backward is one scatter-add.
    """
    B, n = values.shape
    if B == 0:  # nothing to gather (and an index into no elements fails in torch.compile's inductor); still x's graph
        empty = values.reshape(-1)[:0]
        return torch.stack([empty, empty], 1), empty
    inf = -math.inf if superlevel else math.inf
    idx, essential = (ops._gather_index if rows.device.type == "cpu" else _gather_index_torch)(rows, n)
    # Out of place: an in-place fill of a view of the gathered values breaks torch.compile's functionalization (torch
    # 2.11 leaves a mutation in the backward graph with data-dependent sizes).
    pairs = values.reshape(-1)[idx].masked_fill(essential, inf)
    if end_index is None:
        end_index = values.detach().argmin(1) if superlevel else values.detach().argmax(1)
    return pairs, values.gather(1, end_index.unsqueeze(1)).squeeze(1)


def _gather_index_torch(rows: Tensor, n: int) -> tuple[Tensor, Tensor]:
    """``gpuph::_gather_index`` in torch ops, for rows on other devices: the ``(N, 2)`` linear indices of both columns
    (an essential death reads its image's entry 0) and the ``(N, 2)`` mask of the essential deaths (births are
    never negative)."""
    index = rows[:, 2:]
    return index.clamp(min=0).add_(rows[:, :1], alpha=n), index < 0
