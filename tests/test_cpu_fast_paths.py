"""The CPU engine's fast paths for 2D grids (V, T, freudenthal), each against an independent computation: the GPU
pipeline's CPU emulation (``gpuph::_cubical_pairs_pipeline``: its own candidate sort, union-find and torch-sorted
row order) for the pairs, and torch for the index helpers of the gather (``_filtration_end_index``, ``_gather_index``).

Paths covered here and not by small grids: radix sorts of long candidate lists and of long runs of rows (ties in
lifetime included), one large image split over two threads, workspaces kept across calls and shapes (same padded size,
other layout), and an image past the size up to which workspaces are kept."""

from __future__ import annotations

import math

import pytest
import torch

import gpuph
from gpuph._common import _gather_index_torch

ops = torch.ops.gpuph
CODES = {"V": 0, "T": 1, "freudenthal": 2}


def same_as_pipeline(x: torch.Tensor, construction: str, superlevel: bool, mask: int = 3) -> torch.Tensor:
    want = ops._cubical_pairs_pipeline(x, 2, CODES[construction], superlevel, mask)
    got = ops.cubical_pairs(x, 2, CODES[construction], superlevel, mask)
    assert torch.equal(got, want), (tuple(x.shape), x.dtype, construction, superlevel, mask)
    return got


def fields(shape, seed: int):
    g = torch.Generator().manual_seed(seed)
    yield torch.rand(shape, generator=g)
    yield torch.rand(shape, generator=g, dtype=torch.float64)
    yield torch.randint(0, 3, shape, generator=g).float()  # ties everywhere: equal lifetimes, zero-length pairs
    yield torch.randint(0, 200, shape, generator=g).double()


@pytest.mark.parametrize("construction", ["V", "T", "freudenthal"])
@pytest.mark.parametrize("superlevel", [True, False])
def test_long_candidate_lists_and_runs_of_rows(construction, superlevel):
    for x in fields((2, 61, 87), seed=3):
        rows = same_as_pipeline(x, construction, superlevel)
        # The radix sorts ran: more than 256 rows in some image and dimension.
        assert max(int(((rows[:, 0] == 0) & (rows[:, 1] == k)).sum()) for k in (0, 1)) > 256
    x = torch.rand(2, 61, 87)
    for mask in (1, 2):
        same_as_pipeline(x, construction, superlevel, mask)


@pytest.mark.parametrize("construction", ["V", "T", "freudenthal"])
def test_one_large_image_on_two_threads(construction, two_threads):
    # Fewer images than threads: the passes of one image split over the threads, the two phases side by side.
    for x in fields((1, 173, 190), seed=5):
        for superlevel in (True, False):
            same_as_pipeline(x, construction, superlevel)
    same_as_pipeline(torch.rand(1, 1, 300), construction, True)  # one row: nothing to split
    same_as_pipeline(torch.rand(1, 300, 1), construction, True)


def test_workspaces_kept_across_calls_and_shapes(two_threads):
    # 20 x 22 and 22 x 20 pad to the same number of cells with other borders; 1D grids share the workspaces too.
    g = torch.Generator().manual_seed(11)
    for shape in [(3, 20, 22), (3, 22, 20), (1, 20, 22), (5, 22, 20), (3, 20, 22), (1, 50, 40)]:
        for construction in ("V", "T", "freudenthal"):
            x = torch.randint(0, 6, shape, generator=g).double()
            same_as_pipeline(x, construction, True)
        x1 = torch.rand(4, 24 * 22, generator=g)
        assert torch.equal(ops.cubical_pairs(x1, 1, 0, True, 1), ops._cubical_pairs_pipeline(x1, 1, 0, True, 1))


def test_image_past_the_kept_workspace_size():
    g = torch.Generator().manual_seed(2)
    kept = torch.rand(1, 510, 512, generator=g)  # under 2^19 padded cells: the thread's kept workspace
    past = torch.rand(1, 1460, 1440, generator=g)  # over 2^21 (the calling thread's limit): a workspace of its own
    for x in (kept, past, kept):
        same_as_pipeline(x, "V", True)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_filtration_end_index_is_argmin_argmax(dtype, two_threads):
    g = torch.Generator().manual_seed(4)
    shapes = [(1, 1), (3, 7), (5, 100), (2, 1000), (1, 70_000), (1, 300_001)]
    for B, n in shapes:
        for levels in (3, 1000):
            x = torch.randint(-levels, levels + 1, (B, n), generator=g).to(dtype)
            # signed zeros compare equal: the first of them counts
            zeros = x == 0
            x[zeros & (torch.rand(B, n, generator=g) < 0.5)] = -0.0
            if levels == 3:
                x[torch.rand(B, n, generator=g) < 0.05] = math.inf
                x[torch.rand(B, n, generator=g) < 0.05] = -math.inf
            assert torch.equal(ops._filtration_end_index(x, True), x.argmin(1))
            assert torch.equal(ops._filtration_end_index(x, False), x.argmax(1))


def test_gather_index_matches_torch():
    x = torch.randint(0, 4, (6, 9, 11), generator=torch.Generator().manual_seed(8)).double()
    dgm = gpuph.cubical_persistence(x)
    rows = torch.stack([dgm.batch, dgm.dim, dgm.birth_index, dgm.death_index], 1)
    idx, essential = ops._gather_index(rows, 99)
    idx_t, mask_t = _gather_index_torch(rows, 99)
    assert torch.equal(idx, idx_t)
    assert torch.equal(essential, mask_t)
    assert essential[:, 1].any() and not essential[:, 0].any()
    assert torch.equal(essential[:, 1], dgm.death_index < 0)
    empty = ops._gather_index(rows[:0], 99)
    assert empty[0].shape == (0, 2) and empty[1].shape == (0, 2)
