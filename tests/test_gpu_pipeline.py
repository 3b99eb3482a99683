"""The CUDA backend's device pipeline: the merge trees (kernels/merge_tree_cuda.cu driven by
gpuph/csrc/merge_tree_pipeline.cpp; H0 and the top dimension) and H1 of 3D grids (the per-cell passes of
kernels/middle_cuda.cu driven by gpuph/csrc/middle_pipeline.cpp, with the residual reduction on the host); V, T and
freudenthal. They run here on the CPU (the op ``gpuph::_cubical_pairs_pipeline``: the same driver, torch sorts and
row ordering), through the CPU emulation of the kernels and through the kernel files themselves compiled for the host
(the ``launchers`` fixture): its rows must equal the CPU engine's exactly, pairs, critical pixels and order, so CI
exercises the GPU logic without a GPU. Freudenthal's
pipeline (its top dimension a merge tree of the same graph in reverse order, by Alexander duality) is also checked
against GUDHI's SimplexTree directly, since the CPU engine computes it another way (simplex-level union-finds). Also
the op's torch.compile support (fake implementation)."""

from __future__ import annotations

import contextlib
import functools
import json
import math
import tempfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import assert_same_diagrams, load_mnist, poisoned_allocations, setting, smooth_field, staircase
from hypothesis import given
from hypothesis import strategies as st
from pipeline_stages import pipeline_stages, stage_differences
from reference import _sorted_pairs, gudhi_freudenthal

import gpuph

ops = torch.ops.gpuph
CODES = {"V": 0, "T": 1, "freudenthal": 2}
CONSTRUCTIONS = list(CODES)


def both(x: torch.Tensor, sd: int, construction: str, superlevel: bool, mask: int) -> None:
    want = ops.cubical_pairs(x, sd, CODES[construction], superlevel, mask)
    got = ops._cubical_pairs_pipeline(x, sd, CODES[construction], superlevel, mask)
    assert got.dtype == torch.int64 and got.shape == want.shape, (got.shape, want.shape)
    assert torch.equal(got, want)


@contextlib.contextmanager
def union_find(mode: int, iterations: int = 32):
    """Runs the pipeline's union-find in `mode` (1: one thread per image and phase, 2: the host, 3: the relaxed
    elder rule; merge_tree_pipeline.h), with at most `iterations` relaxed iterations (pinned: by default the learned
    cap's first value, whatever calls before taught it; 0: the learned cap)."""
    with setting(ops._union_find_mode, mode), setting(ops._relaxed_iterations, iterations):
        yield


def union_find_stats(x: torch.Tensor, sd: int, construction: str, superlevel: bool, mask: int) -> dict[str, int]:
    keys = ("mode", "candidates", "iterations", "converged", "jump_rounds", "jump_rounds_run")
    return dict(zip(keys, ops._merge_tree_stats(x, sd, CODES[construction], superlevel, mask), strict=True))


@pytest.fixture(scope="module", params=[0, 1], ids=["emulation", "kernels"])
def launchers(request):
    """Runs the pipeline (0) through the CPU emulation of its kernels, the per-element steps in loops, or (1) through
    the CUDA kernel files themselves compiled for the host (gpuph/csrc/cuda_on_host.h), whose launchers, launch
    configurations and grid-stride loops only they exercise. Module-scoped, so that hypothesis's tests may use it."""
    with setting(ops._host_kernels, request.param):
        yield request.param


def families(shape, seed: int):
    g = torch.Generator().manual_seed(seed)
    yield "noise", torch.rand(shape, generator=g, dtype=torch.float64)
    yield "quantised", torch.randint(0, 4, shape, generator=g).double()
    yield "binary", torch.randint(0, 2, shape, generator=g).double()
    yield "constant", torch.full(shape, 0.5, dtype=torch.float64)
    idx = torch.stack(torch.meshgrid(*[torch.arange(s) for s in shape[1:]], indexing="ij")).sum(0)
    yield "checkerboard", (idx % 2).double().expand(shape).contiguous()
    inf = torch.rand(shape, generator=g, dtype=torch.float64)
    inf[inf < 0.1] = -math.inf
    inf[inf > 0.9] = math.inf
    yield "inf", inf


@pytest.mark.usefixtures("launchers")
@pytest.mark.parametrize("construction", CONSTRUCTIONS)
@pytest.mark.parametrize("superlevel", [True, False])
@pytest.mark.parametrize(
    "shape",
    [(3, 7, 9), (2, 1, 13), (2, 13, 1), (1, 1, 1), (2, 2, 2), (4, 17), (2, 4, 5, 3), (1, 1, 1, 6), (2, 2, 2, 2)],
)
@pytest.mark.parametrize("mode", [0, 3, 4], ids=["auto", "relaxed", "serial-ring"])
def test_pipeline_equals_cpu_engine_on_input_families(construction, superlevel, shape, mode):
    # These grids are small: by default one thread per image and phase runs the union-find; also the relaxed elder
    # rule on them, and the serial one with a find per ring component (1-pixel grids, single rows and columns,
    # plateaus, +-inf, checkerboards).
    sd = len(shape) - 1
    masks = {1: (1,), 2: (1, 2, 3), 3: (1, 2, 4, 5, 7)}[sd]
    with union_find(mode):
        for name, x in families(shape, seed=sum(shape)):
            for dtype in (torch.float32, torch.float64):
                for mask in masks:
                    try:
                        both(x.to(dtype), sd, construction, superlevel, mask)
                    except AssertionError as exc:
                        raise AssertionError(f"{name} {dtype} mask={mask}") from exc


@pytest.mark.usefixtures("launchers")
@given(
    st.integers(1, 3),
    st.lists(st.integers(1, 12), min_size=1, max_size=3),
    st.sampled_from(CONSTRUCTIONS),
    st.booleans(),
    st.integers(0, 2**31 - 1),
    st.sampled_from([0, 2, 3, 5, 50]),
    st.sampled_from([0, 3, 4]),
    st.booleans(),
    st.sampled_from([0, 1, 2, 32]),
    st.integers(1, 40),
)
def test_pipeline_equals_cpu_engine_random(b, grid, construction, superlevel, seed, levels, mode, buffers, pinned,
                                           learned):
    # mode 3: the relaxed elder rule, which these small grids do not get by default; 4: the serial one with a find
    # per ring component; buffers: the candidates sorted by the double-buffer radix sort, as large batches are;
    # pinned: the relaxed rule's cap (0: the learned one, set to `learned`; 1 and 2 mostly run its fallback).
    g = torch.Generator().manual_seed(seed)
    x = torch.rand((b, *grid), generator=g)
    if levels:
        x = (x * levels).floor()
    with union_find(mode, pinned), setting(ops._relaxed_cap, learned), setting(
        ops._buffer_sort_cells, 0 if buffers else 2**62
    ):
        both(x, len(grid), construction, superlevel, (1 << len(grid)) - 1)


