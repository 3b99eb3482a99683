"""gpuph: exact, batched, differentiable persistent homology of images and voxel grids for PyTorch."""

from . import barcode_features, distances, losses, lower_star, nn
from .cubical import cubical_persistence
from .diagrams import Diagrams
from .lower_star import lower_star_persistence

__version__ = "0.1.0"
__all__ = [
    "Diagrams",
    "barcode_features",
    "cubical_persistence",
    "distances",
    "lower_star",
    "lower_star_persistence",
    "losses",
    "nn",
    "__version__",
]
