"""The CPU engine's 3D paths that small grids and batches do not reach on their own: the 64-bit index and key variants
of the H2 union-find and of the H1 reduction (chosen from 2^25 voxels on; forced here through a testing switch and
compared with the 32-bit ones); one image over two threads (slabs of the column passes side by side, the reduction's
helper thread, the ranking in two parts) against the same image in a batch (one thread each); workspaces kept across
calls and shapes; and grids large enough for long reductions against GUDHI."""

from __future__ import annotations

import pytest
import torch
from conftest import assert_same_diagrams, ours_by_dim, smooth_field
from reference import reference

import gpuph

ops = torch.ops.gpuph
CODES = {"V": 0, "T": 1, "freudenthal": 2}


def fields(shape, seed: int):
    g = torch.Generator().manual_seed(seed)
    yield torch.rand(shape, generator=g)
    yield torch.randint(0, 4, shape, generator=g).double()  # plateaus: ties broken by the total order
    yield torch.from_numpy(smooth_field(shape, seed)).float()


def pairs(x: torch.Tensor, construction: str, superlevel: bool, mask: int = 7) -> torch.Tensor:
    return ops.cubical_pairs(x, 3, CODES[construction], superlevel, mask)


@pytest.mark.parametrize("construction", ["V", "T", "freudenthal"])
@pytest.mark.parametrize("superlevel", [True, False])
def test_wide_indices_give_the_same_rows(construction, superlevel, two_threads):
    for shape in [(3, 9, 8, 7), (1, 19, 9, 10)]:  # per image, and one image over the threads
        for x in fields(shape, seed=sum(shape)):
            narrow = pairs(x, construction, superlevel)
            old = ops._engine_force_wide_indices(True)
            try:
                wide = pairs(x, construction, superlevel)
            finally:
                ops._engine_force_wide_indices(old)
            assert torch.equal(wide, narrow), (shape, x.dtype, construction, superlevel)
            assert int((narrow[:, 1] == 1).sum()) > 0  # the reduction had H1 pairs to find


@pytest.mark.parametrize("construction", ["V", "T", "freudenthal"])
def test_one_image_over_two_threads_equals_it_in_a_batch(construction, two_threads):
    # One image: the column passes split into slabs over the two threads, and the reduction helped by the second
    # thread (thousands of columns left after the apparent pairs in the larger grid). In a batch: one thread each.
    for shape in [(1, 24, 11, 9), (1, 30, 21, 19)]:
        for x in fields(shape, seed=4):
            for superlevel in (True, False):
                alone = pairs(x, construction, superlevel)
                in_batch = pairs(torch.cat([x, x.flip(1)]), construction, superlevel)
                assert torch.equal(in_batch[in_batch[:, 0] == 0], alone), (shape, x.dtype, construction, superlevel)
                for _ in range(3):  # the helper's interleaving varies from run to run; the result may not
                    assert torch.equal(pairs(x, construction, superlevel), alone)


@pytest.mark.parametrize("construction", ["V", "T"])
def test_one_large_image_ranked_on_two_threads(construction, two_threads):
    # From 2^16 pixels on, one image is ranked on both threads (radix sort and value classes in two parts); plateaus
    # spanning the parts' boundary must get one class.
    for x in fields((1, 42, 40, 41), seed=6):
        alone = pairs(x, construction, True)
        in_batch = pairs(torch.cat([x, x]), construction, True)
        assert torch.equal(in_batch[in_batch[:, 0] == 0], alone), (x.dtype, construction)


@pytest.mark.parametrize("construction", ["V", "T"])
def test_one_large_image_ranked_on_two_threads_in_unequal_parts(construction, two_threads):
    # 41^3 = 68921 voxels, an odd count: the radix sort's two parts differ in length, the last one short of a full
    # chunk (42 x 40 x 41 above splits evenly, so a chunk size rounded down would go unnoticed there).
    g = torch.Generator().manual_seed(7)
    for x in (torch.rand(1, 41, 41, 41, generator=g), torch.randint(0, 4, (1, 41, 41, 41), generator=g).double()):
        alone = pairs(x, construction, False, 5)
        in_batch = pairs(torch.cat([x, x]), construction, False, 5)
        assert torch.equal(in_batch[in_batch[:, 0] == 0], alone), (x.dtype, construction)


