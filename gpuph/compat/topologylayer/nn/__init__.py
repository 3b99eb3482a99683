"""TopologyLayer's ``topologylayer.nn``: diagram layers and feature layers."""

from .alpha import AlphaLayer
from .features import BarcodePolyFeature, PartialSumBarcodeLengths, SumBarcodeLengths, TopKBarcodeLengths
from .levelset import LevelSetLayer, LevelSetLayer1D, LevelSetLayer2D
from .rips import RipsLayer

__all__ = [
    "AlphaLayer",
    "BarcodePolyFeature",
    "LevelSetLayer",
    "LevelSetLayer1D",
    "LevelSetLayer2D",
    "PartialSumBarcodeLengths",
    "RipsLayer",
    "SumBarcodeLengths",
    "TopKBarcodeLengths",
]
