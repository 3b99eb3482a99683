"""CUDA backend: the GPU gives the CPU path's output exactly (pairs, critical pixels, order), deterministically, on
the tensor's device and current stream. Skipped without a GPU (CI has none: tests/test_gpu_pipeline.py covers the
same pipeline's logic there through its CPU emulation)."""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import torch
from conftest import (
    CONSTRUCTIONS,
    check_against_reference,
    check_critical_pixels,
    check_order,
    load_mnist,
    poisoned_allocations,
    setting,
    smooth_field,
    staircase,
)
from pipeline_stages import pipeline_stages, stage_differences

import gpuph
from gpuph._ext import has_cuda_kernels

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


def assert_same(a: gpuph.Diagrams, b: gpuph.Diagrams) -> None:
    for name in ("dim", "batch", "birth_index", "death_index"):
        assert torch.equal(getattr(a, name).cpu(), getattr(b, name).cpu()), name
    assert torch.equal(a.pairs.detach().cpu(), b.pairs.detach().cpu())
    assert (a.batch_size, a.spatial_shape) == (b.batch_size, b.spatial_shape)


def inputs(shape, seed):
    g = torch.Generator().manual_seed(seed)
    yield torch.rand(shape, generator=g)
    yield torch.randint(0, 3, shape, generator=g).float()
    yield torch.zeros(shape)
    x = torch.rand(shape, generator=g, dtype=torch.float64)
    x[x < 0.05] = -math.inf
    x[x > 0.95] = math.inf
    yield x


def test_build_has_kernels():
    assert has_cuda_kernels(), "torch has CUDA but gpuph was built without its CUDA kernels"


@pytest.mark.parametrize("construction", CONSTRUCTIONS)
@pytest.mark.parametrize("superlevel", [True, False])
@pytest.mark.parametrize("shape", [(5, 17), (6, 19, 23), (3, 1, 30), (2, 1, 1), (3, 6, 7, 5), (2, 1, 1, 9)])
def test_cuda_equals_cpu(construction, superlevel, shape):
    for x in inputs(shape, seed=len(shape)):
        for dims in (None, [len(shape) - 2]):
            cpu = gpuph.cubical_persistence(x, superlevel=superlevel, construction=construction, dims=dims)
            gpu = gpuph.cubical_persistence(x.cuda(), superlevel=superlevel, construction=construction, dims=dims)
            assert gpu.pairs.device.type == "cuda" and gpu.dim.device.type == "cuda"
            assert_same(gpu, cpu)


@pytest.mark.parametrize("construction", CONSTRUCTIONS)
def test_cuda_matches_gudhi_on_mnist(construction):
    digits = torch.from_numpy(load_mnist(8).astype(np.float32)).cuda()
    dgm = gpuph.cubical_persistence(digits, construction=construction)
    check_order(dgm)
    check_critical_pixels(digits, dgm)
    check_against_reference(digits.cpu(), construction, True)


@pytest.mark.parametrize("superlevel", [True, False])
@pytest.mark.parametrize("shape", [(4, 17), (6, 19, 23), (3, 1, 30), (3, 30, 1), (2, 1, 1), (3, 6, 7, 5), (2, 2, 2, 2)])
def test_cuda_freudenthal_equals_cpu_in_every_pipeline_dim(superlevel, shape):
    """Freudenthal on the GPU pipeline: H0 and the top dimension alone and together (3D: H0, H2, both), on noise,
    plateaus, constants and +-inf, float32 and float64."""
    sd = len(shape) - 1
    top = sd - 1
    for x in inputs(shape, seed=3 * len(shape)):
        for dims in ([0], [top], sorted({0, top})):
            for y in (x, x.double()):
                cpu = gpuph.cubical_persistence(y, superlevel=superlevel, construction="freudenthal", dims=dims)
                gpu = gpuph.cubical_persistence(y.cuda(), superlevel=superlevel, construction="freudenthal", dims=dims)
                assert_same(gpu, cpu)


