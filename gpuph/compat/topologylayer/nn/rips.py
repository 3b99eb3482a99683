"""``topologylayer.nn.rips``."""

from .pointcloud import RipsLayer

__all__ = ["RipsLayer"]
