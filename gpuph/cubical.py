"""Exact cubical persistence of batched 1D signals, 2D images and 3D voxel grids."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable

import numpy as np
import torch
from torch import Tensor

from ._common import check_flag, check_spatial_dims, dims_mask, gather_pairs, mask_dims, unwrap_functorch
from ._ext import has_cuda_kernels, ops
from .diagrams import Diagrams

CONSTRUCTIONS = {"V": 0, "T": 1, "freudenthal": 2}


def check_construction(construction) -> int:
    """The op's code of a construction name; a ValueError for anything else (a list too, not 'unhashable')."""
    if not isinstance(construction, str) or construction not in CONSTRUCTIONS:
        raise ValueError(f"gpuph: construction must be one of {sorted(CONSTRUCTIONS)}, got {construction!r}")
    return CONSTRUCTIONS[construction]
FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
# The CPU engine indexes the padded grid (one border pixel on each side) with int32.
MAX_PADDED_PIXELS = 2**31 - 2


def check_index_limit(spatial: tuple[int, ...]) -> None:
    """Refuse a grid whose padded form (one cell of border on each side) has more than ``MAX_PADDED_PIXELS``
    pixels: the kernels index a padded grid with int32."""
    if math.prod([s + 2 for s in spatial]) > MAX_PADDED_PIXELS:
        raise ValueError(f"gpuph: grid of shape {spatial} is past the index limit (2^31 pixels)")


def _as_tensor(x) -> Tensor:
    if isinstance(x, Tensor):
        return _check_storage(x)
    if isinstance(x, np.ndarray):
        # Numbers torch holds (floats; ints, bools and complex too, so that each caller refuses them in its own
        # words: images, points, values); longdouble, objects and strings have no torch dtype.
        if x.dtype.kind not in "fiubc" or (x.dtype.kind == "f" and x.dtype.itemsize > 8):
            raise TypeError(_dtype_message(str(x.dtype)))
        # torch shares memory only with native-endian, writeable arrays without negative strides; copy the others.
        if not x.flags.writeable or not x.dtype.isnative or any(st < 0 for st in x.strides):
            x = np.array(x, dtype=x.dtype.newbyteorder("="), order="C", copy=True)
        try:
            return torch.from_numpy(x)
        except TypeError:  # e.g. clongdouble
            raise TypeError(_dtype_message(str(x.dtype))) from None
    if hasattr(x, "__dlpack__"):  # CuPy, JAX, ...: zero-copy
        return torch.from_dlpack(x)
    raise TypeError(f"gpuph: expected a torch tensor or a numpy/DLPack array, got {type(x).__name__}")


def _check_storage(x: Tensor) -> Tensor:
    """x itself if it is a dense tensor with values that torch.vmap does not batch; a clear error for the kinds
    torch's own ops would fail on deep inside (sparse and nested layouts, meta tensors, vmap's batched tensors)."""
    if x.is_nested:
        raise TypeError(
            "gpuph: nested (ragged) tensors are not supported; pass a list of tensors to the point-cloud functions, "
            "or pad the grids to one shape"
        )
    if x.layout != torch.strided:
        raise TypeError(f"gpuph: {x.layout} tensors are not supported; pass a dense tensor (x.to_dense())")
    if x.is_meta:
        raise ValueError(
            "gpuph: meta tensors have no values, and a persistence diagram depends on them (the number of pairs "
            "too); under torch.compile, fake tensors take the op's fake implementation instead"
        )
    unwrap_functorch(x)  # refuses torch.vmap, else the first data-dependent check fails with torch's generic message
    return x


