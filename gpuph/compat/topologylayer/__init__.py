"""A drop-in replacement for TopologyLayer (Brüel-Gabrielsson, Nelson, Dwaraknath, Skraba, Guibas, Carlsson,
"A Topology Layer for Machine Learning", AISTATS 2020) over gpuph.

Change only the import::

    import gpuph.compat.topologylayer as topologylayer
    from gpuph.compat.topologylayer.nn import LevelSetLayer2D, SumBarcodeLengths

or make ``import topologylayer`` (and its submodules) resolve to this package, before the first such import::

    import gpuph.compat.topologylayer
    gpuph.compat.topologylayer.install_shim()

Layers take one function (as TopologyLayer) and return ``(dgms, issublevel)``; given a batch they return a
:class:`gpuph.Diagrams`, which the feature layers reduce per image. See the README section "Migrating from
TopologyLayer" for what differs.
"""

from __future__ import annotations

import sys

from . import functional, nn, util
from .functional.persistence import SimplicialComplex

__all__ = ["SimplicialComplex", "functional", "install_shim", "nn", "util"]


def install_shim(name: str = "topologylayer") -> None:
    """Register this package and its submodules in ``sys.modules`` under ``name`` (default ``"topologylayer"``),
    so that unchanged code doing ``import topologylayer`` / ``from topologylayer.nn import ...`` gets gpuph's
    implementation, with one module object per submodule (classes compare equal across both names).

    Raises:
        ImportError: a different module is already imported under ``name`` (the real TopologyLayer, say).
    """
    prefix = __name__
    existing = sys.modules.get(name)
    if existing is not None and existing is not sys.modules[prefix]:
        raise ImportError(f"gpuph: a module named {name!r} is already imported ({existing!r}); install the shim first")
    for mod_name, module in list(sys.modules.items()):
        if mod_name == prefix or mod_name.startswith(prefix + "."):
            sys.modules[name + mod_name[len(prefix):]] = module
