"""cripser (CubicalRipser): ``computePH`` (V), ``computePH_T`` (T) and the differentiable ``compute_ph_torch``."""

from __future__ import annotations

import importlib

import numpy as np
import torch

from ..agreement import from_negated_sublevel
from .base import BACKWARD, FORWARD, Runner, Unavailable, finite_lifetime_sum


def _import():
    try:
        return importlib.import_module("cripser")
    except ImportError as exc:
        raise Unavailable(f"not installed ({exc})") from exc


def _from_table(tables) -> list[np.ndarray]:
    """cripser's ``(n, 9)`` tables ``[dim, birth, death, birth xyz, death xyz]`` of ``-x`` -> canonical diagrams."""
    res = []
    for t in tables:
        t = t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)
        t = t.reshape(-1, t.shape[-1] if t.size else 9).astype(np.float64)
        res.append(from_negated_sublevel(t[:, 0], t[:, 1], t[:, 2]))  # DBL_MAX / inf deaths -> -inf
    return res


def _numpy(cripser, construction: str) -> Runner:
    fn = cripser.computePH if construction == "V" else cripser.computePH_T
    name = "computePH" if construction == "V" else "computePH_T"
    return Runner(
        library="cripser",
        construction=construction,
        mode=FORWARD,
        prepare=lambda x: [np.ascontiguousarray(-img, dtype=np.float64) for img in x],
        run=lambda arrays: [fn(a, maxdim=a.ndim - 1) for a in arrays],
        diagrams=lambda out, _: _from_table(out),
        note=(
            f"{name}(-x, maxdim=d-1) image by image ({construction} construction, Z/2, with locations, 1 thread; "
            "-x as float64 prepared untimed)"
        ),
    )


def _torch(cripser, mode: str) -> Runner:
    compute = cripser.compute_ph_torch

    def prepare(x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(x.copy()).requires_grad_(mode == BACKWARD)

    def run(xt: torch.Tensor):
        xt.grad = None
        # superlevel = sublevel of -x; the negation is part of the differentiable graph, so it is timed
        tables = [compute(-img, filtration="V", maxdim=img.dim() - 1) for img in xt]
        if mode == BACKWARD:
            loss = sum(finite_lifetime_sum(t[:, 1], t[:, 2]) for t in tables)
            loss.backward()
        return tables

    return Runner(
        library="cripser-torch",
        construction="V",
        mode=mode,
        prepare=prepare,
        run=run,
        diagrams=lambda out, _: _from_table(out),
        note=(
            "compute_ph_torch(-x_b, filtration='V', maxdim=d-1) image by image (autograd layer over computePH, "
            "float64, 1 thread)" + ("; then the sum of finite lifetimes, backward" if mode == BACKWARD else "")
        ),
    )


def runners(modes: tuple[str, ...], constructions: tuple[str, ...], library: str) -> list[Runner]:
    cripser = _import()
    if library == "cripser":
        return [_numpy(cripser, c) for c in ("V", "T") if c in constructions] if FORWARD in modes else []
    if library == "cripser-torch":
        if not hasattr(cripser, "compute_ph_torch"):
            raise Unavailable(f"cripser {getattr(cripser, '__version__', '?')} has no compute_ph_torch")
        return [_torch(cripser, m) for m in modes] if "V" in constructions else []
    raise ValueError(library)
