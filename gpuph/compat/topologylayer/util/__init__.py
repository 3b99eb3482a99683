"""TopologyLayer's ``topologylayer.util``."""

from . import construction, process
from .process import diagrams_to_tuples, remove_filler, remove_infinite_bars, remove_zero_bars

__all__ = ["construction", "diagrams_to_tuples", "process", "remove_filler", "remove_infinite_bars",
           "remove_zero_bars"]