def test_cuda_freudenthal_matches_gudhi_and_is_deterministic():
    x = (torch.rand(6, 15, 13) * 4).floor().cuda()
    check_against_reference(x, "freudenthal", True)
    check_against_reference(x, "freudenthal", False)
    v = torch.rand(3, 7, 6, 8, dtype=torch.float64).cuda()
    check_against_reference(v, "freudenthal", True, dims=[0, 2])
    big = torch.rand(1024, 28, 28, device="cuda")
    runs = [gpuph.cubical_persistence(big, construction="freudenthal") for _ in range(3)]
    for r in runs[1:]:
        assert_same(r, runs[0])
    assert_same(runs[0], gpuph.cubical_persistence(big.cpu(), construction="freudenthal"))


@pytest.mark.parametrize("construction", CONSTRUCTIONS)
@pytest.mark.parametrize("superlevel", [True, False])
def test_cuda_h1_of_3d_equals_cpu_and_is_deterministic(construction, superlevel):
    """H1 of 3D on the device (per-cell passes, apparent pairs, the residual reduction on the host): smooth volumes,
    noise, plateaus, a batch in which only some images have residual columns, float32 and float64, on a side
    stream; repeated runs give identical rows."""
    smooth = torch.from_numpy(np.stack([smooth_field((20, 18, 19), seed=s) for s in range(2)]))
    noise = torch.rand(3, 13, 12, 14, dtype=torch.float64)
    mixed = torch.cat([noise, torch.zeros(2, 13, 12, 14, dtype=torch.float64)])[[0, 3, 1, 4, 2]]
    for x in (smooth, noise.float(), (noise * 3).floor(), mixed, torch.rand(64, 8, 8, 8)):
        for dims in ([1], None):
            cpu = gpuph.cubical_persistence(x, superlevel=superlevel, construction=construction, dims=dims)
            s = torch.cuda.Stream()
            with torch.cuda.stream(s):
                runs = [
                    gpuph.cubical_persistence(x.cuda(), superlevel=superlevel, construction=construction, dims=dims)
                    for _ in range(2)
                ]
            s.synchronize()
            for r in runs:
                assert_same(r, cpu)
    check_against_reference(noise[:2].cuda(), construction, superlevel)


def test_large_batch_and_determinism():
    x = torch.rand(1024, 28, 28, device="cuda")
    runs = [gpuph.cubical_persistence(x) for _ in range(3)]
    for r in runs[1:]:
        assert_same(r, runs[0])
    assert_same(runs[0], gpuph.cubical_persistence(x.cpu()))


@pytest.mark.parametrize("construction", CONSTRUCTIONS)
def test_cuda_union_find_modes_and_candidate_sorts_equal_cpu(construction):
    """Every way the device runs the elder-rule union-find (one thread per image and phase, the host, the relaxed
    elder rule, its sequential fallback when it does not converge, and one thread per image and phase with a find
    per ring component), after either sort of the candidates (torch's, and cub's radix sort over double buffers,
    by key then by image, that large batches take), gives the CPU path's rows, bit for bit and run to run."""
    ops = torch.ops.gpuph
    code = {"V": 0, "T": 1, "freudenthal": 2}[construction]
    g = torch.Generator().manual_seed(7)
    cases = [
        (torch.rand(3, 130, 140, generator=g), 2, 3),
        ((torch.rand(2, 150, 90, generator=g) * 4).floor(), 2, 3),
        (torch.from_numpy(np.stack([smooth_field((96, 80), seed=s, sigma=3) for s in range(4)])).float(), 2, 3),
        (torch.rand(2, 20, 22, 18, generator=g), 3, 5),
        (torch.rand(3, 14, 12, 13, generator=g, dtype=torch.float64), 3, 5),
        (torch.rand(40, 12, 12, generator=g), 2, 3),
        (torch.cumsum(torch.randn(3, 6000, generator=g, dtype=torch.float64), 1), 1, 1),
        (staircase(200), 1, 1),
    ]
    old = ops._union_find_mode(0), ops._relaxed_iterations(32), ops._buffer_sort_cells(0)
    try:
        for x, sd, mask in cases:
            for superlevel in (True, False):
                want = ops.cubical_pairs(x, sd, code, superlevel, mask)
                for mode, iterations in ((1, 32), (2, 32), (3, 32), (3, 1), (3, 4096), (4, 32)):
                    for cells in (2**62, 0):
                        ops._union_find_mode(mode)
                        ops._relaxed_iterations(iterations)
                        ops._buffer_sort_cells(cells)
                        runs = [ops.cubical_pairs(x.cuda(), sd, code, superlevel, mask).cpu() for _ in range(2)]
                        for got in runs:
                            assert torch.equal(got, want), (tuple(x.shape), superlevel, mode, iterations, cells)
    finally:
        ops._union_find_mode(old[0])
        ops._relaxed_iterations(old[1])
        ops._buffer_sort_cells(old[2])