@contextlib.contextmanager
def _out_of_memory_context(work: Tensor, sd: int, construction: str, mask: int):
    """Re-raises the allocator's out-of-memory error with what was asked and what to do about it."""
    try:
        yield
    except torch.OutOfMemoryError as exc:
        dims = [k for k in range(sd) if mask >> k & 1]
        grid = "x".join(str(s) for s in work.shape[1:])
        # The op already ran a batch that did not fit in slices of images, down to one: that one did not fit.
        hint = "one grid alone does not fit (batches that do not fit run in slices of grids by themselves)"
        if sd == 3 and 1 in dims:
            hint += (
                "; leave out H1 (dims=(0, 2)): H1 of 3D grids takes the most memory, for its residual reduction"
                " (most with construction='freudenthal' or on noise)"
            )
        dtype = str(work.dtype).removeprefix("torch.")
        raise torch.OutOfMemoryError(
            f"gpuph: out of memory on {work.device} computing the persistence (dims {dims}, construction "
            f"{construction!r}) of a batch of {work.shape[0]} grids of {grid} {dtype}; {hint}. {exc}"
        ) from exc


# CUDA's messages where a kernel has no code for the GPU (cudaErrorNoKernelImageForDevice, ...InvalidDeviceFunction).
_NO_KERNEL_IMAGE = ("no kernel image is available", "invalid device function")


@contextlib.contextmanager
def _missing_kernels_context(device: torch.device):
    """Re-raises a launch that found no code for the GPU (a build for other architectures) with how to rebuild."""
    try:
        yield
    except RuntimeError as exc:
        if not any(m in str(exc) for m in _NO_KERNEL_IMAGE):
            raise
        major, minor = torch.cuda.get_device_capability(device)
        raise RuntimeError(
            f"gpuph: this build's CUDA kernels hold no code for {torch.cuda.get_device_name(device)} (compute "
            f"capability {major}.{minor}): reinstall gpuph where this GPU is visible, or with "
            f"TORCH_CUDA_ARCH_LIST=\"{major}.{minor}\" set (pip install --no-build-isolation --no-deps -e .). {exc}"
        ) from exc


def _dtype_message(dtype: str) -> str:
    return (
        f"gpuph: unsupported dtype {dtype}; pass float16, bfloat16, float32 or float64 "
        "(convert integer or bool images with x.float(), and take the real part or magnitude of complex ones)"
    )


