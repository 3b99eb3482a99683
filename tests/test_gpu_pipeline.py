"""The CUDA backend's merge-tree pipeline (kernels/merge_tree_cuda.cu driven by gpuph/csrc/merge_tree_pipeline.cpp;
1D and 2D grids, 3D for H0 and H2),
run here through its CPU emulation (the op ``gpuph::_cubical_pairs_pipeline``: the same per-element steps, torch
sorts and row ordering): its rows must equal the CPU engine's exactly, pairs, critical pixels and order, so CI
exercises the GPU logic without a GPU. Also the op's torch.compile support (fake implementation)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import load_mnist, smooth_field
from hypothesis import given
from hypothesis import strategies as st

import gpuph

ops = torch.ops.gpuph
CODES = {"V": 0, "T": 1}


def both(x: torch.Tensor, sd: int, construction: str, superlevel: bool, mask: int) -> None:
    want = ops.cubical_pairs(x, sd, CODES[construction], superlevel, mask)
    got = ops._cubical_pairs_pipeline(x, sd, CODES[construction], superlevel, mask)
    assert got.dtype == torch.int64 and got.shape == want.shape, (got.shape, want.shape)
    assert torch.equal(got, want)


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


@pytest.mark.parametrize("construction", ["V", "T"])
@pytest.mark.parametrize("superlevel", [True, False])
@pytest.mark.parametrize(
    "shape", [(3, 7, 9), (2, 1, 13), (2, 13, 1), (1, 1, 1), (2, 2, 2), (4, 17), (2, 4, 5, 3), (1, 1, 1, 6)]
)
def test_pipeline_equals_cpu_engine_on_input_families(construction, superlevel, shape):
    sd = len(shape) - 1
    masks = {1: (1,), 2: (1, 2, 3), 3: (1, 4, 5)}[sd]  # 3D: H0 and H2 (H1 is not a merge tree)
    for name, x in families(shape, seed=sum(shape)):
        for dtype in (torch.float32, torch.float64):
            for mask in masks:
                try:
                    both(x.to(dtype), sd, construction, superlevel, mask)
                except AssertionError as exc:
                    raise AssertionError(f"{name} {dtype} mask={mask}") from exc


@given(
    st.integers(1, 3),
    st.lists(st.integers(1, 10), min_size=1, max_size=2),
    st.sampled_from(["V", "T"]),
    st.booleans(),
    st.integers(0, 2**31 - 1),
    st.sampled_from([0, 3, 50]),
)
def test_pipeline_equals_cpu_engine_random(b, grid, construction, superlevel, seed, levels):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand((b, *grid), generator=g)
    if levels:
        x = (x * levels).floor()
    both(x, len(grid), construction, superlevel, (1 << len(grid)) - 1)


@given(
    st.integers(1, 2),
    st.lists(st.integers(1, 6), min_size=3, max_size=3),
    st.sampled_from(["V", "T"]),
    st.booleans(),
    st.integers(0, 2**31 - 1),
    st.sampled_from([1, 4, 5]),
)
def test_pipeline_equals_cpu_engine_3d(b, grid, construction, superlevel, seed, mask):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand((b, *grid), generator=g, dtype=torch.float64)
    if seed % 2:
        x = (x * 3).floor()
    both(x, 3, construction, superlevel, mask)


@pytest.mark.parametrize("construction", ["V", "T"])
@pytest.mark.parametrize(
    ("shape", "masks"), [((1, 257, 263), (1, 2, 3)), ((3, 256, 257), (3,)), ((2, 41, 40, 42), (1, 4, 5))]
)
def test_pipeline_large_grids_union_find_on_the_host(construction, shape, masks):
    # Few runs (image, phase) of at least 2^16 pixels: the pipeline runs the union-find on the host and sends back
    # only the pairs it wrote (a narrower output buffer than the one the device path uses).
    g = torch.Generator().manual_seed(sum(shape))
    noise = torch.rand(shape, generator=g)
    for x in (noise, (noise * 5).floor()):
        for mask in masks:
            both(x, len(shape) - 1, construction, construction == "V", mask)


def test_pipeline_refuses_what_it_does_not_compute():
    with pytest.raises(ValueError, match="merge-tree pipeline"):
        ops._cubical_pairs_pipeline(torch.rand(1, 3, 3, 3), 3, 0, True, 2)  # H1 of 3D
    with pytest.raises(ValueError, match="merge-tree pipeline"):
        ops._cubical_pairs_pipeline(torch.rand(1, 3, 3), 2, 2, True, 3)  # freudenthal


def test_pipeline_on_mnist_smooth_and_batches():
    digits = torch.from_numpy(load_mnist(16).astype(np.float32)) / 255
    both(digits, 2, "V", True, 3)
    both(digits, 2, "T", False, 3)
    smooth = torch.from_numpy(np.stack([smooth_field((40, 33), seed=s) for s in range(4)]))
    both(smooth, 2, "V", True, 3)
    both(torch.rand(64, 28, 28), 2, "V", True, 3)


def test_pipeline_reports_nan_with_its_image():
    x = torch.rand(3, 5, 5)
    x[2, 1, 1] = math.nan
    with pytest.raises(ValueError, match="NaN.*batch element 2"):
        ops._cubical_pairs_pipeline(x, 2, 0, True, 3)


def test_pipeline_empty_batch():
    assert ops._cubical_pairs_pipeline(torch.rand(0, 4, 4), 2, 0, True, 3).shape == (0, 4)


@pytest.mark.parametrize(
    "loss",
    [
        lambda x: gpuph.cubical_persistence(x).finite().lifetimes().pow(2).sum(),
        # The GAN loss of the TopologyLayer paper, E(1, 0, 2; PD_0), and an H1 term.
        lambda x: gpuph.losses.persistence_energy(gpuph.cubical_persistence(x), 0, p=1, i0=2)
        + gpuph.losses.persistence_energy(gpuph.cubical_persistence(x, dims=1), 1, p=2, q=1),
    ],
    ids=["lifetimes", "persistence_energy"],
)
def test_torch_compile_fullgraph_matches_eager(loss):
    torch._dynamo.reset()

    old = torch._dynamo.config.capture_dynamic_output_shape_ops
    torch._dynamo.config.capture_dynamic_output_shape_ops = True
    try:
        compiled = torch.compile(loss, fullgraph=True)
        for shape in [(4, 9, 9), (6, 9, 9)]:
            x = torch.rand(shape, dtype=torch.float64, requires_grad=True)
            y = compiled(x)
            (gx,) = torch.autograd.grad(y, x)
            y_ref = loss(x)
            (gx_ref,) = torch.autograd.grad(y_ref, x)
            assert torch.allclose(y, y_ref)
            assert torch.equal(gx, gx_ref)
    finally:
        torch._dynamo.config.capture_dynamic_output_shape_ops = old
