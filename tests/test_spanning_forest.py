"""The device-side minimum spanning forest (Borůvka in torch) that gives H0 of Rips filtrations of CUDA inputs: its
H0 rows must equal the CPU engine's exactly, ties, duplicates, thresholds and ragged clouds included."""

from __future__ import annotations

import math

import pytest
import torch

import gpuph
from gpuph.point_cloud import _rips_rows, pairwise_distances
from gpuph.spanning_forest import minimum_spanning_forest


def clouds(seed: int):
    g = torch.Generator().manual_seed(seed)
    B = int(torch.randint(1, 4, (1,), generator=g))
    N = int(torch.randint(1, 30, (1,), generator=g))
    x = torch.rand(B, N, 3, generator=g, dtype=torch.float64)
    if seed % 3 == 0:
        x = (x * 3).round() / 3  # many equal lengths and repeated points
    sizes = torch.randint(1, N + 1, (B,), generator=g) if seed % 2 else torch.full((B,), N)
    thr = 0.4 if seed % 5 == 0 else math.inf
    return x, sizes, thr


@pytest.mark.parametrize("seed", range(40))
def test_device_h0_rows_equal_cpu_engine(seed):
    x, sizes, thr = clouds(seed)
    d = pairwise_distances(x)
    want = _rips_rows(d, sizes, thr, 1, on_device=False)
    got = _rips_rows(d, sizes, thr, 1, on_device=True)
    assert torch.equal(got, want)


def kruskal_weight(d, thr: float) -> tuple[float, int]:
    """Weight and edge count of the minimum spanning forest of edges <= thr, by a direct Kruskal."""
    n = len(d)
    edges = sorted((float(d[i, j]), i, j) for i in range(n) for j in range(i + 1, n) if d[i, j] <= thr)
    parent = list(range(n))

    def find(a):
        while parent[a] != a:
            a = parent[a]
        return a

    total, count = 0.0, 0
    for w, i, j in edges:
        a, b = find(i), find(j)
        if a != b:
            parent[a] = b
            total += w
            count += 1
    return total, count


@pytest.mark.parametrize("seed", range(10))
def test_forest_weight_and_size_match_kruskal(seed):
    x, sizes, thr = clouds(seed)
    d = pairwise_distances(x)
    edges, counts = minimum_spanning_forest(d, sizes, thr)
    assert int(counts.sum()) == len(edges)
    start = 0
    for b in range(len(sizes)):
        n = int(sizes[b])
        e = edges[start : start + int(counts[b])]
        start += int(counts[b])
        assert bool((e[:, 0] < e[:, 1]).all()) and bool((e[:, 1] < n).all())
        weight, count = kruskal_weight(d[b, :n, :n], thr)
        assert len(e) == count
        assert math.isclose(float(d[b][e[:, 0], e[:, 1]].sum()), weight, rel_tol=1e-12, abs_tol=1e-12)


def test_rips_h0_values_and_gradients_unchanged_through_the_forest():
    x = torch.rand(2, 25, 2, dtype=torch.float64, requires_grad=True)
    dgm = gpuph.rips_persistence(x, dims=0)
    d = pairwise_distances(x)
    rows = _rips_rows(d, torch.full((2,), 25), math.inf, 1, on_device=True)
    assert torch.equal(rows[:, 2], dgm.birth_index) and torch.equal(rows[:, 3], dgm.death_index)


def test_empty_and_single_point():
    e, c = minimum_spanning_forest(torch.zeros(0, 3, 3), torch.zeros(0, dtype=torch.int64))
    assert e.shape == (0, 2) and c.shape == (0,)
    e, c = minimum_spanning_forest(torch.zeros(2, 1, 1), torch.ones(2, dtype=torch.int64))
    assert e.shape == (0, 2) and c.tolist() == [0, 0]
