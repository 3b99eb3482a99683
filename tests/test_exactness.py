"""Diagrams equal GUDHI's exactly (values are copies of input values, so the comparison is bit for bit), for every
construction, both filtration directions, 1D/2D/3D grids, and many kinds of input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import (
    CONSTRUCTIONS,
    DIRECTIONS,
    assert_same_diagrams,
    check_against_reference,
    load_mnist,
    ours_by_dim,
    smooth_field,
    to_numpy64,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import _sorted_pairs, reference

import gpuph

SHAPES = {1: (37,), 2: (13, 17), 3: (5, 6, 7)}
SMOOTH_SHAPES = {1: (60,), 2: (24, 24), 3: (8, 8, 8)}


def _uniform(shape, seed):
    return np.random.default_rng(seed).random(shape)


def _checkerboard(shape, period=1):
    idx = np.indices(shape).sum(0) // period
    return (idx % 2).astype(np.float64)


def _batch(images) -> torch.Tensor:
    return torch.from_numpy(np.stack(images))


@pytest.fixture(params=CONSTRUCTIONS)
def construction(request):
    return request.param


@pytest.fixture(params=DIRECTIONS, ids=["super", "sub"])
def superlevel(request):
    return request.param


@pytest.mark.parametrize("d", [1, 2, 3])
def test_uniform_noise(construction, superlevel, d):
    x = _batch([_uniform(SHAPES[d], 10 * d + s) for s in range(3)])
    check_against_reference(x, construction, superlevel)


@pytest.mark.parametrize("d", [1, 2, 3])
def test_uniform_noise_float32(construction, superlevel, d):
    x = _batch([_uniform(SHAPES[d], 100 + d + s) for s in range(2)]).float()
    check_against_reference(x, construction, superlevel)


@pytest.mark.parametrize("d", [1, 2, 3])
def test_smooth_fields(construction, superlevel, d):
    x = _batch([smooth_field(SMOOTH_SHAPES[d], seed, sigma) for seed, sigma in [(1, 1.0), (2, 2.0)]])
    dgm = check_against_reference(x, construction, superlevel)
    assert len(dgm) >= 2


@pytest.mark.parametrize("levels", [2, 3, 5])
@pytest.mark.parametrize("d", [1, 2, 3])
def test_quantised_fields_with_plateaus(construction, superlevel, d, levels):
    rng = np.random.default_rng(levels * 7 + d)
    noise = rng.integers(0, levels, size=(2, *SHAPES[d])).astype(np.float64)
    smooth = np.stack([np.floor(smooth_field(SMOOTH_SHAPES[d], s, 1.5) * levels) for s in range(2)])
    check_against_reference(torch.from_numpy(noise), construction, superlevel)
    check_against_reference(torch.from_numpy(smooth), construction, superlevel)


@pytest.mark.parametrize("d", [1, 2, 3])
def test_binary_images(construction, superlevel, d):
    rng = np.random.default_rng(d)
    x = _batch([(rng.random(SHAPES[d]) < p).astype(np.float64) for p in (0.3, 0.5, 0.7)])
    check_against_reference(x, construction, superlevel)


@pytest.mark.parametrize("value", [0.0, -2.5, 7.0, np.inf, -np.inf])
@pytest.mark.parametrize("d", [1, 2, 3])
def test_constant_images(construction, superlevel, d, value):
    x = torch.full((2, *SHAPES[d]), value, dtype=torch.float64)
    dgm = check_against_reference(x, construction, superlevel)
    # A constant image has exactly one class: the essential H0 bar.
    assert len(dgm) == 2
    assert torch.all(dgm.dim == 0)
    assert torch.all(dgm.death_index == -1)


@pytest.mark.parametrize("period", [1, 2])
@pytest.mark.parametrize("d", [1, 2, 3])
def test_checkerboards(construction, superlevel, d, period):
    shape = {1: (12,), 2: (8, 9), 3: (6, 5, 4)}[d]
    cb = _checkerboard(shape, period)
    x = _batch([cb, 1 - cb, cb * 3 - 1])
    check_against_reference(x, construction, superlevel)


@pytest.mark.parametrize("d", [1, 2, 3])
def test_infinities_mixed_in(construction, superlevel, d):
    rng = np.random.default_rng(40 + d)
    images = []
    for p_pos, p_neg in [(0.1, 0.1), (0.3, 0.0), (0.0, 0.3), (0.02, 0.4)]:
        a = rng.integers(0, 6, size=SHAPES[d]).astype(np.float64)
        u = rng.random(SHAPES[d])
        a[u < p_pos] = np.inf
        a[u > 1 - p_neg] = -np.inf
        images.append(a)
    check_against_reference(_batch(images), construction, superlevel)


@pytest.mark.parametrize("d", [2, 3])
def test_infinite_border_and_corner(construction, superlevel, d):
    x = _uniform(SHAPES[d], 5)
    inner = tuple(slice(1, -1) for _ in range(d))
    for fill in (np.inf, -np.inf):
        a = np.full(SHAPES[d], fill)
        a[inner] = x[inner]
        b = x.copy()
        b[(0,) * d] = fill
        check_against_reference(_batch([a, b]), construction, superlevel)


def test_mnist_digits(construction, superlevel):
    digits = load_mnist(6)
    check_against_reference(torch.from_numpy(digits.astype(np.float32)), construction, superlevel)
    scaled = torch.from_numpy(digits.astype(np.float64) / 255.0)
    check_against_reference(scaled, construction, superlevel)


DEGENERATE = [(1,), (2,), (1, 1), (1, 9), (9, 1), (2, 2), (1, 1, 1), (2, 2, 2), (1, 1, 9), (1, 9, 1), (9, 1, 1),
              (2, 1, 3), (1, 4, 5), (3, 3, 1)]


@pytest.mark.parametrize("shape", DEGENERATE, ids=lambda s: "x".join(map(str, s)))
def test_degenerate_shapes(construction, superlevel, shape):
    rng = np.random.default_rng(len(shape) * 100 + sum(shape))
    x = _batch([rng.random(shape), rng.integers(0, 2, size=shape).astype(np.float64)])
    dgm = check_against_reference(x, construction, superlevel)
    assert tuple(dgm.spatial_shape) == shape


@pytest.mark.parametrize("shape", [(3, 20), (20, 3), (4, 7, 2), (2, 9, 5), (7, 3, 6)], ids=str)
def test_non_square_shapes(construction, superlevel, shape):
    rng = np.random.default_rng(sum(shape))
    x = _batch([rng.random(shape), np.round(rng.random(shape) * 3)])
    check_against_reference(x, construction, superlevel)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("d", [1, 2, 3])
def test_dtypes_against_upcast_values(construction, superlevel, d, dtype):
    rng = np.random.default_rng(d)
    x = torch.from_numpy(np.stack([rng.standard_normal(SHAPES[d]), smooth_field(SHAPES[d], 3)])).to(dtype)
    # Half precision rounds many values together: ties. The oracle sees the exact upcast values.
    dgm = check_against_reference(x, construction, superlevel)
    assert dgm.pairs.dtype == dtype


@pytest.mark.parametrize("d", [2, 3])
def test_dims_subsets(construction, superlevel, d):
    x = _batch([_uniform(SHAPES[d], 77), smooth_field(SHAPES[d], 78, 1.0)])
    for dims in [0, d - 1, [0], [d - 1, 0], range(d)] + ([1, [0, 2], (1, 2)] if d == 3 else []):
        check_against_reference(x, construction, superlevel, dims=dims)


def test_superlevel_is_sublevel_of_negation(construction):
    """Superlevel diagrams of x are the negated sublevel diagrams of -x (diagrams are canonical even with ties)."""
    rng = np.random.default_rng(0)
    for d in (1, 2, 3):
        x = torch.from_numpy(np.round(rng.random((3, *SHAPES[d])) * 4))
        up = gpuph.cubical_persistence(x, construction=construction, superlevel=True)
        down = gpuph.cubical_persistence(-x, construction=construction, superlevel=False)
        for b in range(3):
            neg = {k: _sorted_pairs(-v) for k, v in ours_by_dim(down, b).items()}
            assert_same_diagrams(ours_by_dim(up, b), neg, f"{construction} {d}D image {b}")


# ---------------------------------------------------------------------------------------------- property based
MAX_SIDES = {1: 40, 2: 12, 3: 6}


@st.composite
def grids(draw):
    d = draw(st.integers(1, 3))
    shape = tuple(draw(st.integers(1, MAX_SIDES[d])) for _ in range(d))
    batch = draw(st.integers(1, 3))
    seed = draw(st.integers(0, 2**32 - 1))
    kind = draw(st.sampled_from(["ties", "few", "real", "inf"]))
    rng = np.random.default_rng(seed)
    size = (batch, *shape)
    if kind == "ties":
        x = rng.integers(0, draw(st.integers(1, 4)), size=size).astype(np.float64)
    elif kind == "few":
        x = rng.integers(-3, 12, size=size).astype(np.float64)
    elif kind == "real":
        x = rng.standard_normal(size)
    else:
        x = rng.integers(0, 4, size=size).astype(np.float64)
        u = rng.random(size)
        x[u < 0.15] = np.inf
        x[u > 0.85] = -np.inf
    return x


@settings(max_examples=60, deadline=None)
@given(x=grids(), construction=st.sampled_from(CONSTRUCTIONS), superlevel=st.booleans())
def test_random_grids_against_gudhi(x, construction, superlevel):
    check_against_reference(torch.from_numpy(x), construction, superlevel)


@settings(max_examples=40, deadline=None)
@given(
    shape=st.tuples(st.integers(1, 9), st.integers(1, 9)),
    levels=st.integers(1, 3),
    seed=st.integers(0, 2**32 - 1),
    construction=st.sampled_from(CONSTRUCTIONS),
    superlevel=st.booleans(),
    dtype=st.sampled_from([torch.float16, torch.bfloat16, torch.float32, torch.float64]),
)
def test_random_small_value_ranges_2d(shape, levels, seed, construction, superlevel, dtype):
    x = torch.from_numpy(np.random.default_rng(seed).integers(0, levels + 1, size=(2, *shape))).to(dtype) / 2
    check_against_reference(x, construction, superlevel)


@settings(max_examples=30, deadline=None)
@given(
    shape=st.tuples(st.integers(1, 6), st.integers(1, 6), st.integers(1, 6)),
    levels=st.integers(1, 5),
    seed=st.integers(0, 2**32 - 1),
    construction=st.sampled_from(CONSTRUCTIONS),
    superlevel=st.booleans(),
)
def test_random_small_value_ranges_3d(shape, levels, seed, construction, superlevel):
    x = torch.from_numpy(np.random.default_rng(seed).integers(0, levels + 1, size=shape).astype(np.float32))[None]
    check_against_reference(x, construction, superlevel)


def test_numpy_input_against_gudhi(construction, superlevel):
    x = _uniform((2, 7, 9), 3)
    dgm = check_against_reference(x, construction, superlevel)
    assert isinstance(dgm.pairs, torch.Tensor)
    assert dgm.pairs.dtype == torch.float64
    for b in range(2):
        assert_same_diagrams(ours_by_dim(dgm, b), reference(to_numpy64(x[b]), construction, superlevel))


# ---------------------------------------------------------------------------------------------- special values
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_signed_zeros(construction, superlevel, dtype):
    """-0.0 == 0.0: a pair between them has zero length and must not appear, whatever the engine's key for sorting."""
    rng = np.random.default_rng(3)
    x = rng.integers(-1, 2, size=(3, 9, 10)).astype(dtype)
    x[(x == 0) & (rng.random(x.shape) < 0.5)] = -0.0
    x[2] = np.where(rng.random((9, 10)) < 0.5, 0.0, -0.0)  # only zeros: a single class
    dgm = check_against_reference(torch.from_numpy(x), construction, superlevel)
    assert int(dgm.counts()[2].sum()) == 1


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_extreme_values(construction, superlevel, dtype):
    fi = np.finfo(dtype)
    vals = np.array([0.0, fi.tiny, fi.tiny / 4, -fi.tiny / 8, fi.smallest_subnormal, fi.max, -fi.max, fi.eps, 1.0,
                     1.0 + fi.eps, 1.0 + 2 * fi.eps, -0.0, np.inf, -np.inf], dtype=dtype)
    rng = np.random.default_rng(4)
    for d in (1, 2, 3):
        x = rng.choice(vals, size=(2, *SHAPES[d])).astype(dtype)
        check_against_reference(torch.from_numpy(x), construction, superlevel)


