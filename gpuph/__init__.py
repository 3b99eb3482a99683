"""gpuph: exact, batched, differentiable persistent homology of images and voxel grids for PyTorch."""

from . import nn
from .cubical import cubical_persistence
from .diagrams import Diagrams

__version__ = "0.1.0"
__all__ = ["Diagrams", "cubical_persistence", "nn", "__version__"]
