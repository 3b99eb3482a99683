"""Loads the C++ extension, which registers the ``torch.ops.gpuph`` operators."""

try:
    from . import _C  # noqa: F401
except ImportError as exc:  # pragma: no cover - only hit on a broken install
    raise ImportError(
        "gpuph's C++ extension is not built. Install the package into an environment that has torch with "
        "`pip install --no-build-isolation -e .` (or run `make install`)."
    ) from exc

import torch

ops = torch.ops.gpuph


def has_cuda_kernels() -> bool:
    """Whether this build of the extension has the CUDA kernels (torch with CUDA and nvcc at build time)."""
    return torch._C._dispatch_has_kernel_for_dispatch_key("gpuph::cubical_pairs", "CUDA")


# The fake (meta) implementation: the number of pairs depends on the data, so torch.compile gets an unbacked size.
@torch.library.register_fake("gpuph::cubical_pairs")
def _cubical_pairs_fake(x, spatial_dims, construction, superlevel, dims_mask):
    n = torch.library.get_ctx().new_dynamic_size()
    return x.new_empty((n, 4), dtype=torch.int64)


@torch.library.register_fake("gpuph::_filtration_end_index")
def _filtration_end_index_fake(values, superlevel):
    return values.new_empty((values.shape[0],), dtype=torch.int64)


@torch.library.register_fake("gpuph::_gather_index")
def _gather_index_fake(rows, n):
    return rows.new_empty((rows.shape[0], 2)), rows.new_empty((rows.shape[0], 2), dtype=torch.bool)
