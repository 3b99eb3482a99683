"""``topologylayer.nn.alpha``."""

from .pointcloud import AlphaLayer

__all__ = ["AlphaLayer"]