def cubical_persistence(
    x,
    *,
    dims: int | Iterable[int] | None = None,
    superlevel: bool = True,
    construction: str = "V",
    spatial_dims: int | None = None,
) -> Diagrams:
    r"""Persistence diagrams of a batch of grids, with critical pixels and gradients.

    Homology has Z/2 coefficients, like cripser and TopologyLayer; the diagrams equal GUDHI's exactly when GUDHI is
    asked for the same field (``persistence(homology_coeff_field=2)``; its default, Z/11, can give different H1
    diagrams of 3D grids).

    Args:
        x: tensor (or numpy / DLPack array) of float16, bfloat16, float32 or float64. Its last ``spatial_dims`` axes
            form the grid; all leading axes are batch axes, flattened in C order. Any strides (non-contiguous and
            channels-last inputs are fine). ``+inf``/``-inf`` are valid values; NaN is an error. Never modified.
        dims: homology dimensions to compute, an int or an iterable; default all, ``0 .. spatial_dims - 1``.
        superlevel: ``True`` filters by decreasing value (bright structures are born first; ``birth >= death``,
            essential classes die at ``-inf``); ``False`` by increasing value (``birth <= death``, essential at
            ``+inf``).
        construction: how pixels become a cell complex (DESIGN.md section 2):
            ``"V"``: pixels are vertices, a cell takes the latest value of its vertices (4 / 6 connectivity,
            GUDHI ``CubicalComplex(vertices=...)``); ``"T"``: pixels are top cells, a lower cell takes the earliest
            value of its cofaces (8 / 26 connectivity, GUDHI ``top_dimensional_cells=``); ``"freudenthal"``: the
            Freudenthal triangulation with the lower-star filtration (TopologyLayer's ``LevelSetLayer2D`` complex).
        spatial_dims: 1, 2 or 3; default ``x.dim() - 1``.

    Returns:
        :class:`~gpuph.Diagrams` with ``pairs`` of shape ``(N, 2)`` in ``x``'s dtype on ``x``'s device.
        ``pairs[i, 0] == x_b.flatten()[birth_index[i]]`` bit for bit (likewise deaths), so gradients flow to the
        critical pixels: the backward is one scatter-add. Essential classes carry no death gradient.

    Ties are broken by a total order on pixels, (value, flat index) with values descending for superlevel, which
    makes critical pixels, and so gradients, deterministic.

    Raises:
        TypeError: unsupported input type, dtype (integer, bool, complex) or layout (sparse, nested); a
            ``superlevel`` that is not a bool.
        ValueError: NaN in ``x``, a meta tensor (no values), ``spatial_dims`` outside ``1..3`` or larger than
            ``x.dim()``, unknown ``construction``, ``dims`` out of range, an empty grid, or a grid past the index
            limits.
        torch.OutOfMemoryError: the GPU's memory does not hold the work of even one grid; the message names the
            call and what to try (for 3D grids, leaving out H1, which takes the most). A batch whose work does not
            fit as a whole runs in slices of consecutive grids instead (halved at each failed attempt), with the
            same result; each slice makes its own device-to-host synchronisations.
        RuntimeError: ``x`` batched by ``torch.vmap`` (diagrams differ in size; the input's leading axes are batch
            axes already, and ``torch.func.grad`` works).

    Example::

        >>> x = torch.rand(16, 28, 28, requires_grad=True)
        >>> dgm = gpuph.cubical_persistence(x)            # superlevel, V construction, H0 and H1
        >>> dgm.finite().lifetimes().sum().backward()
    """
    x = _as_tensor(x)
    if x.is_complex() or not x.is_floating_point() or x.dtype not in FLOAT_DTYPES:
        raise TypeError(_dtype_message(str(x.dtype)))
    code = check_construction(construction)
    superlevel = check_flag(superlevel, "superlevel")
    hint = "" if spatial_dims is not None else (
        " (the default is x.dim() - 1: pass spatial_dims=x.dim() for a single unbatched grid)")
    sd = check_spatial_dims(x.dim() - 1 if spatial_dims is None else spatial_dims, x.shape, hint)
    if sd > x.dim():
        raise ValueError(f"gpuph: spatial_dims={sd} is larger than the input's {x.dim()} dimensions")
    mask = dims_mask(dims, sd, f"homology dimension {{k}} out of range 0..{sd - 1} for {sd}D grids")
    spatial = tuple(int(s) for s in x.shape[x.dim() - sd :])
    batch_shape = tuple(int(s) for s in x.shape[: x.dim() - sd])
    if any(s == 0 for s in spatial):
        raise ValueError(f"gpuph: the grid is empty (spatial shape {spatial})")
    check_index_limit(spatial)
    B = math.prod(batch_shape)
    N = math.prod(spatial)

    xb = x.reshape(B, *spatial)  # differentiable; a view where the strides allow
    work = xb.detach()
    if work.dtype in (torch.float16, torch.bfloat16):
        work = work.float()  # exact: every half value is a float32 value
    end_index = None
    if work.is_cuda and has_cuda_kernels():
        with _out_of_memory_context(work, sd, construction, mask), _missing_kernels_context(work.device):
            rows = ops.cubical_pairs(work.contiguous(), sd, code, superlevel, mask)
    elif work.device.type == "cpu":
        work = work.contiguous()
        rows = ops.cubical_pairs(work, sd, code, superlevel, mask)
        if B > 0:  # each image's last filtration value: one vectorised pass instead of argmin
            end_index = ops._filtration_end_index(work.view(B, N), superlevel)
    else:
        # Devices without kernels in this build compute on the CPU; only the integer rows travel back.
        rows = ops.cubical_pairs(work.cpu().contiguous(), sd, code, superlevel, mask).to(x.device)
    # One gather of both columns by linear index (its backward is the scatter-add); essential deaths become -inf/+inf.
    pairs, end = gather_pairs(xb.reshape(B, N), rows, superlevel, end_index)
    _, k, bi, di = rows.unbind(1)
    return Diagrams(
        pairs=pairs,
        dim=k,
        batch=rows[:, 0],
        birth_index=bi,
        death_index=di,
        batch_size=B,
        spatial_shape=spatial,
        superlevel=superlevel,
        construction=construction,
        batch_shape=batch_shape,
        filtration_end=end,
        dims=mask_dims(mask),
    )
