"""gpuph itself: the whole batch in one call, on the CPU and, when present, on the GPU."""

from __future__ import annotations

import numpy as np
import torch

import gpuph

from ..agreement import gpuph_canonical
from .base import BACKWARD, FORWARD, Runner, finite_lifetime_sum


def _prepare(device: str, requires_grad: bool):
    def prepare(x: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(x.copy()).to(device)
        if device == "cuda":
            torch.cuda.synchronize()
        return t.requires_grad_(requires_grad)

    return prepare


def make_runner(construction: str, mode: str, device: str = "cpu") -> Runner:
    """gpuph in ``mode`` on ``device`` ("cpu" or "cuda"): superlevel, all dims, float32, with critical pixels."""

    def forward(xt: torch.Tensor):
        return gpuph.cubical_persistence(xt, construction=construction)

    def forward_backward(xt: torch.Tensor):
        xt.grad = None
        dgm = gpuph.cubical_persistence(xt, construction=construction)
        finite_lifetime_sum(dgm.pairs[:, 0], dgm.pairs[:, 1]).backward()
        return dgm

    what = "cubical_persistence(x) on the whole (B, *grid) float32 batch"
    if construction != "V":
        what = f"cubical_persistence(x, construction={construction!r}) on the whole (B, *grid) float32 batch"
    if mode == BACKWARD:
        what += "; then the sum of finite lifetimes, backward"
    return Runner(
        library=f"gpuph-{device}",
        construction=construction,
        mode=mode,
        device=device,
        prepare=_prepare(device, mode == BACKWARD),
        run=forward if mode == FORWARD else forward_backward,
        diagrams=lambda out, _: gpuph_canonical(out),
        note=f"{what} (superlevel, all dims, Z/2, with critical pixels)",
    )


def runners(needed: list[tuple[str, str]], cuda: bool) -> list[Runner]:
    """gpuph runners for the ``(construction, mode)`` pairs in ``needed``, on the CPU and, when ``cuda``, the GPU.

    The CPU's forward row comes first: its output is the reference of the correctness check.
    """
    devices = ["cpu"] + (["cuda"] if cuda else [])
    return [make_runner(c, m, d) for d in devices for c, m in needed]
