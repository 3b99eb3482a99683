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


# torch.vmap cannot batch these ops: each image's diagram has its own number of pairs. gpuph batches by itself, and
# the gradient of a sum of per-image losses is every image's own gradient (a loss of image b reads only image b's
# pairs), which is what per-sample gradients through vmap(grad(...)) would give.
VMAP_MESSAGE = (
    "gpuph: torch.vmap over persistence is not supported: each image's diagram has its own number of pairs. gpuph "
    "is batched already: pass the whole batch (its leading axes are batch axes; a list of clouds for point clouds) "
    "and use Diagrams.batch or a loss with reduction='none'; for per-sample gradients, backpropagate the sum of the "
    "per-image losses: each image's gradient depends on its own diagram only"
)


def _no_vmap(info, in_dims, *args):
    raise RuntimeError(VMAP_MESSAGE)


if hasattr(torch.library, "register_vmap"):
    for _op in ("gpuph::cubical_pairs", "gpuph::rips_pairs", "gpuph::flag_pairs", "gpuph::complex_flag_pairs",
                "gpuph::lower_star_pairs"):
        torch.library.register_vmap(_op, _no_vmap)