@pytest.mark.parametrize("construction", ["V", "T"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_one_large_image_with_a_single_other_value_ranked_on_two_threads(construction, dtype, two_threads):
    """A constant 41^3 image with one voxel set apart, ranked on two threads: in every byte of the keys all voxels
    but one share a digit, so each pass of the radix sort must still move that voxel (a pass skipped as if the digit
    were shared by all leaves it in place). The same image in a batch (one thread each), and its diagram: one
    essential H0 class born at the odd voxel when it is the minimum (sublevel) or the maximum (superlevel)."""
    for odd, superlevel in ((-1.0, False), (2.5, True), (2.5, False)):
        x = torch.zeros(1, 41, 41, 41, dtype=dtype)
        x[0, 17, 23, 9] = odd
        alone = pairs(x, construction, superlevel)
        in_batch = pairs(torch.cat([x, x]), construction, superlevel)
        assert torch.equal(in_batch[in_batch[:, 0] == 0], alone), (construction, odd, superlevel)
    for odd, superlevel in ((-1.0, False), (2.5, True)):
        x = torch.zeros(1, 41, 41, 41, dtype=dtype)
        x[0, 17, 23, 9] = odd
        dgm = gpuph.cubical_persistence(x, superlevel=superlevel, construction=construction)
        h0 = dgm.in_dim(0)
        assert len(h0) == 1 and float(h0.pairs[0, 0]) == odd, (construction, odd, superlevel)


@pytest.mark.parametrize("construction", ["V", "T"])
def test_one_large_image_ranked_on_four_threads(construction):
    """From 2^16 voxels on, one image is ranked in as many parts as torch has threads, and the value classes of each
    part start after the classes of all earlier parts (a running sum over the parts). Two parts would not show a sum
    that forgets the parts before the previous one: four do. Plateaus (few values) against the same image in a
    batch of four (one thread each; a batch smaller than the threads would split its images too)."""
    g = torch.Generator().manual_seed(9)
    x = torch.randint(0, 4, (1, 41, 41, 41), generator=g).double()
    old = torch.get_num_threads()
    torch.set_num_threads(4)
    try:
        for superlevel in (False, True):
            alone = pairs(x, construction, superlevel)
            in_batch = pairs(torch.cat([x] * 4), construction, superlevel)
            assert torch.equal(in_batch[in_batch[:, 0] == 0], alone), (construction, superlevel)
    finally:
        torch.set_num_threads(old)


@pytest.mark.parametrize("construction", ["V", "T"])
def test_noise_and_smooth_grids_against_gudhi(construction, two_threads):
    # Thousands of columns left after the apparent pairs: the reduction adds stored and regenerated columns.
    for x in fields((1, 18, 17, 16), seed=8):
        for superlevel in (True, False):
            dgm = gpuph.cubical_persistence(x, superlevel=superlevel, construction=construction)
            assert_same_diagrams(ours_by_dim(dgm), reference(x[0].numpy(), construction, superlevel))


@pytest.mark.parametrize("threads", [1, 2])
def test_workspaces_kept_across_calls_and_shapes(threads):
    # Each thread keeps its workspace between calls: shapes with the same number of padded cells but other borders,
    # larger and smaller grids, and the constructions one after another must not see each other's leftovers.
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        g = torch.Generator().manual_seed(21)
        for shape in [(2, 6, 7, 8), (2, 8, 7, 6), (1, 9, 5, 4), (3, 4, 5, 9), (1, 10, 10, 10), (2, 6, 7, 8)]:
            for construction in ("V", "T", "freudenthal"):
                x = torch.randint(0, 5, shape, generator=g).double()
                dgm = gpuph.cubical_persistence(x, construction=construction)
                for b in range(shape[0]):
                    ref = reference(x[b].numpy(), construction, True)
                    assert_same_diagrams(ours_by_dim(dgm, b), ref, f"{shape} {construction} image {b}")
    finally:
        torch.set_num_threads(old)