@pytest.mark.skipif(not has_cuda_kernels(), reason="built without CUDA kernels")
@pytest.mark.parametrize("construction", CONSTRUCTIONS)
@pytest.mark.parametrize("mode", [1, 3], ids=["serial", "relaxed"])
def test_cuda_pipeline_stages_equal_the_cpu_emulation(construction, mode):
    """Kernel by kernel: the device pipeline's intermediate buffers (cell keys, basin pointers and merging flags, the
    candidates' order, the union-find's pairs; H1 of 3D's ranks, edge and column keys, pivot table and apparent
    pairs) equal its CPU emulation's, which CI checks against the CPU engine. Where they do not, the message names
    the first stage that departs (tests/pipeline_stages.py), so one GPU run says which kernel to read."""
    ops = torch.ops.gpuph
    g = torch.Generator().manual_seed(11)
    cases = [
        (torch.rand(5, 17, generator=g), 1),
        (torch.rand(6, 19, 23, generator=g), 3),
        ((torch.rand(256, 28, 28, generator=g) * 4).floor(), 3),
        (torch.from_numpy(np.stack([smooth_field((96, 80), seed=s, sigma=3) for s in range(3)])).float(), 3),
        (torch.rand(3, 6, 7, 5, generator=g, dtype=torch.float64), 7),
        (torch.rand(2, 1, 1, 9, generator=g), 7),
        (torch.rand(2, 20, 22, 18, generator=g), 7),
        (torch.rand(2, 20, 22, 18, generator=g), 2),
    ]
    with setting(ops._union_find_mode, mode), setting(ops._relaxed_iterations, 0), setting(ops._host_kernels, 0):
        for x, mask in cases:
            sd = x.dim() - 1
            for variant in inputs(tuple(x.shape), seed=sd) if x.numel() < 2000 else (x,):
                for superlevel in (True, False):
                    want = pipeline_stages(variant, sd, construction, superlevel, mask)
                    got = pipeline_stages(variant.cuda(), sd, construction, superlevel, mask)
                    diffs = stage_differences(got, want)
                    assert not diffs, (f"{tuple(variant.shape)} {variant.dtype} superlevel={superlevel} mask={mask}: "
                                       "the GPU departs from the emulation at\n" + "\n".join(diffs))


@pytest.mark.filterwarnings("ignore::UserWarning")  # ops without a deterministic version, in warn-only mode
@pytest.mark.parametrize("construction", CONSTRUCTIONS)
def test_cuda_reads_no_buffer_it_did_not_write(construction):
    """With torch's fresh device buffers poisoned (conftest.poisoned_allocations), every union-find mode still gives
    the CPU path's rows: no kernel reads memory that no kernel wrote, whatever the caching allocator hands out."""
    ops = torch.ops.gpuph
    code = {"V": 0, "T": 1, "freudenthal": 2}[construction]
    g = torch.Generator().manual_seed(13)
    cases = [(torch.rand(64, 28, 28, generator=g), 2, 3), (torch.rand(2, 150, 130, generator=g), 2, 3),
             ((torch.rand(2, 14, 15, 13, generator=g) * 4).floor(), 3, 7),
             (torch.rand(1, 24, 24, 24, generator=g), 3, 7),
             (torch.rand(3, 5000, generator=g, dtype=torch.float64), 1, 1)]
    for x, sd, mask in cases:
        want = ops.cubical_pairs(x, sd, code, True, mask)
        for mode in (1, 2, 3, 4):
            with poisoned_allocations(), setting(ops._union_find_mode, mode):
                got = ops.cubical_pairs(x.cuda(), sd, code, True, mask).cpu()
            assert torch.equal(got, want), (tuple(x.shape), mode)


