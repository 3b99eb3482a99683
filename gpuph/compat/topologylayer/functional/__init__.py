"""TopologyLayer's ``topologylayer.functional``: the complex class and the diagram functions."""

from .persistence import SimplicialComplex, persistenceForwardCohom, persistenceForwardHom
from .sublevel import SubLevelSetDiagram

__all__ = ["SimplicialComplex", "SubLevelSetDiagram", "persistenceForwardCohom", "persistenceForwardHom"]
