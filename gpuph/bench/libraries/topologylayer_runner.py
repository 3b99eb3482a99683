"""TopologyLayer's ``LevelSetLayer2D``: lower-star persistence on the Freudenthal triangulation of a 2D image.

Not installed in gpuph's development environment (its build fails on recent torch), so this runner is exercised only
where it imports; everywhere else the library is skipped with the reason.
"""

from __future__ import annotations

import importlib

import numpy as np
import torch

from ..agreement import canonical
from .base import BACKWARD, Runner, Unavailable, finite_lifetime_sum


def runners(modes: tuple[str, ...], constructions: tuple[str, ...], library: str = "topologylayer") -> list[Runner]:
    if "freudenthal" not in constructions:
        return []
    try:
        tl_nn = importlib.import_module("topologylayer.nn")
    except Exception as exc:  # noqa: BLE001 - a broken build raises more than ImportError
        raise Unavailable(f"not importable ({type(exc).__name__}: {exc})") from exc

    def make(mode: str) -> Runner:
        def prepare(x: np.ndarray):
            height, width = x.shape[1:]
            # size is (width, height) and vertices are numbered row-major: the complex of gpuph's "freudenthal"
            layer = tl_nn.LevelSetLayer2D(size=(width, height), maxdim=1, sublevel=False)
            return layer, torch.from_numpy(x.copy()).requires_grad_(mode == BACKWARD)

        def run(job):
            layer, xt = job
            xt.grad = None
            out = []
            for img in xt:
                dgms, _ = layer(img)
                if mode == BACKWARD:
                    # backward before the next forward: the layer keeps one complex whose state the next call overwrites
                    sum(finite_lifetime_sum(d[:, 0], d[:, 1]) for d in dgms).backward()
                out.append(tuple(d.detach() for d in dgms))
            return out

        def diagrams(out, _):
            res = []
            for dgms in out:
                dims = np.concatenate([np.full(len(d), k) for k, d in enumerate(dgms)])
                pairs = np.concatenate([d.to(torch.float64).numpy().reshape(-1, 2) for d in dgms])
                res.append(canonical(dims, pairs[:, 0], pairs[:, 1]))  # superlevel already; filler rows have length 0
            return res

        return Runner(
            library="topologylayer",
            construction="freudenthal",
            mode=mode,
            prepare=prepare,
            run=run,
            diagrams=diagrams,
            ndims=(2,),
            note=(
                "LevelSetLayer2D(size, maxdim=1, sublevel=False)(x_b) image by image (Freudenthal triangulation, "
                "Z/2; no 3D image layer)" + ("; backward after each image's forward" if mode == BACKWARD else "")
            ),
        )

    return [make(m) for m in modes]