@pytest.mark.skipif(not has_cuda_kernels(), reason="built without CUDA kernels")
def test_cuda_relaxed_cap_is_learned():
    """As on the emulation (tests/test_gpu_pipeline.py): a call whose relaxed rule does not converge under the cap
    (chirp, about 62 iterations on 1024^2, under 32) gives exact rows by the sequential fallback and quadruples the
    cap, read from the call's one copy; the next call converges under it, and the cap then follows what it needed."""
    from gpuph.bench.breakdown import make_breakdown_field
    from gpuph.bench.cases import parse_case

    ops = torch.ops.gpuph
    x = torch.from_numpy(make_breakdown_field(parse_case("1x1024x1024"), "chirp"))
    want = ops.cubical_pairs(x, 2, 0, True, 3)
    with setting(ops._union_find_mode, 3), setting(ops._relaxed_iterations, 0), setting(ops._relaxed_cap, 32):
        assert torch.equal(ops.cubical_pairs(x.cuda(), 2, 0, True, 3).cpu(), want)
        assert ops._relaxed_cap() == 128
        assert torch.equal(ops.cubical_pairs(x.cuda(), 2, 0, True, 3).cpu(), want)
        assert 96 <= ops._relaxed_cap() < 512  # converged: twice what it needed plus 8, or 3/4 of 128
        # A grid-size floor of 128 iterations: the first call converges under it (learned cap 32), so the cap then
        # is twice what it needed plus 8 (at most 262), not four times the floor.
        ops._relaxed_cap(32)
        with setting(ops._relaxed_cells_per_iteration, 2**13):
            assert torch.equal(ops.cubical_pairs(x.cuda(), 2, 0, True, 3).cpu(), want)
        assert 72 <= ops._relaxed_cap() <= 262


def test_large_image_and_half_types():
    x = torch.rand(1, 512, 512, device="cuda")
    assert_same(gpuph.cubical_persistence(x), gpuph.cubical_persistence(x.cpu()))
    for dtype in (torch.float16, torch.bfloat16, torch.float64):
        y = torch.rand(4, 30, 31, device="cuda").to(dtype)
        d = gpuph.cubical_persistence(y)
        assert d.pairs.dtype == dtype
        assert_same(d, gpuph.cubical_persistence(y.cpu()))


def test_gradients_on_gpu_equal_cpu():
    x = torch.rand(4, 16, 16, dtype=torch.float64)
    xs = [x.clone().requires_grad_(), x.cuda().requires_grad_()]
    for t in xs:
        gpuph.cubical_persistence(t).finite().lifetimes().pow(2).sum().backward()
    assert torch.equal(xs[0].grad, xs[1].grad.cpu())


def test_stream_device_and_layout():
    x = torch.rand(8, 20, 20, device="cuda")
    want = gpuph.cubical_persistence(x)
    s = torch.cuda.Stream()
    with torch.cuda.stream(s):
        got = gpuph.cubical_persistence(x.transpose(1, 2).contiguous().transpose(1, 2))
    s.synchronize()
    assert_same(got, want)
    if torch.cuda.device_count() > 1:
        y = x.to("cuda:1")
        d = gpuph.cubical_persistence(y)
        assert d.pairs.device == y.device
        assert_same(d, want)


def _synchronisations(fn) -> int:
    """How many device-to-host synchronisations fn() makes (torch's sync debug mode warns at each one)."""
    import warnings

    torch.cuda.synchronize()
    old = torch.cuda.get_sync_debug_mode()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            fn()
    finally:
        torch.cuda.set_sync_debug_mode(old)
    # Only the reports of a synchronising call: the first set_sync_debug_mode of a process also warns that the
    # mode is a prototype feature, which does not count.
    return sum("called a synchronizing" in str(w.message) for w in caught)


