"""A batch is just more images: same diagrams and critical pixels as one at a time; leading axes flatten in C order."""

from __future__ import annotations

import pytest
import torch
from conftest import CONSTRUCTIONS, DIRECTIONS, check_critical_pixels, check_order
from hypothesis import given, settings
from hypothesis import strategies as st

import gpuph

FIELDS = ("pairs", "dim", "birth_index", "death_index")


def _assert_image_equals(batched: gpuph.Diagrams, b: int, single: gpuph.Diagrams) -> None:
    rows = batched.batch == b
    for f in FIELDS:
        assert torch.equal(getattr(batched, f)[rows], getattr(single, f)), (b, f)
    assert torch.all(single.batch == 0)


def _mixed_batch(shape, n, seed) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    imgs = []
    for i in range(n):
        kind = i % 4
        if kind == 0:
            imgs.append(torch.rand(shape, generator=g, dtype=torch.float64))
        elif kind == 1:
            imgs.append(torch.randint(0, 3, shape, generator=g).double())
        elif kind == 2:
            imgs.append(torch.full(shape, 1.5, dtype=torch.float64))
        else:
            a = torch.randint(0, 4, shape, generator=g).double()
            a[a == 3] = float("inf")
            imgs.append(a)
    return torch.stack(imgs)


@pytest.mark.parametrize("superlevel", DIRECTIONS, ids=["super", "sub"])
@pytest.mark.parametrize("construction", CONSTRUCTIONS)
@pytest.mark.parametrize("shape", [(33,), (11, 13), (5, 6, 4)], ids=str)
def test_batch_equals_one_at_a_time(construction, superlevel, shape):
    x = _mixed_batch(shape, 9, len(shape))
    dgm = gpuph.cubical_persistence(x, construction=construction, superlevel=superlevel)
    assert dgm.batch_size == 9
    assert dgm.batch_shape == (9,)
    check_order(dgm)
    for b in range(9):
        one = gpuph.cubical_persistence(x[b : b + 1], construction=construction, superlevel=superlevel)
        _assert_image_equals(dgm, b, one)
        # Without a batch axis: a grid with spatial_dims given explicitly.
        alone = gpuph.cubical_persistence(x[b], construction=construction, superlevel=superlevel,
                                          spatial_dims=len(shape))
        assert alone.batch_size == 1
        assert alone.batch_shape == ()
        _assert_image_equals(dgm, b, alone)


@settings(max_examples=30, deadline=None)
@given(
    d=st.integers(1, 3),
    n=st.integers(1, 12),
    side=st.integers(1, 8),
    seed=st.integers(0, 2**31),
    construction=st.sampled_from(CONSTRUCTIONS),
    superlevel=st.booleans(),
)
def test_batch_equals_one_at_a_time_property(d, n, side, seed, construction, superlevel):
    x = _mixed_batch((side,) * d, n, seed)
    dgm = gpuph.cubical_persistence(x, construction=construction, superlevel=superlevel)
    for b in range(n):
        _assert_image_equals(dgm, b, gpuph.cubical_persistence(x[b : b + 1], construction=construction,
                                                                superlevel=superlevel))


def test_large_batch_few_threads_and_many():
    # More images than threads and fewer (the engine splits work differently) give the same rows.
    x = _mixed_batch((12, 12), 40, 5)
    ref = [gpuph.cubical_persistence(x[b : b + 1]) for b in range(40)]
    old = torch.get_num_threads()
    try:
        for threads in (1, 2, 4):
            torch.set_num_threads(threads)
            for n in (1, 2, 3, 40):
                dgm = gpuph.cubical_persistence(x[:n])
                for b in range(n):
                    _assert_image_equals(dgm, b, ref[b])
    finally:
        torch.set_num_threads(old)


@pytest.mark.parametrize("construction", CONSTRUCTIONS)
def test_leading_axes_flatten_in_c_order(construction):
    x = _mixed_batch((7, 8), 6, 3).reshape(2, 3, 7, 8)
    dgm = gpuph.cubical_persistence(x, construction=construction, spatial_dims=2)
    assert dgm.batch_size == 6
    assert dgm.batch_shape == (2, 3)
    assert tuple(dgm.spatial_shape) == (7, 8)
    check_critical_pixels(x, dgm)
    for i in range(2):
        for j in range(3):
            one = gpuph.cubical_persistence(x[i, j], construction=construction, spatial_dims=2)
            _assert_image_equals(dgm, i * 3 + j, one)