@pytest.mark.usefixtures("launchers")
@given(
    st.integers(1, 2),
    st.lists(st.integers(1, 6), min_size=3, max_size=3),
    st.sampled_from(CONSTRUCTIONS),
    st.booleans(),
    st.integers(0, 2**31 - 1),
    st.sampled_from([1, 2, 4, 5, 6, 7]),
)
def test_pipeline_equals_cpu_engine_3d(b, grid, construction, superlevel, seed, mask):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand((b, *grid), generator=g, dtype=torch.float64)
    if seed % 2:
        x = (x * 3).floor()
    both(x, 3, construction, superlevel, mask)


@pytest.mark.usefixtures("launchers")
@pytest.mark.parametrize("construction", CONSTRUCTIONS)
@pytest.mark.parametrize(
    ("shape", "masks"), [((1, 257, 263), (1, 2, 3)), ((3, 256, 257), (3,)), ((2, 41, 40, 42), (1, 4, 5))]
)
@pytest.mark.parametrize("mode", [0, 2, 4], ids=["auto", "host", "serial-ring"])
def test_pipeline_large_grids(construction, shape, masks, mode):
    # Grids of 2^12 pixels and more: by default the relaxed elder rule (every merging pixel at once); on request the
    # host's union-find, which sends back only the pairs it wrote (a narrower output buffer than the device's), or
    # the serial one with a find per ring component (long runs).
    g = torch.Generator().manual_seed(sum(shape))
    noise = torch.rand(shape, generator=g)
    with union_find(mode):
        assert union_find_stats(noise, len(shape) - 1, construction, True, masks[-1])["mode"] == (mode or 3)
        for x in (noise, (noise * 5).floor()):
            for mask in masks:
                both(x, len(shape) - 1, construction, construction == "V", mask)


@pytest.mark.usefixtures("launchers")
@pytest.mark.parametrize("construction", CONSTRUCTIONS)
def test_relaxed_union_find_converges_in_few_iterations_on_noise_and_smooth_fields(construction):
    """The property the relaxed rule relies on for speed: a few iterations (6-13 measured) on noise and smooth
    fields in 1D, 2D and 3D, far fewer than merging pixels, and no fallback."""
    g = torch.Generator().manual_seed(5)
    cases = [
        (torch.rand(2, 96, 96, generator=g), 2, 3),
        (torch.from_numpy(np.stack([smooth_field((96, 80), seed=s, sigma=3) for s in range(2)])), 2, 3),
        (torch.rand(1, 20, 20, 20, generator=g), 3, 5),
        (torch.cumsum(torch.randn(2, 4000, generator=g, dtype=torch.float64), 1), 1, 1),
    ]
    for x, sd, mask in cases:
        for superlevel in (True, False):
            with union_find(3):
                s = union_find_stats(x, sd, construction, superlevel, mask)
            assert s["mode"] == 3 and s["converged"] == 1, s
            assert 2 <= s["iterations"] <= 16 and s["candidates"] > 20 * s["iterations"], s
    # The staircase needs about one iteration per minimum: it converges only with enough of them.
    with union_find(3):
        assert union_find_stats(staircase(40), 1, construction, False, 1)["converged"] == 0
    with union_find(3, iterations=200):
        s = union_find_stats(staircase(40), 1, construction, False, 1)
    assert s["converged"] == 1 and s["iterations"] >= 35, s


def call_and_read_cap(y: torch.Tensor, superlevel: bool) -> int:
    """H0 of the 1D signals y (V) by the pipeline, checked against the CPU engine; then the learned relaxed cap."""
    got = ops._cubical_pairs_pipeline(y, 1, CODES["V"], superlevel, 1)
    assert torch.equal(got, ops.cubical_pairs(y, 1, CODES["V"], superlevel, 1))
    return ops._relaxed_cap()