@pytest.mark.skipif(not has_cuda_kernels(), reason="built without CUDA kernels")
def test_topologylayer_tuples_in_one_synchronisation():
    """TopologyLayer's per-image tuples of a CUDA batch: one transfer of the counts slices them all (not one
    boolean mask per image and dimension), and the slices are what the masks would select."""
    from gpuph.compat.topologylayer.util import diagrams_to_tuples

    dgm = gpuph.cubical_persistence(torch.rand(6, 20, 20, device="cuda"))
    diagrams_to_tuples(dgm)
    assert _synchronisations(lambda: diagrams_to_tuples(dgm, maxdim=2)) == 1
    for b, (dgms, issub) in enumerate(diagrams_to_tuples(dgm, maxdim=2)):
        assert not issub and len(dgms) == 3 and dgms[2].shape == (0, 2)
        for k in range(2):
            assert torch.equal(dgms[k], dgm.pairs[(dgm.batch == b) & (dgm.dim == k)])


@pytest.mark.skipif(not has_cuda_kernels(), reason="built without CUDA kernels")
@pytest.mark.parametrize("construction", CONSTRUCTIONS)
def test_one_synchronisation_per_call(construction):
    """One device-to-host copy per call sizes the output (the merge trees and H1 of 3D read theirs together); H1 of
    3D adds one per batch of residual rounds, and one batch finishes these grids; a few large grids, whose
    union-find runs on the host (on request: the relaxed elder rule runs them on the device by default), one for
    the copies it reads. The candidates' sort of large batches adds none, and neither does building the
    Diagrams."""
    ops = torch.ops.gpuph
    code = {"V": 0, "T": 1, "freudenthal": 2}[construction]
    g = torch.Generator().manual_seed(4)
    cases = [
        (torch.rand(8, 32, 32, generator=g), 2, 3, 1),
        (torch.rand(1, 300, 300, generator=g), 2, 3, 1),  # the relaxed elder rule: all on the device
        (torch.rand(5, 300, generator=g), 1, 1, 1),
        (torch.rand(4, 12, 12, 12, generator=g), 3, 5, 1),  # H0 and H2: merge trees only
        (torch.rand(4, 12, 12, 12, generator=g), 3, 7, 2),
        (torch.from_numpy(smooth_field((16, 16, 16), seed=2))[None].float(), 3, 2, 2),
    ]
    for x, sd, mask, most in cases:
        call = functools.partial(ops.cubical_pairs, x.cuda(), sd, code, True, mask)
        call()  # warm-up: allocator, kernels loaded
        n = _synchronisations(call)
        assert 1 <= n <= most, (tuple(x.shape), mask, n)
    host = functools.partial(ops.cubical_pairs, torch.rand(1, 300, 300, device="cuda"), 2, code, True, 3)
    old = ops._union_find_mode(2)
    try:
        host()
        # The host's union-find: at least one more, for the copies it reads (sending the pairs back from pageable
        # memory may add more).
        assert _synchronisations(host) >= 2
    finally:
        ops._union_find_mode(old)
    # The candidates' sort of large batches (cub's over double buffers; forced here) adds none.
    old = ops._buffer_sort_cells(0)
    try:
        for x, sd, mask, _ in cases[:4]:  # merge trees only
            call = functools.partial(ops.cubical_pairs, x.cuda(), sd, code, True, mask)
            call()
            assert _synchronisations(call) == 1, (tuple(x.shape), mask)
    finally:
        ops._buffer_sort_cells(old)
    api = functools.partial(gpuph.cubical_persistence, torch.rand(16, 28, 28, device="cuda"), construction=construction)
    api()
    assert _synchronisations(api) == 1
    # A training step's topology terms: the losses and features mask rows (no boolean indexing), the backward is one
    # scatter-add.
    x = torch.rand(16, 28, 28, device="cuda", requires_grad=True)

    def step():
        dgm = gpuph.cubical_persistence(x, construction=construction)
        loss = gpuph.losses.persistence_energy(dgm, 0, p=1, i0=2) + gpuph.losses.betti_loss(dgm, 1, 1, p=2)
        features = gpuph.losses.PartialSumBarcodeLengths(0, 1)(dgm) + gpuph.losses.TopKBarcodeLengths(1, 3)(dgm).sum(1)
        (loss + features.sum() + gpuph.losses.BarcodePolyFeature(1, 2, 1)(dgm).sum()).backward()

    step()
    assert _synchronisations(step) == 1


