"""TopologyLayer's ``topologylayer.functional``: the complex class and the diagram functions."""

from .flag import FlagDiagram
from .persistence import SimplicialComplex, persistenceForwardCohom, persistenceForwardHom
from .sublevel import SubLevelSetDiagram

__all__ = ["FlagDiagram", "SimplicialComplex", "SubLevelSetDiagram", "persistenceForwardCohom",
           "persistenceForwardHom"]
