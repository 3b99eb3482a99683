"""gpuph: exact, batched, differentiable persistent homology of images and voxel grids for PyTorch."""

from . import distances, losses, nn
from .cubical import cubical_persistence
from .diagrams import Diagrams

__version__ = "0.1.0"
__all__ = ["Diagrams", "cubical_persistence", "distances", "losses", "nn", "__version__"]
