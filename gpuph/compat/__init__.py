"""Drop-in faces of other persistent-homology libraries over gpuph's API.

- :mod:`gpuph.compat.topologylayer`: TopologyLayer (Brüel-Gabrielsson et al.): change
  ``import topologylayer`` into ``import gpuph.compat.topologylayer as topologylayer``.
"""
