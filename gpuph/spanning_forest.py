"""Minimum spanning forests of batched distance matrices on the tensor's device (Borůvka), for H0 of Rips
filtrations on the GPU without copying the distance matrices to the host."""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["minimum_spanning_forest"]


def minimum_spanning_forest(dist: Tensor, sizes: Tensor, threshold: float = math.inf) -> tuple[Tensor, Tensor]:
    """The minimum spanning forest of each cloud's graph of edges no longer than ``threshold``.

    Edges are ordered by (length, code ``i * N + j``, ``i < j``), a total order, so the forest is unique and equals
    Kruskal's under that order (the CPU engine's order): H0 of the Rips filtration only depends on it.

    Args:
        dist: ``(B, N, N)`` symmetric distances (float32/float64, any device); entries of padding points ignored.
        sizes: ``(B,)`` int64 number of points of each cloud (its first ``sizes[b]`` rows).
        threshold: longest edge included.

    Returns:
        ``edges (E, 2)`` int64 local point indices ``i < j``, grouped by cloud in code order, and ``counts (B,)`` int64
        edges per cloud, on ``dist``'s device. Borůvka with ``ceil(log2 N) + 1`` rounds of O(B N^2) tensor work each,
        no host synchronisation but the final compaction.
    """
    B, N = int(dist.shape[0]), int(dist.shape[1])
    dev = dist.device
    if B == 0 or N < 2:
        return torch.zeros(0, 2, dtype=torch.int64, device=dev), torch.zeros(B, dtype=torch.int64, device=dev)
    ar = torch.arange(N, device=dev)
    valid = ar < sizes.to(dev)[:, None]
    usable = valid[:, :, None] & valid[:, None, :] & (dist <= threshold) & (ar[:, None] != ar[None, :])
    d = dist.detach().masked_fill(~usable, math.inf)
    big = N * N
    comp = ar.expand(B, N).clone()
    picked = []
    rounds = max(1, math.ceil(math.log2(N))) + 1
    for _ in range(rounds):
        cand = d.masked_fill(comp[:, :, None] == comp[:, None, :], math.inf)
        # For a fixed i the code of (i, j) grows with j, so the first minimum is also the smallest code.
        j = cand.argmin(2)
        best = cand.gather(2, j.unsqueeze(2)).squeeze(2)
        code = torch.minimum(ar, j) * N + torch.maximum(ar, j)
        comp_best = torch.full_like(best, math.inf).scatter_reduce(1, comp, best, "amin")
        hit = torch.isfinite(best) & (best == comp_best.gather(1, comp))
        comp_code = torch.full_like(comp, big).scatter_reduce(1, comp, torch.where(hit, code, big), "amin")
        is_root = comp == ar
        has = is_root & (comp_code < big)
        u, v = comp_code // N, comp_code % N
        cu = comp.gather(1, u.clamp(max=N - 1))
        cv = comp.gather(1, v.clamp(max=N - 1))
        other = torch.where(cu == ar, cv, cu)
        parent = torch.where(has, other, ar)
        # Two components that picked the same edge point at each other: the smaller one stays the root.
        mutual = parent.gather(1, parent) == ar
        parent = torch.where(mutual & (ar < parent), ar, parent)
        picked.append(torch.where(has, comp_code, -1))
        for _ in range(rounds):
            parent = parent.gather(1, parent)
        comp = parent.gather(1, comp)
    codes = torch.stack(picked, 0)  # (rounds, B, N)
    cloud = torch.arange(B, device=dev).view(1, B, 1).expand_as(codes)
    key = (cloud * big + codes)[codes >= 0]
    key = torch.unique(key)  # sorted: by cloud, then code; a mutually picked edge once
    cloud_of = key // big
    code = key % big
    edges = torch.stack([code // N, code % N], 1)
    return edges, torch.bincount(cloud_of, minlength=B)
