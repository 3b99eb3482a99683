"""The libraries the suite compares with gpuph: a registry of runner factories.

Each factory takes ``(modes, constructions, library)`` and returns the library's :class:`Runner` s for them (an empty
list when it computes none of them), or raises :class:`Unavailable` with the reason.
"""

from __future__ import annotations

from collections.abc import Callable

from . import cripser_runner, giotto_ph_runner, gudhi_runner, topologylayer_runner, torch_topological_runner
from .base import BACKWARD, CONSTRUCTIONS, FORWARD, MODES, Runner, Unavailable

Factory = Callable[[tuple[str, ...], tuple[str, ...], str], list[Runner]]

FACTORIES: dict[str, Factory] = {
    "gudhi": gudhi_runner.runners,
    "gudhi-fast2d": gudhi_runner.runners,
    "cripser": cripser_runner.runners,
    "cripser-torch": cripser_runner.runners,
    "torch-topological": torch_topological_runner.runners,
    "topologylayer": topologylayer_runner.runners,
    "giotto-ph": giotto_ph_runner.runners,
}
LIBRARIES = ("gpuph", *FACTORIES)

# What each library computes, for the README, the table and the skip reasons.
COMPUTES = {
    "gpuph": "V, T and freudenthal; superlevel; all dims; whole batch in one call; critical pixels; differentiable",
    "gudhi": "V and T; all dims; Z/2 asked for; one image per call; not differentiable",
    "gudhi-fast2d": "T in 2D only (V by duality); H0 and H1; no critical pixels; not differentiable",
    "cripser": "V (computePH) and T (computePH_T); all dims; Z/2; not differentiable",
    "cripser-torch": "V; all dims; differentiable (autograd over computePH, CPU)",
    "torch-topological": "T (GUDHI inside, Z/11); all dims; differentiable (CPU)",
    "topologylayer": "freudenthal in 2D; H0 and H1; differentiable (CPU); no 3D image layer",
    "giotto-ph": "Vietoris-Rips / flag complexes only, no cubical complexes: freudenthal via the flag complex of the "
    "grid graph; not differentiable",
}

__all__ = [
    "BACKWARD", "COMPUTES", "CONSTRUCTIONS", "FACTORIES", "FORWARD", "LIBRARIES", "MODES", "Runner", "Unavailable",
]