def test_three_leading_axes_and_1d_grids():
    x = _mixed_batch((10,), 24, 4).reshape(2, 3, 4, 10)
    dgm = gpuph.cubical_persistence(x, spatial_dims=1)
    assert dgm.batch_size == 24
    assert dgm.batch_shape == (2, 3, 4)
    for i, j, k in [(0, 0, 0), (1, 2, 3), (0, 2, 1), (1, 0, 2)]:
        one = gpuph.cubical_persistence(x[i, j, k][None], spatial_dims=1)
        _assert_image_equals(dgm, (i * 3 + j) * 4 + k, one)


def test_default_spatial_dims_is_all_but_first_axis():
    x = _mixed_batch((4, 5, 6), 2, 1)
    dgm = gpuph.cubical_persistence(x)
    assert dgm.batch_size == 2
    assert tuple(dgm.spatial_shape) == (4, 5, 6)
    as_2d = gpuph.cubical_persistence(x, spatial_dims=2)
    assert as_2d.batch_size == 8
    assert tuple(as_2d.spatial_shape) == (5, 6)
    _assert_image_equals(as_2d, 5, gpuph.cubical_persistence(x[1, 1][None]))


@pytest.mark.parametrize("construction", CONSTRUCTIONS)
@pytest.mark.parametrize("shape,sd", [((0, 5), 1), ((0, 4, 4), 2), ((0, 3, 3, 3), 3), ((2, 0, 4, 4), 2)], ids=str)
def test_empty_batch(construction, shape, sd):
    x = torch.rand(shape)
    dgm = gpuph.cubical_persistence(x, construction=construction, spatial_dims=sd)
    assert dgm.batch_size == 0
    assert len(dgm) == 0
    assert dgm.pairs.shape == (0, 2)
    assert dgm.pairs.dtype == x.dtype
    for f in ("dim", "batch", "birth_index", "death_index"):
        assert getattr(dgm, f).shape == (0,)
        assert getattr(dgm, f).dtype == torch.int64
    assert tuple(dgm.spatial_shape) == tuple(shape[len(shape) - sd:])
    assert dgm.batch_shape == tuple(shape[: len(shape) - sd])
    assert dgm.counts().shape == (0, sd)
    padded, mask = dgm.padded()
    assert padded.shape[0] == 0 and mask.shape[0] == 0
    assert dgm.to_numpy() == []
    assert "batch_size=0" in repr(dgm)


def test_empty_batch_backward():
    x = torch.rand(0, 6, 6, requires_grad=True)
    dgm = gpuph.cubical_persistence(x)
    dgm.pairs.sum().backward()
    assert x.grad is not None and x.grad.shape == x.shape


def test_batch_of_different_kinds_of_values_does_not_interfere():
    # An image full of +-inf or a constant next to noise changes nothing for its neighbours.
    noise = torch.rand(1, 9, 9, dtype=torch.float64)
    alone = gpuph.cubical_persistence(noise)
    for other in (torch.full((1, 9, 9), float("inf")), torch.full((1, 9, 9), -float("inf")), torch.zeros(1, 9, 9)):
        dgm = gpuph.cubical_persistence(torch.cat([other.double(), noise, other.double()]))
        _assert_image_equals(dgm, 1, alone)


def test_concurrent_calls_from_threads():
    # Several Python threads (e.g. data-loading threads) calling gpuph at once get the same results as in sequence.
    from concurrent.futures import ThreadPoolExecutor

    inputs = [(_mixed_batch(shape, n, seed), c) for seed, (shape, n) in
              enumerate([((20, 20), 1), ((6, 7, 5), 3), ((50,), 5), ((9, 9), 8)] * 3)
              for c in CONSTRUCTIONS]
    expected = [gpuph.cubical_persistence(x, construction=c) for x, c in inputs]
    with ThreadPoolExecutor(max_workers=4) as pool:
        got = list(pool.map(lambda xc: gpuph.cubical_persistence(xc[0], construction=xc[1]), inputs))
    for a, b in zip(got, expected):
        for f in ("pairs", "dim", "batch", "birth_index", "death_index"):
            assert torch.equal(getattr(a, f), getattr(b, f)), f