def test_out_of_memory_is_a_clear_error_and_the_device_recovers():
    """A call that the allocator cannot serve raises torch.OutOfMemoryError naming the call and what to do (never a
    crash, a hang or a wrong answer), and leaves nothing behind: the next call works and memory is given back."""
    x = torch.rand(1, 160, 160, 160, device="cuda")
    small = torch.rand(4, 9, 9, 9, device="cuda")
    gpuph.cubical_persistence(small)  # warm-up: whatever a first call sets up stays out of the count below
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    before = torch.cuda.memory_allocated()
    total = torch.cuda.get_device_properties(x.device).total_memory
    # 64 MiB more than the input: far less than the 4M-voxel pipeline needs
    torch.cuda.set_per_process_memory_fraction(min(1.0, (before + 64 * 2**20) / total))
    try:
        with pytest.raises(torch.OutOfMemoryError, match="gpuph: out of memory on cuda") as info:
            gpuph.cubical_persistence(x)
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
    assert "1 grids of 160x160x160 float32" in str(info.value) and "leave out H1" in str(info.value)
    del info  # its traceback holds the frames' tensors
    torch.cuda.synchronize()
    assert torch.cuda.memory_allocated() == before
    assert_same(gpuph.cubical_persistence(small), gpuph.cubical_persistence(small.cpu()))


@pytest.mark.parametrize("construction", CONSTRUCTIONS)
def test_a_batch_that_does_not_fit_runs_in_slices_on_gpu(construction):
    """A batch whose work does not fit in the memory left (capped with the per-process memory fraction at about two
    images' peak) runs in slices of images: the same diagrams as the CPU path's, and as the GPU's in one piece; also
    with the test-only simulated limit (slices of at most 3 of 8 images)."""
    g = torch.Generator().manual_seed(3)
    x = torch.rand(16, 40, 40, 40, generator=g).cuda()
    cpu = gpuph.cubical_persistence(x[:4].cpu(), construction=construction)
    whole = gpuph.cubical_persistence(x[:4], construction=construction)
    assert_same(whole, cpu)
    ops = torch.ops.gpuph
    old = ops._slice_memory_limit(3)
    try:
        assert_same(gpuph.cubical_persistence(x[:8], construction=construction),
                    gpuph.cubical_persistence(x[:8].cpu(), construction=construction))
    finally:
        ops._slice_memory_limit(old)
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    gpuph.cubical_persistence(x[:1], construction=construction)
    one = torch.cuda.max_memory_allocated() - before
    torch.cuda.empty_cache()
    total = torch.cuda.get_device_properties(x.device).total_memory
    ooms = torch.cuda.memory_stats()["num_ooms"]
    torch.cuda.set_per_process_memory_fraction(min(1.0, (torch.cuda.memory_reserved() + 2 * one) / total))
    try:
        sliced = gpuph.cubical_persistence(x, construction=construction)
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
    assert torch.cuda.memory_stats()["num_ooms"] > ooms  # the whole batch did not fit: slices ran
    assert_same(sliced, gpuph.cubical_persistence(x.cpu(), construction=construction))


def test_nan_and_empty_on_gpu():
    x = torch.rand(3, 5, 5, device="cuda")
    x[1, 2, 2] = math.nan
    with pytest.raises(ValueError, match="NaN"):
        gpuph.cubical_persistence(x)
    assert len(gpuph.cubical_persistence(torch.rand(0, 5, 5, device="cuda"))) == 0


def test_cupy_in_and_out():
    cupy = pytest.importorskip("cupy")
    a = cupy.random.rand(3, 12, 12).astype(cupy.float32)
    d = gpuph.cubical_persistence(a)
    assert d.pairs.device.type == "cuda"
    ref = gpuph.cubical_persistence(torch.from_dlpack(a).cpu())
    out = d.to_cupy()
    want = ref.to_numpy()
    for b in range(3):
        for k in range(2):
            assert np.array_equal(cupy.asnumpy(out[b][k]), want[b][k])


def test_torch_compile_on_gpu():
    torch._dynamo.reset()

    def loss(x):
        return gpuph.cubical_persistence(x).finite().lifetimes().sum()

    x = torch.rand(16, 28, 28, device="cuda", requires_grad=True)
    got = torch.compile(loss)(x)
    assert torch.allclose(got, loss(x))
