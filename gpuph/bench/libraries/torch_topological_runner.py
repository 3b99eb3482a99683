"""torch-topological's ``CubicalComplex``: a torch layer over GUDHI's T construction, image by image."""

from __future__ import annotations

import contextlib
import importlib

import numpy as np
import torch

from ..agreement import from_negated_sublevel
from .base import BACKWARD, Runner, Unavailable, finite_lifetime_sum


class _GudhiTakingTensors:
    """Stands in for the ``gudhi`` module inside torch-topological: hands ``CubicalComplex`` a numpy view of the
    tensor that torch-topological 0.1.9 passes, which recent GUDHI (3.13) rejects with a ``TypeError``. The view costs
    nothing next to the call; everything else is torch-topological's own code."""

    def __init__(self, gudhi):
        self._gudhi = gudhi

    def CubicalComplex(self, dimensions=None, top_dimensional_cells=None, **kwargs):
        if isinstance(top_dimensional_cells, torch.Tensor):
            top_dimensional_cells = top_dimensional_cells.detach().cpu().numpy()
        return self._gudhi.CubicalComplex(dimensions=dimensions, top_dimensional_cells=top_dimensional_cells, **kwargs)

    def __getattr__(self, name):
        return getattr(self._gudhi, name)


@contextlib.contextmanager
def _tensor_friendly_gudhi(module, enabled: bool):
    """Within the block, ``module.gudhi`` is a :class:`_GudhiTakingTensors` (when ``enabled``)."""
    if not enabled:
        yield
        return
    old = module.gudhi
    module.gudhi = _GudhiTakingTensors(old)
    try:
        yield
    finally:
        module.gudhi = old


def _works(tt_nn, cc_module, shim: bool) -> bool:
    try:
        with _tensor_friendly_gudhi(cc_module, shim):
            tt_nn.CubicalComplex(superlevel=True, dim=2)(torch.rand(3, 3))
    except TypeError:
        return False
    return True


def _per_dim(infos) -> list:
    """The ``PersistenceInformation`` of one image, as a list indexed by dimension."""
    return sorted(infos, key=lambda info: info.dimension)


def _essential_mask(k: int, n: int) -> torch.Tensor:
    # torch-topological gives an essential class the value of the image maximum as "death", appended after the finite
    # pairs of its dimension; a full grid has exactly one, in H0 (the grid is contractible).
    mask = torch.zeros(n, dtype=torch.bool)
    if k == 0 and n:
        mask[-1] = True
    return mask


def runners(modes: tuple[str, ...], constructions: tuple[str, ...], library: str = "torch-topological") -> list[Runner]:
    if "T" not in constructions:
        return []
    try:
        tt_nn = importlib.import_module("torch_topological.nn")
        cc_module = importlib.import_module("torch_topological.nn.cubical_complex")
    except ImportError as exc:
        raise Unavailable(f"not installed ({exc})") from exc
    shim = not _works(tt_nn, cc_module, shim=False)
    if shim and not _works(tt_nn, cc_module, shim=True):
        raise Unavailable("CubicalComplex raises TypeError with this GUDHI, even when handed numpy arrays")

    def make(mode: str) -> Runner:
        def prepare(x: np.ndarray):
            layer = tt_nn.CubicalComplex(superlevel=True, dim=x.ndim - 1)
            return layer, torch.from_numpy(x.copy()).requires_grad_(mode == BACKWARD)

        def run(job):
            layer, xt = job
            xt.grad = None
            with _tensor_friendly_gudhi(cc_module, shim):
                out = [_per_dim(infos) for infos in layer(xt)]  # one list of PersistenceInformation per image
            if mode == BACKWARD:
                loss = xt.new_zeros(())
                for infos in out:
                    for info in infos:
                        d = info.diagram[~_essential_mask(info.dimension, len(info.diagram))]
                        loss = loss + finite_lifetime_sum(d[:, 0], d[:, 1])
                loss.backward()
            return out

        def diagrams(out, _):
            res = []
            for infos in out:
                dims, births, deaths = [], [], []
                for info in infos:
                    d = info.diagram.detach().to(torch.float64).clone()
                    d[_essential_mask(info.dimension, len(d)), 1] = float("inf")
                    dims.append(np.full(len(d), info.dimension))
                    births.append(d[:, 0].numpy())
                    deaths.append(d[:, 1].numpy())
                # its diagrams are those of -x (it negates for superlevel sets)
                res.append(from_negated_sublevel(np.concatenate(dims), np.concatenate(births), np.concatenate(deaths)))
            return res

        note = ("CubicalComplex(superlevel=True, dim=d)(x): GUDHI's T construction image by image, Z/11 (GUDHI's "
                "default, not settable), all dims")
        if mode == BACKWARD:
            note += "; then the sum of finite lifetimes, backward"
        if shim:
            note += "; GUDHI gets a numpy view of the tensor torch-topological passes (this GUDHI rejects tensors)"
        return Runner(
            library="torch-topological",
            construction="T",
            mode=mode,
            prepare=prepare,
            run=run,
            diagrams=diagrams,
            # torch-topological calls GUDHI's persistence() with its default field: other H1 diagrams of some 3D grids
            field_dependent_dims={3: (1,)},
            note=note,
        )

    return [make(m) for m in modes]