def test_float64_values_that_collapse_in_float32(construction, superlevel):
    # Distinct in float64, equal after rounding to float32: the engine must rank float64 input in float64.
    rng = np.random.default_rng(5)
    ulps = rng.permutation(6 * 7 * 5).reshape(6, 7, 5).astype(np.float64)
    x = 1.0 + ulps * np.finfo(np.float64).eps
    assert len(np.unique(x.astype(np.float32))) < 5
    for img in (x.reshape(-1)[:60], x.reshape(30, 7), x):
        check_against_reference(torch.from_numpy(img)[None], construction, superlevel)


@pytest.mark.parametrize("shape", [(2000,), (64, 64), (40, 90), (16, 16, 16), (6, 20, 11)], ids=str)
def test_larger_grids(construction, superlevel, shape):
    rng = np.random.default_rng(sum(shape))
    images = [rng.random(shape), rng.integers(0, 3, size=shape).astype(np.float64), smooth_field(shape, 1, 2.0)]
    # One image at a time and as a batch (the engine schedules the two differently).
    check_against_reference(_batch(images[:1]), construction, superlevel)
    check_against_reference(_batch(images), construction, superlevel)


def test_more_mnist_digits_float16(construction, superlevel):
    digits = load_mnist(16, offset=100)
    x = torch.from_numpy(digits.astype(np.float32) / 255.0).to(torch.float16)
    check_against_reference(x, construction, superlevel)
