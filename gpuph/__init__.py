"""gpuph: exact, batched, differentiable persistent homology of images and voxel grids for PyTorch."""

from . import barcode_features, delaunay, distances, losses, lower_star, nn, point_cloud
from .cubical import cubical_persistence
from .diagrams import ComplexDiagrams, Diagrams
from .lower_star import lower_star_persistence
from .point_cloud import flag_persistence, rips_persistence, weak_alpha_persistence

__version__ = "0.1.0"
__all__ = [
    "ComplexDiagrams",
    "Diagrams",
    "barcode_features",
    "cubical_persistence",
    "delaunay",
    "distances",
    "flag_persistence",
    "lower_star",
    "lower_star_persistence",
    "losses",
    "nn",
    "point_cloud",
    "rips_persistence",
    "weak_alpha_persistence",
    "__version__",
]