@pytest.mark.usefixtures("launchers")
@pytest.mark.parametrize("superlevel", [False, True])
def test_relaxed_cap_is_learned_from_the_calls_before(superlevel):
    """A call whose relaxed rule does not converge (a staircase of 40 minima, about one iteration each, under a cap of
    32) still gives exact rows, by the sequential fallback, and quadruples the next call's cap, under which it
    converges; calls that converge shrink the cap towards twice the iterations they moved a link in, plus 8, by at
    most a quarter a call and never below 16; a pinned cap teaches nothing."""
    x = staircase(40) if not superlevel else -staircase(40)
    walk = torch.cumsum(torch.randn(2, 3000, generator=torch.Generator().manual_seed(3), dtype=torch.float64), 1)

    call = functools.partial(call_and_read_cap, superlevel=superlevel)

    with union_find(3, iterations=0), setting(ops._relaxed_cap, 32):
        assert union_find_stats(x, 1, "V", superlevel, 1)["converged"] == 0  # the stats teach nothing either
        assert call(x) == 128
        s = union_find_stats(x, 1, "V", superlevel, 1)  # under the learned cap
        assert s["converged"] == 1 and 35 <= s["iterations"] < 128, s
        moved = s["iterations"] - 1  # the last iteration run moved nothing
        assert call(x) == max(2 * moved + 8, 96)
        walk_moved = union_find_stats(walk, 1, "V", superlevel, 1)["iterations"] - 1
        caps = [call(walk) for _ in range(12)]
        assert all(b == max(2 * walk_moved + 8, a - a // 4, 16) for a, b in zip(caps, caps[1:])), caps
        assert caps[-1] == max(2 * walk_moved + 8, 16) < 32, caps
    with union_find(3, iterations=5), setting(ops._relaxed_cap, 32):
        assert call(x) == 32 and call(walk) == 32


@pytest.mark.parametrize("superlevel", [False, True])
def test_relaxed_cap_has_a_floor_that_grows_with_the_grid(superlevel):
    """A call on C padded cells runs at least C / (cells per iteration) relaxed iterations whatever was learned, so a
    huge grid's first call converges where the learned cap alone would run the sequential fallback; unconverged, the
    next cap is four times the one it ran under, floor included; converged, the learned cap shrinks from its own
    value, not from the floor, so small grids after a huge one keep it; a pinned cap has no floor."""
    sign = -1 if superlevel else 1
    x, longer = sign * staircase(40), sign * staircase(80)  # 83 and 163 padded cells; about 41 and 81 iterations
    walk = torch.cumsum(torch.randn(2, 3000, generator=torch.Generator().manual_seed(4), dtype=torch.float64), 1)

    call = functools.partial(call_and_read_cap, superlevel=superlevel)

    with union_find(3, iterations=0), setting(ops._relaxed_cap, 32):
        assert union_find_stats(x, 1, "V", superlevel, 1)["converged"] == 0  # no floor to speak of by default
        with setting(ops._relaxed_cells_per_iteration, 1):  # a floor of 83
            s = union_find_stats(x, 1, "V", superlevel, 1)
            assert s["converged"] == 1 and 35 <= s["iterations"] <= 83, s
            assert call(x) == max(2 * (s["iterations"] - 1) + 8, 24)
        ops._relaxed_cap(32)
        with setting(ops._relaxed_cells_per_iteration, 4):  # a floor of 40, short of the longer staircase
            assert union_find_stats(longer, 1, "V", superlevel, 1)["converged"] == 0
            assert call(longer) == 160
        ops._relaxed_cap(32)
        with setting(ops._relaxed_cells_per_iteration, 50):  # a floor of 120 on the walks, which need a few
            s = union_find_stats(walk, 1, "V", superlevel, 1)
            assert s["converged"] == 1 and s["iterations"] < 24, s
            assert call(walk) == max(2 * (s["iterations"] - 1) + 8, 24)
    with union_find(3, iterations=5), setting(ops._relaxed_cells_per_iteration, 1):
        s = union_find_stats(x, 1, "V", superlevel, 1)
        assert s["converged"] == 0 and s["iterations"] == 5, s


@pytest.mark.usefixtures("launchers")
@pytest.mark.parametrize("construction", CONSTRUCTIONS)
def test_relaxed_union_find_falls_back_to_the_sequential_one(construction):
    """Unconverged (too few iterations, or the staircase under the default cap), the relaxed rule hands every run to
    the sequential union-find, whose rows equal the CPU engine's, whatever links the iterations left."""
    g = torch.Generator().manual_seed(11)
    noise = torch.rand(3, 40, 41, generator=g)
    with union_find(3, iterations=1):
        assert union_find_stats(noise, 2, construction, False, 3)["converged"] == 0
        both(noise, 2, construction, False, 3)
        both((noise * 4).floor(), 2, construction, True, 3)
        both(torch.rand(2, 9, 8, 7, generator=g), 3, construction, True, 5)
    for superlevel in (False, True):
        x = staircase(80) if not superlevel else -staircase(80)
        with union_find(3):
            assert union_find_stats(x, 1, construction, superlevel, 1)["converged"] == 0
            both(x, 1, construction, superlevel, 1)
        with union_find(3, iterations=400):
            both(x, 1, construction, superlevel, 1)


@pytest.mark.usefixtures("launchers")
@pytest.mark.parametrize("construction", CONSTRUCTIONS)
def test_pointer_jumping_stops_once_a_round_moves_nothing(construction):
    """Pointer jumping launches ceil(log2 P) + 1 rounds, enough for a chain through every cell, but a round that moves
    no pointer leaves each at its root and the later rounds return at once. Real chains are short: on noise and
    smooth fields in 1D/2D/3D a few rounds run (4 and 6-7 measured), on a ramp (one chain through every pixel) all
    of them; the rows equal the CPU engine's either way, also in reverse and scrambled thread order."""
    g = torch.Generator().manual_seed(5)
    cases = [
        (torch.rand(2, 200, 190, generator=g), 2, 6),
        (torch.from_numpy(smooth_field((2, 160, 170), seed=3, sigma=4)), 2, 9),
        (torch.rand(1, 30, 31, 32, generator=g), 3, 6),
        (torch.from_numpy(smooth_field((1, 30, 31, 32), seed=4, sigma=3)), 3, 9),
        (torch.randn(3, 5000, generator=g).cumsum(1), 1, 8),
    ]
    for x, sd, most in cases:
        mask = (1 << sd) - 1
        s = union_find_stats(x, sd, construction, False, mask)
        assert s["jump_rounds"] >= 14 and 2 <= s["jump_rounds_run"] <= most, (x.shape, s)
        both(x, sd, construction, False, mask)
    for superlevel in (False, True):
        # Every pixel's pointer at the next one: the rounds cannot use pointers already moved in the same round
        # (their cells come later in the threads' natural order).
        ramp = torch.arange(4000.0).repeat(2, 1) * (1 if superlevel else -1)
        s = union_find_stats(ramp, 1, construction, superlevel, 1)
        assert s["jump_rounds_run"] == s["jump_rounds"] == 13, s
        for order in (0, 1, 2):
            with setting(ops._emulation_order, order):
                both(ramp, 1, construction, superlevel, 1)


def sorts_in(fn, *args) -> int:
    """How many torch sorts fn(*args) runs (on the CPU; in the device pipeline each is a sort kernel's launches)."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        fn(*args)
    return sum(e.name == "aten::sort" for e in prof.events())


@pytest.mark.usefixtures("launchers")
@pytest.mark.parametrize("construction", CONSTRUCTIONS)
def test_pipeline_orders_short_runs_by_ranking_and_long_ones_by_sorts(construction):
    """The merge trees' rows come out in the pinned order either way: where every run (image, phase) is short, each
    row is written at its rank among its run's (one launch, one torch sort in the whole call: the candidates'); else,
    and with H1 of 3D, by three stable sorts of the whole output. Both on ties (quantised, constant, checkerboard,
    +-inf), 1D/2D/3D, and the choice by run length (the limit 0 forces the sorts)."""
    for shape in ((3, 7, 9), (4, 17), (2, 4, 5, 3), (8, 28, 28)):
        sd = len(shape) - 1
        mask = (1 << sd) - 1 if sd < 3 else 5
        for name, x in families(shape, seed=sum(shape)):
            for limit in (1024, 0):
                try:
                    with setting(ops._ranked_order_limit, limit):
                        both(x, sd, construction, True, mask)
                        sorts = sorts_in(ops._cubical_pairs_pipeline, x, sd, CODES[construction], False, mask)
                        assert sorts == (1 if limit else 4), (name, shape, limit)
                except AssertionError as exc:
                    raise AssertionError(f"{name} {shape} limit={limit}") from exc
    long_runs = torch.rand(1, 130, 120, generator=torch.Generator().manual_seed(0))  # 2000+ rows in H0's run
    assert sorts_in(both, long_runs, 2, construction, True, 3) == 4  # (the CPU engine sorts without torch)
    with pytest.raises(ValueError, match="run limit is >= 0"):
        ops._ranked_order_limit(-1)


@pytest.mark.usefixtures("launchers")
@pytest.mark.parametrize("construction", CONSTRUCTIONS)
def test_a_batch_that_does_not_fit_runs_in_slices(construction):
    """Where the device's memory does not hold the whole batch (simulated: a slice of more than `limit` images raises
    the allocator's OutOfMemoryError), the slice is halved and the images done are kept, down to one image: the rows
    equal the whole batch's, image indices included (uneven slices, a constant image); a NaN is named by its index in
    the whole batch; one image that does not fit raises the error."""
    g = torch.Generator().manual_seed(11)
    for shape, mask in (((7, 9, 8), 3), ((5, 6, 5, 7), 7), ((6, 30), 1)):
        sd = len(shape) - 1
        x = torch.rand(shape, generator=g, dtype=torch.float64)
        x[2] = 0.5
        for limit in (1, 2, 3):
            with setting(ops._slice_memory_limit, limit):
                both(x, sd, construction, True, mask)
                both(x.float(), sd, construction, False, mask)
    x = torch.rand(7, 6, 6, generator=g)
    x[5, 3, 3] = x[6, 0, 0] = math.nan
    with setting(ops._slice_memory_limit, 2), pytest.raises(ValueError, match="first in batch element 5\\)"):
        ops._cubical_pairs_pipeline(x, 2, CODES[construction], True, 3)
    with setting(ops._slice_memory_limit, 0), pytest.raises(torch.OutOfMemoryError, match="one 6x6 grid does not "
                                                            "fit.*batches are split.*simulated out of memory"):
        ops._cubical_pairs_pipeline(x[:1], 2, CODES[construction], True, 3)
    v = torch.rand(1, 5, 4, 3, generator=g)
    with setting(ops._slice_memory_limit, 0):  # H1 of 3D: the way out named
        with pytest.raises(torch.OutOfMemoryError, match="one 5x4x3 grid.*H1 of 3D grids takes the most"):
            ops._cubical_pairs_pipeline(v, 3, CODES[construction], True, 7)
        with pytest.raises(torch.OutOfMemoryError, match=r"one 5x4x3 grid does not fit[^;]*\. "):
            ops._cubical_pairs_pipeline(v, 3, CODES[construction], True, 5)
    with pytest.raises(ValueError, match="-1 \\(off\\)"):
        ops._slice_memory_limit(-2)


@pytest.mark.usefixtures("launchers")
@pytest.mark.parametrize("construction", CONSTRUCTIONS)
@pytest.mark.parametrize("mode", [0, 1, 2, 3], ids=["auto", "serial", "host", "relaxed"])
def test_double_buffer_sort_of_the_candidates_equals_torchs(construction, mode):
    """Large batches sort their candidates by a radix sort over double buffers (the spent sort keys, two value
    buffers; by key, then stably by image), small ones by torch's sort; forced here with a threshold of 0 cells: the
    same rows on 1D/2D/3D batches whose images share values (quantised, +-inf, constant, checkerboard), float32 and
    float64, in every union-find mode. The sorted pairs land in either pair of buffers (the emulation's in the other
    pair, the kernel files' in the same one, as cub may do either). The choice shows in torch's sorts: one, or
    none."""
    with union_find(mode):
        for shape in ((3, 7, 9), (1, 40, 33), (4, 17), (2, 4, 5, 3), (5, 9, 8, 7)):
            sd = len(shape) - 1
            mask = (1 << sd) - 1 if sd < 3 else 5
            for name, x in families(shape, seed=sum(shape) + 1):
                for cells in (0, 2**62):
                    try:
                        with setting(ops._buffer_sort_cells, cells):
                            both(x, sd, construction, True, mask)
                            both(x.float(), sd, construction, False, mask)
                            sorts = sorts_in(ops._cubical_pairs_pipeline, x, sd, CODES[construction], False, mask)
                    except AssertionError as exc:
                        raise AssertionError(f"{name} {shape} cells={cells}") from exc
                    # (the rows of these short runs are ordered by rank, without a sort)
                    assert sorts == (1 if cells else 0), (name, shape, cells, sorts)
    with pytest.raises(ValueError, match="is >= 0 cells"):
        ops._buffer_sort_cells(-1)


def peak_bytes(fn) -> int:
    """The most memory torch's CPU allocator held for fn() at once, beyond what it held before (the profiler's
    running total of allocations)."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "trace.json"
        prof.export_chrome_trace(str(path))
        events = json.loads(path.read_text())["traceEvents"]
    totals = [e["args"]["Total Allocated"] for e in events if e.get("name") == "[memory]" and "Total Allocated" in
              e.get("args", {})]
    assert totals, "the profiler recorded no allocation"
    return max(totals)


@pytest.mark.parametrize("construction", CONSTRUCTIONS)
@pytest.mark.parametrize(("mode", "per_cell"), [(3, 57), (1, 49)], ids=["relaxed", "serial"])
def test_merge_trees_peak_memory_per_padded_cell(construction, mode, per_cell):
    """The device pipeline allocates its tensors through torch on either device (the launchers allocate none; cub's
    scratch aside), so its peak is measured here on the CPU emulation: for H0 and H2 of one float32 volume with the
    double-buffer candidate sort, 57 bytes a padded cell in the relaxed union-find (cell keys 8, both phases'
    pointers 8, flags 1, the spent sort keys holding the links 16, the candidates' order 8, the claims holding the
    pairs 16) and 49 in the serial one (the sort's two value buffers where the claims would be). The README's
    estimate for a 1024^3 volume rests on these figures; a per-cell buffer kept alive too long fails the test."""
    x = torch.rand(1, 40, 40, 40, generator=torch.Generator().manual_seed(5))
    cells = 42**3
    with setting(ops._buffer_sort_cells, 0), union_find(mode):
        peak = peak_bytes(lambda: ops._cubical_pairs_pipeline(x, 3, CODES[construction], True, 5))
    assert per_cell * cells * 0.9 <= peak <= (per_cell + 0.05) * cells, peak / cells


@pytest.mark.usefixtures("launchers")
@pytest.mark.parametrize(("construction", "per_cell"), [("V", 193), ("T", 351), ("freudenthal", 978)])
def test_h1_of_3d_peak_memory_per_padded_cell(construction, per_cell):
    """H1 of one float32 40^3 noise volume, its residual storage sized as on a first call (later calls size it from
    the one before, which the tests before this one set): its peak in bytes a padded cell, the figures the
    out-of-memory error and the README give (freudenthal has 7 edges and 12 2-cells a vertex to V's 3 and 3). A
    per-cell buffer kept alive too long fails the test."""
    x = torch.rand(1, 40, 40, 40, generator=torch.Generator().manual_seed(5))
    code = CODES[construction]
    old = ops._residual_hints(code, 32, 64)  # 32 rounds, spare 4x the first buffers: a first call's
    try:
        peak = peak_bytes(lambda: ops._cubical_pairs_pipeline(x, 3, code, True, 2)) / 42**3
    finally:
        ops._residual_hints(code, *old)
    assert 0.9 * per_cell <= peak <= 1.05 * per_cell, peak


def test_union_find_settings_are_checked():
    with pytest.raises(ValueError, match="mode is 0, 1, 2, 3 or 4"):
        ops._union_find_mode(5)
    for bad in (-1, 4097):
        with pytest.raises(ValueError, match="iterations are 1 to 4096, or 0"):
            ops._relaxed_iterations(bad)
    for bad in (0, -2, 4097):
        with pytest.raises(ValueError, match="learned relaxed cap is 1 to 4096"):
            ops._relaxed_cap(bad)
    for bad in (0, -2):
        with pytest.raises(ValueError, match="cells per iteration are at least 1"):
            ops._relaxed_cells_per_iteration(bad)


@pytest.mark.usefixtures("launchers")
@pytest.mark.parametrize("construction", CONSTRUCTIONS)
@pytest.mark.parametrize("superlevel", [True, False])
def test_middle_pipeline_on_noise_smooth_and_mixed_batches(construction, superlevel):
    """H1 of 3D: smooth fields (few, long columns) and noise (many); a batch in which only some images leave columns
    to the residual reduction (constant images have none), so that only those go to the host."""
    smooth = torch.from_numpy(np.stack([smooth_field((14, 12, 13), seed=s) for s in range(2)]))
    both(smooth, 3, construction, superlevel, 2)
    noise = torch.rand(2, 11, 10, 12, dtype=torch.float64)
    const = torch.full((11, 10, 12), 0.25, dtype=torch.float64)
    mixed = torch.stack([const, noise[0], const, const, noise[1]])
    both(mixed, 3, construction, superlevel, 7)
    both((mixed * 4).floor().float(), 3, construction, superlevel, 2)


@pytest.mark.usefixtures("launchers")
@pytest.mark.parametrize("construction", CONSTRUCTIONS)
def test_middle_pipeline_int64_keys_equal_int32_keys(construction):
    """The device passes and the host reduction keep keys in int32 below about 2^25 pixels, in int64 above: forced
    to int64 (the testing op the CPU engine's wide indices share), the rows are the same."""
    for shape in ((3, 9, 8, 7), (1, 17, 12, 10)):
        x = torch.rand(shape, generator=torch.Generator().manual_seed(sum(shape)), dtype=torch.float64)
        for y in (x, (x * 3).floor()):
            narrow = ops._cubical_pairs_pipeline(y, 3, CODES[construction], True, 2)
            with setting(ops._engine_force_wide_indices, True):
                wide = ops._cubical_pairs_pipeline(y, 3, CODES[construction], True, 2)
                both(y, 3, construction, False, 7)
            assert torch.equal(wide, narrow)
            assert int((narrow[:, 1] == 1).sum()) > 0


@pytest.mark.usefixtures("launchers")
@pytest.mark.parametrize("spare", [-1, 0, 3000])
@pytest.mark.parametrize("construction", CONSTRUCTIONS)
def test_middle_pipeline_residual_columns_outgrow_their_buffers(construction, spare):
    """Noise leaves columns longer than their first buffers (16 entries; they add in place): they take larger ones
    from the spare region in the rounds themselves (on a first call, 4x as large as the first buffers); where it is
    used up (none, or 3000 entries), the driver adds room between batches of rounds. The device finishes, and the
    rows equal the CPU engine's."""
    x = torch.rand(1, 26, 25, 24, generator=torch.Generator().manual_seed(11))
    with setting(ops._residual_spare, spare):
        stats = ops._middle_pipeline_stats(x, CODES[construction], True).tolist()
        residual, (grown, on_host, batches, pool, taken) = stats[2], stats[5:]
        assert grown > 0 and on_host == 0
        first = 16 * residual
        if spare < 0:
            # Growing in the rounds, one batch of rounds (one copy to the host) is enough, in the storage allocated.
            assert batches == 1 and pool == 5 * first and 0 < taken <= 4 * first, stats
        else:
            # Where the spare region is used up, the driver adds segments with more room (never copying any), a
            # batch of rounds each: what the columns took fits in what was allocated.
            assert 1 < batches <= 32 and first + spare < pool and taken <= pool - first, stats
        both(x, 3, construction, True, 2)
        both(torch.cat([x.flip(1), x]), 3, construction, False, 7)


@pytest.mark.usefixtures("launchers")
@pytest.mark.parametrize("construction", CONSTRUCTIONS)
def test_middle_pipeline_sizes_the_spare_region_from_the_previous_call(construction):
    """A call sizes the next one's spare region from what its columns took past their first buffers, a quarter
    more: a training loop calls on similar grids. With that region the same grid needs one batch of rounds; smooth
    freudenthal fields (long but few columns past their first buffers) get less than the first call's 4x."""
    code = CODES[construction]
    x = torch.rand(1, 24, 22, 23, generator=torch.Generator().manual_seed(2))
    smooth = torch.from_numpy(smooth_field((24, 22, 23), seed=2))[None]
    old = [ops._residual_hints(c, 32, 64) for c in range(3)]  # the first call's settings, which the stats op uses
    try:
        got = ops._cubical_pairs_pipeline(x, 3, code, True, 2)
        hint = ops._residual_hints(code)[1]
        assert all(ops._residual_hints(c) == [32, 64] for c in range(3) if c != code)  # one per construction
        residual, *_, taken = ops._middle_pipeline_stats(x, code, True).tolist()[2:]
        first = 16 * residual
        spare = first * hint // 16
        assert taken <= spare <= 1.25 * taken + first // 8, (taken, spare, first)
        with setting(ops._residual_spare, spare):
            assert ops._middle_pipeline_stats(x, code, True).tolist()[7] == 1
        assert torch.equal(got, ops._cubical_pairs_pipeline(x, 3, code, True, 2))  # the hinted call: same rows
        ops._cubical_pairs_pipeline(smooth, 3, CODES["freudenthal"], True, 2)
        assert ops._residual_hints(CODES["freudenthal"])[1] < 64
    finally:
        for c, hints in enumerate(old):
            ops._residual_hints(c, *hints)


def test_residual_round_limit_refuses_what_the_owner_entries_cannot_number():
    """The rounds' number lives in 22 bits of the owner entries: a limit of 2**22 rounds or more (or a negative one)
    is refused, and the limit in force is left as it was."""
    old = ops._residual_round_limit(5)
    try:
        for bad in (-1, 2**22, 2**40):
            with pytest.raises(ValueError, match="residual rounds' limit is 0 to 4194303"):
                ops._residual_round_limit(bad)
        assert ops._residual_round_limit(2**22 - 1) == 5
    finally:
        ops._residual_round_limit(old)


@pytest.mark.usefixtures("launchers")
@pytest.mark.parametrize("construction", CONSTRUCTIONS)
def test_middle_pipeline_host_finishes_what_the_rounds_leave(construction):
    """With the device's rounds cut short, the host finishes the reduction from the columns as the rounds left them
    (partly reduced): the same rows."""
    x = torch.rand(3, 14, 13, 15, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    for limit in (1, 3):
        with setting(ops._residual_round_limit, limit):
            assert ops._middle_pipeline_stats(x, CODES[construction], True).tolist()[6] == 1
            both(x, 3, construction, True, 7)
            both((x * 3).floor(), 3, construction, False, 2)
    # Columns in several segments (no spare region: the driver added one after the first batch, 33 rounds), read
    # back from each of them.
    with setting(ops._residual_round_limit, 34), setting(ops._residual_spare, 0):
        stats = ops._middle_pipeline_stats(x, CODES[construction], True).tolist()
        assert stats[6] == 1 and stats[7] == 2 and stats[9] > 0, stats
        both(x, 3, construction, True, 7)


@pytest.mark.usefixtures("launchers")
@pytest.mark.parametrize("construction", CONSTRUCTIONS)
def test_middle_pipeline_one_large_image_on_two_threads(construction, two_threads):
    # One image on two threads (the CPU emulation's per-cell passes and residual rounds split over them); repeated.
    x = torch.rand(1, 21, 22, 20)
    for _ in range(3):
        both(x, 3, construction, construction != "T", 2)


@pytest.mark.usefixtures("launchers")
@pytest.mark.parametrize("order", [1, 2], ids=["reverse", "scrambled"])
@pytest.mark.parametrize("construction", CONSTRUCTIONS)
def test_pipeline_does_not_depend_on_the_order_threads_run_in(construction, order):
    """A kernel's threads run in no fixed order, and the steps that race in place (pointer jumping, the apparent
    pairs' writes, the residual rounds' claims and growth) must give the same result whatever it is: the emulation
    runs every step one element at a time, last first or scrambled (t -> t * s mod n), and the rows still equal the
    CPU engine's, on the input families in 1D/2D/3D (with the union-find run one thread per image and phase and by
    the relaxed elder rule, whose claims race), on 3D noise whose residual columns outgrow their buffers (with and
    without spare region) and on a batch that leaves the device rounds unfinished."""
    with setting(ops._emulation_order, order):
        with union_find(3):
            for shape in ((3, 17, 19), (5, 40), (2, 6, 5, 7)):
                sd = len(shape) - 1
                for name, x in families(shape, seed=sum(shape) + order):
                    for superlevel in (True, False):
                        try:
                            both(x, sd, construction, superlevel, (1 << sd) - 1)
                        except AssertionError as exc:
                            raise AssertionError(f"relaxed {name} {shape} superlevel={superlevel}") from exc
        for shape in ((3, 7, 9), (4, 17), (2, 5, 4, 6)):
            sd = len(shape) - 1
            for name, x in families(shape, seed=sum(shape) + order):
                for superlevel in (True, False):
                    try:
                        both(x.float(), sd, construction, superlevel, (1 << sd) - 1)
                    except AssertionError as exc:
                        raise AssertionError(f"{name} {shape} superlevel={superlevel}") from exc
        x = torch.rand(1, 22, 21, 20, generator=torch.Generator().manual_seed(order))
        for spare in (-1, 0):
            with setting(ops._residual_spare, spare):
                assert ops._middle_pipeline_stats(x, CODES[construction], True).tolist()[5] > 0  # columns grew
                both(x, 3, construction, True, 2)
        with setting(ops._residual_round_limit, 2):
            assert ops._middle_pipeline_stats((x * 4).floor(), CODES[construction], False).tolist()[6] == 1  # host
            both((x * 4).floor(), 3, construction, False, 7)


@pytest.mark.usefixtures("launchers")
@pytest.mark.parametrize(
    ("construction", "noise_max", "smooth_max"), [("V", 0.25, 0.1), ("T", 0.25, 0.1), ("freudenthal", 0.45, 0.45)]
)
def test_middle_pipeline_compression_and_clearing_shrink_the_residual(construction, noise_max, smooth_max):
    """Every column is an apparent pair or residual, and the local compression and clearing marks keep the residual
    below these fractions of the columns (measured: V 18% / 4%, T 17% / 3%, freudenthal 37% / 34% on noise /
    smooth fields). Without the marks it is 42% / 33%, 40% / 33%, 58% / 57%."""
    noise = torch.rand(2, 16, 16, 16, generator=torch.Generator().manual_seed(5))
    smooth = torch.from_numpy(smooth_field((16, 16, 16), seed=1))[None]
    for x, most in ((noise, noise_max), (smooth, smooth_max)):
        columns, apparent, residual, additions, rounds, _, on_host, batches = ops._middle_pipeline_stats(
            x, CODES[construction], True
        ).tolist()[:8]
        assert columns == apparent + residual and apparent > 0
        assert residual <= most * columns, (residual, columns)
        # The device reduced the residual columns itself, in few rounds of many additions each.
        assert additions >= residual // 2 and 0 < rounds <= 32 and on_host == 0, (additions, rounds, on_host)
        assert batches == 1


@pytest.mark.usefixtures("launchers")
@pytest.mark.parametrize("superlevel", [False, True])
@pytest.mark.parametrize("shape", [(2, 4, 5, 3), (1, 1, 6, 7), (1, 2, 2, 2), (1, 7, 1, 1)])
def test_middle_pipeline_compresses_exactly_the_edges_of_apparent_pairs_with_vertices(superlevel, shape):
    """V, distinct values: every vertex v with a lower 6-neighbour forms an apparent pair with an edge to a lower
    neighbour (such an edge is v's oldest coface, its key rank being v's own, and v is its youngest face), and a
    local minimum forms none (its oldest edge's youngest face is the other end). So the edge keys (stage ekey) keep
    exactly the grid's edges less one per vertex that is not a local minimum, on the grid's border too (whose vertices
    have cofaces outside the grid, which have no key). Compression only saves work, so no diagram tells if it is
    skipped."""
    x = torch.rand(shape, generator=torch.Generator().manual_seed(sum(shape)), dtype=torch.float64)
    ekey = pipeline_stages(x, 3, "V", superlevel, 2)["ekey"].reshape(shape[0], -1)
    n0, n1, n2 = shape[1:]
    edges = (n0 - 1) * n1 * n2 + n0 * (n1 - 1) * n2 + n0 * n1 * (n2 - 1)
    v = x.numpy() * (-1 if superlevel else 1)
    p = np.pad(v, ((0, 0), (1, 1), (1, 1), (1, 1)), constant_values=np.inf)
    lower = np.zeros(v.shape, dtype=bool)
    for a in range(1, 4):
        for d in (-1, 1):
            window = [slice(None)] + [slice(1, -1)] * 3
            window[a] = slice(1 + d, p.shape[a] - 1 + d)
            lower |= p[tuple(window)] < v
    assert ((ekey >= 0).sum(1) == edges - lower.reshape(shape[0], -1).sum(1)).all()


def pipeline_by_dim(x: torch.Tensor, sd: int, superlevel: bool, mask: int) -> list[dict[int, np.ndarray]]:
    """The freudenthal pipeline's rows of every image as diagrams in the oracle's format (values from the pixels)."""
    rows = ops._cubical_pairs_pipeline(x, sd, CODES["freudenthal"], superlevel, mask)
    flat = x.reshape(x.shape[0], -1).double()
    out = []
    for b in range(x.shape[0]):
        r = rows[rows[:, 0] == b]
        birth = flat[b, r[:, 2]]
        death = torch.where(r[:, 3] < 0, -math.inf if superlevel else math.inf, flat[b, r[:, 3].clamp_min(0)])
        pairs = torch.stack([birth, death], 1).numpy()
        out.append({k: _sorted_pairs(pairs[(r[:, 1] == k).numpy()]) for k in range(sd)})
    return out


@pytest.mark.usefixtures("launchers")
@pytest.mark.parametrize("superlevel", [True, False])
@pytest.mark.parametrize("shape", [(2, 9, 7), (2, 1, 11), (2, 11, 1), (1, 1, 1), (2, 2, 2), (2, 4, 3, 5), (1, 2, 2, 2)])
def test_freudenthal_pipeline_equals_gudhi_simplex_tree(superlevel, shape):
    """H0 (merge tree of the triangulation's edges) and the top dimension (the same graph in reverse order, the border
    as the outside) against GUDHI on the triangulation itself: ties, plateaus, +-inf, the grid border."""
    sd = len(shape) - 1
    mask = 1 | (1 << (sd - 1))  # 3D: H0 and H2
    for name, x in families(shape, seed=3 * sum(shape)):
        got = pipeline_by_dim(x, sd, superlevel, mask)
        for b in range(shape[0]):
            ref = gudhi_freudenthal(x[b].numpy(), superlevel)
            ref = {k: (v if (mask >> k) & 1 else v[:0]) for k, v in ref.items()}
            assert_same_diagrams(got[b], ref, f"{name} superlevel={superlevel} image {b}")


@pytest.mark.usefixtures("launchers")
def test_freudenthal_pipeline_follows_the_diagonal():
    """The triangulation joins (i, j) to (i + 1, j + 1), not to (i + 1, j - 1): two minima on the anti-diagonal are
    two components, on the diagonal one; a ring of minima around a maximum cut at an anti-diagonal corner stays
    closed (the corner's two ring neighbours are joined along the diagonal), cut at a diagonal corner it opens."""
    anti = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    diag = torch.tensor([[[0.0, 1.0], [1.0, 0.0]]])
    for x, h0 in ((anti, 2), (diag, 1)):
        both(x, 2, "freudenthal", False, 3)
        assert pipeline_by_dim(x, 2, False, 1)[0][0].shape[0] == h0
    ring = torch.zeros(1, 3, 3)
    ring[0, 1, 1] = 1
    for corner, holes in (((0, 2), 1), ((2, 0), 1), ((0, 0), 0), ((2, 2), 0)):
        x = ring.clone()
        x[0, corner[0], corner[1]] = 1
        both(x, 2, "freudenthal", False, 3)
        assert pipeline_by_dim(x, 2, False, 2)[0][1].shape[0] == holes


@pytest.mark.usefixtures("launchers")
def test_pipeline_on_mnist_smooth_and_batches():
    digits = torch.from_numpy(load_mnist(16).astype(np.float32)) / 255
    both(digits, 2, "V", True, 3)
    both(digits, 2, "T", False, 3)
    both(digits, 2, "freudenthal", True, 3)
    smooth = torch.from_numpy(np.stack([smooth_field((40, 33), seed=s) for s in range(4)]))
    both(smooth, 2, "V", True, 3)
    both(torch.rand(64, 28, 28), 2, "V", True, 3)


@pytest.mark.usefixtures("launchers")
@pytest.mark.parametrize("superlevel", [True, False])
def test_freudenthal_pipeline_on_smooth_fields_and_batches(superlevel):
    smooth = torch.from_numpy(np.stack([smooth_field((40, 33), seed=s) for s in range(4)]))
    both(smooth, 2, "freudenthal", superlevel, 3)
    both(smooth.float(), 2, "freudenthal", superlevel, 1)
    both(torch.rand(64, 28, 28), 2, "freudenthal", superlevel, 3)
    both((torch.rand(32, 28, 28) * 5).floor(), 2, "freudenthal", superlevel, 2)
    volumes = torch.from_numpy(np.stack([smooth_field((12, 10, 11), seed=s) for s in range(3)]))
    for mask in (1, 4, 5):
        both(volumes, 3, "freudenthal", superlevel, mask)
        both(torch.rand(4, 9, 8, 7), 3, "freudenthal", superlevel, mask)
    both(torch.rand(3, 100), 1, "freudenthal", superlevel, 1)


@pytest.mark.usefixtures("launchers")
@pytest.mark.parametrize("construction", CONSTRUCTIONS)
def test_pipeline_reports_nan_with_its_image(construction):
    for shape, mask in (((3, 5, 5), 3), ((3, 4, 4, 4), 5), ((3, 4, 4, 4), 2), ((3, 9), 1)):
        x = torch.rand(shape, dtype=torch.float64)
        x[2].view(-1)[5] = math.nan
        x[1].view(-1)[-1] = math.nan
        with pytest.raises(ValueError, match="NaN.*batch element 1"):
            ops._cubical_pairs_pipeline(x, len(shape) - 1, CODES[construction], True, mask)


def test_pipeline_empty_batch():
    assert ops._cubical_pairs_pipeline(torch.rand(0, 4, 4), 2, 0, True, 3).shape == (0, 4)


def _barcode_features(dgm: gpuph.Diagrams) -> torch.Tensor:
    bf = gpuph.barcode_features
    return (bf.sum_barcode_lengths(dgm, 0) + bf.partial_sum_barcode_lengths(dgm, 0, 1)
            + bf.top_k_barcode_lengths(dgm, 1, 3).sum(1) + bf.barcode_poly_feature(dgm, 1, 2, 1)).sum()


@pytest.mark.parametrize(
    "loss",
    [
        lambda x: gpuph.cubical_persistence(x).finite().lifetimes().pow(2).sum(),
        # padded: no branch on the number of pairs (a guard on it failed with the capture flag on, graph or not)
        lambda x: gpuph.cubical_persistence(x).finite().padded()[0].sum(),
        # The GAN loss of the TopologyLayer paper, E(1, 0, 2; PD_0), and an H1 term.
        lambda x: gpuph.losses.persistence_energy(gpuph.cubical_persistence(x), 0, p=1, i0=2)
        + gpuph.losses.persistence_energy(gpuph.cubical_persistence(x, dims=1), 1, p=2, q=1),
        # TopologyLayer's barcode features.
        lambda x: _barcode_features(gpuph.cubical_persistence(x)),
    ],
    ids=["lifetimes", "padded", "persistence_energy", "barcode_features"],
)
@pytest.mark.parametrize("gather", ["op", "torch"])
def test_torch_compile_fullgraph_matches_eager(loss, gather, monkeypatch):
    """The losses compile in one graph with the op, also for an empty batch; "torch": with the gather's index helper
    in torch ops, as the rows on a GPU take it (CI has no GPU: the same graph on the CPU)."""
    if gather == "torch":
        import gpuph._common as common

        monkeypatch.setattr(common, "ops", SimpleNamespace(_gather_index=common._gather_index_torch))
    torch._dynamo.reset()

    old = torch._dynamo.config.capture_dynamic_output_shape_ops
    torch._dynamo.config.capture_dynamic_output_shape_ops = True
    try:
        compiled = torch.compile(loss, fullgraph=True)
        for shape in [(4, 9, 9), (6, 9, 9), (0, 9, 9)]:  # an empty batch too (inductor cannot index into nothing)
            x = torch.rand(shape, dtype=torch.float64, requires_grad=True)
            y = compiled(x)
            (gx,) = torch.autograd.grad(y, x)
            y_ref = loss(x)
            (gx_ref,) = torch.autograd.grad(y_ref, x)
            assert torch.allclose(y, y_ref)
            # Equal up to the last bit: inductor fuses and orders a pixel's sum of contributions (and pow's
            # derivative) its own way (seen: 1.1e-16 at seed 12); a wrong critical pixel would be off by O(0.1).
            assert torch.allclose(gx, gx_ref, rtol=1e-13, atol=1e-15), (shape, (gx - gx_ref).abs().max())
    finally:
        torch._dynamo.config.capture_dynamic_output_shape_ops = old


@pytest.mark.parametrize("construction", CONSTRUCTIONS)
@pytest.mark.parametrize("superlevel", [True, False])
@pytest.mark.parametrize(("shape", "mask"), [((3, 7, 9), 3), ((2, 13), 1), ((2, 4, 5, 3), 7), ((2, 4, 5, 3), 2)])
def test_pipeline_stages_of_the_kernel_files_equal_the_emulations(construction, superlevel, shape, mask):
    """The test-only op behind the CUDA tests' stage-by-stage diagnosis (tests/pipeline_stages.py): the kernel files
    compiled for the host give the emulation's intermediate buffers, whatever the order the emulation runs its
    elements in and whichever union-find wrote the pairs; and a difference is named at its stage."""
    sd = len(shape) - 1
    # float64: 16-byte keys, whose 4 bytes of padding nothing writes (the stages leave them out)
    x = torch.randint(0, 5, shape, generator=torch.Generator().manual_seed(sum(shape))).to(
        torch.float64 if superlevel else torch.float32)
    with setting(ops._host_kernels, 0):
        want = pipeline_stages(x, sd, construction, superlevel, mask)
    tree, middle = mask != 2, sd == 3 and mask & 2
    assert bool(want["ptr0"].size) == tree and bool(want["status"].size) == bool(middle)
    if tree:
        assert want["pairs"].size == want["counts"].sum() > 0
    for host_kernels, order, mode in [(1, 0, 0), (0, 1, 1), (0, 2, 3), (1, 0, 3)]:
        with setting(ops._host_kernels, host_kernels), setting(ops._emulation_order, order), union_find(mode):
            got = pipeline_stages(x, sd, construction, superlevel, mask)
        assert stage_differences(got, want) == [], (host_kernels, order, mode)
    name = "flag" if tree else "col_key"
    got[name] = got[name].copy()
    got[name].ravel()[-1] ^= 1
    assert stage_differences(got, want)[0].startswith(f"{name}: 1 of {want[name].size} entries differ")


@pytest.mark.parametrize("construction", CONSTRUCTIONS)
@pytest.mark.parametrize("mode", [1, 3], ids=["serial", "relaxed"])
def test_pipeline_stages_read_only_what_the_pipeline_writes(construction, mode):
    """Every entry the stage comparison reads was written by the pipeline: the stages are the same whether torch's
    fresh buffers hold whatever they held or a poison, so on a GPU (other garbage in the same buffers) a difference
    is a kernel's, not an unwritten byte's."""
    g = torch.Generator().manual_seed(3)
    for shape, mask in [((3, 7, 9), 3), ((2, 13), 1), ((2, 4, 5, 3), 7), ((2, 4, 5, 3), 2), ((1, 1, 1, 6), 7)]:
        for dtype in (torch.float32, torch.float64):
            x = torch.randint(0, 5, shape, generator=g).to(dtype)
            with union_find(mode):
                plain = pipeline_stages(x, len(shape) - 1, construction, True, mask)
                with poisoned_allocations():
                    raw = ops._pipeline_stages(x, len(shape) - 1, CODES[construction], True, mask)
                    poisoned = pipeline_stages(x, len(shape) - 1, construction, True, mask)
            assert stage_differences(poisoned, plain) == [], (shape, mask, dtype)
            if dtype == torch.float64:  # the poison reached the buffers: the keys' padding shows it
                assert (raw[0][:, 1] >> 32).eq(2**31 - 1).all()


@pytest.mark.usefixtures("launchers")
@pytest.mark.parametrize("construction", CONSTRUCTIONS)
def test_pipeline_reads_no_buffer_it_did_not_write(construction):
    """The pipeline's rows with torch's fresh buffers poisoned: a kernel that read memory no kernel wrote would pass
    on the CPU, whose fresh pages are often zero, and fail on a GPU, whose caching allocator hands out used memory."""
    g = torch.Generator().manual_seed(5)
    code = CODES[construction]
    for shape in [(3, 7, 9), (1, 1, 1), (2, 4, 5, 3), (16, 28, 28), (2, 12, 11, 10), (1, 3000)]:
        sd = len(shape) - 1
        mask = (1 << sd) - 1
        x = torch.rand(shape, generator=g, dtype=torch.float64)
        for xx in (x.float(), (x * 4).floor()):
            want = ops.cubical_pairs(xx, sd, code, True, mask)
            for mode, sort_cells in ((1, 2**62), (2, 2**62), (3, 0), (4, 2**62)):
                with poisoned_allocations(), union_find(mode), setting(ops._buffer_sort_cells, sort_cells):
                    got = ops._cubical_pairs_pipeline(xx, sd, code, True, mask)
                assert torch.equal(got, want), (shape, xx.dtype, mode)
