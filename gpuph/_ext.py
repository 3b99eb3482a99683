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
