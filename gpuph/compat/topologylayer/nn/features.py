"""TopologyLayer's feature layers (``topologylayer.nn.features``): gpuph's batched implementations."""

from ....barcode_features import BarcodePolyFeature, PartialSumBarcodeLengths, SumBarcodeLengths, TopKBarcodeLengths

__all__ = ["BarcodePolyFeature", "PartialSumBarcodeLengths", "SumBarcodeLengths", "TopKBarcodeLengths"]
