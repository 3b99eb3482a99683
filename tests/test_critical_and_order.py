"""Critical pixels (values bit for bit, essential classes) and the pinned row order."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import CONSTRUCTIONS, DIRECTIONS, check_critical_pixels, check_order, order_keys
from hypothesis import given, settings
from hypothesis import strategies as st

import gpuph

SHAPES = {1: (41,), 2: (15, 19), 3: (6, 7, 5)}
DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64]


def _index_rows(dgm: gpuph.Diagrams) -> np.ndarray:
    """(batch, dim, birth_index, death_index) rows, sorted: the critical pixels as a multiset."""
    r = torch.stack([dgm.batch, dgm.dim, dgm.birth_index, dgm.death_index], 1).numpy()
    return r[np.lexsort(r.T[::-1])] if len(r) else r


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("superlevel", DIRECTIONS, ids=["super", "sub"])
@pytest.mark.parametrize("construction", CONSTRUCTIONS)
@pytest.mark.parametrize("d", [1, 2, 3])
def test_critical_pixel_values_bit_for_bit(d, construction, superlevel, dtype):
    g = torch.Generator().manual_seed(d)
    x = torch.cat([torch.randn(3, *SHAPES[d], generator=g), torch.randint(0, 4, (2, *SHAPES[d]), generator=g)])
    x = x.to(dtype)
    dgm = gpuph.cubical_persistence(x, construction=construction, superlevel=superlevel)
    check_critical_pixels(x, dgm)
    flat = x.reshape(x.shape[0], -1)
    # The same, spelled out: gather with the reported indices.
    assert torch.equal(flat[dgm.batch, dgm.birth_index], dgm.pairs[:, 0].detach())
    fin = dgm.death_index >= 0
    assert torch.equal(flat[dgm.batch[fin], dgm.death_index[fin]], dgm.pairs[fin, 1].detach())


@pytest.mark.parametrize("superlevel", DIRECTIONS, ids=["super", "sub"])
@pytest.mark.parametrize("construction", CONSTRUCTIONS)
def test_essential_classes(construction, superlevel):
    x = torch.rand(5, 9, 8, dtype=torch.float64)
    x[3] = 0.5  # constant image
    x[4, ::2] = float("inf")
    dgm = gpuph.cubical_persistence(x, construction=construction, superlevel=superlevel)
    ess = dgm.essential()
    assert len(ess) == 5
    assert torch.equal(ess.batch, torch.arange(5))
    assert torch.all(ess.dim == 0)
    assert torch.all(ess.death_index == -1)
    want = -np.inf if superlevel else np.inf
    assert torch.all(ess.pairs[:, 1] == want)
    # The essential H0 class is born at the global max (superlevel) / min (sublevel) of its image.
    ext = x.reshape(5, -1).amax(1) if superlevel else x.reshape(5, -1).amin(1)
    assert torch.equal(ess.pairs[:, 0], ext)


@pytest.mark.parametrize("construction", CONSTRUCTIONS)
def test_no_essential_class_without_h0(construction):
    x = torch.rand(3, 5, 6, 4, dtype=torch.float64)
    for dims in ([1], [2], [1, 2]):
        dgm = gpuph.cubical_persistence(x, construction=construction, dims=dims)
        assert len(dgm.essential()) == 0
        check_critical_pixels(x, dgm, h0=False)


@pytest.mark.parametrize("construction", CONSTRUCTIONS)
@pytest.mark.parametrize("d", [1, 2, 3])
def test_order_on_random_batches_with_ties(construction, d):
    g = torch.Generator().manual_seed(7 * d)
    for superlevel in DIRECTIONS:
        for levels in (2, 3, 50):
            x = torch.randint(0, levels, (4, *SHAPES[d]), generator=g).double()
            dgm = gpuph.cubical_persistence(x, construction=construction, superlevel=superlevel)
            check_order(dgm)
            keys = order_keys(dgm)
            assert keys == sorted(keys)
            # Ties in lifetime are present, so the secondary keys were exercised.
            lifes = [k[2] for k in keys]
            if levels <= 3:
                assert len(set(lifes)) < len(lifes)


def test_order_essential_first_among_infinite_lifetimes():
    # A finite pair with an infinite lifetime (born at +inf, dies at a finite value) ties with the essential class;
    # the essential class comes first.
    x = torch.tensor([[float("inf"), 0.0, float("inf"), 1.0, float("inf")]], dtype=torch.float64)
    dgm = gpuph.cubical_persistence(x, spatial_dims=1)
    check_order(dgm)
    assert len(dgm) == 3
    assert int(dgm.death_index[0]) == -1
    assert torch.all(torch.isinf(dgm.lifetimes()))
    assert torch.all(dgm.death_index[1:] >= 0)


@settings(max_examples=50, deadline=None)
@given(
    d=st.integers(1, 3),
    batch=st.integers(1, 4),
    side=st.integers(1, 7),
    levels=st.integers(1, 6),
    seed=st.integers(0, 2**31),
    construction=st.sampled_from(CONSTRUCTIONS),
    superlevel=st.booleans(),
    dtype=st.sampled_from(DTYPES),
)
def test_order_and_critical_pixels_property(d, batch, side, levels, seed, construction, superlevel, dtype):
    g = torch.Generator().manual_seed(seed)
    shape = tuple(int(s) for s in torch.randint(1, side + 1, (d,), generator=g))
    x = (torch.randint(0, levels, (batch, *shape), generator=g).to(torch.float64) * 0.75).to(dtype)
    dgm = gpuph.cubical_persistence(x, construction=construction, superlevel=superlevel)
    check_critical_pixels(x, dgm)
    check_order(dgm)


@pytest.mark.parametrize("construction", CONSTRUCTIONS)
@pytest.mark.parametrize("d", [1, 2, 3])
def test_deterministic(construction, d):
    x = torch.randint(0, 3, (3, *SHAPES[d])).float()
    a = gpuph.cubical_persistence(x, construction=construction)
    for _ in range(3):
        b = gpuph.cubical_persistence(x.clone(), construction=construction)
        for f in ("pairs", "dim", "batch", "birth_index", "death_index"):
            assert torch.equal(getattr(a, f), getattr(b, f)), f


@pytest.mark.parametrize("construction", CONSTRUCTIONS)
@pytest.mark.parametrize("d", [1, 2, 3])
def test_critical_pixels_depend_only_on_the_order_of_values(construction, d):
    """Ties are broken by (value, flat index): a strictly increasing map of the values (which keeps ties) keeps every
    critical pixel; the pairs follow the map."""
    x = torch.randint(0, 4, (3, *SHAPES[d])).double()
    for superlevel in DIRECTIONS:
        a = gpuph.cubical_persistence(x, construction=construction, superlevel=superlevel)
        for y in (x * 3 + 1, x**3, torch.exp(x) - 5):
            b = gpuph.cubical_persistence(y, construction=construction, superlevel=superlevel)
            assert np.array_equal(_index_rows(a), _index_rows(b))


@pytest.mark.parametrize("construction", CONSTRUCTIONS)
@pytest.mark.parametrize("d", [1, 2, 3])
def test_superlevel_of_x_is_sublevel_of_minus_x(construction, d):
    """Superlevel order is (value descending, flat index), so superlevel(x) and sublevel(-x) pick the same critical
    pixels, in the same order, with negated values."""
    x = torch.randint(0, 3, (3, *SHAPES[d])).double()
    a = gpuph.cubical_persistence(x, construction=construction, superlevel=True)
    b = gpuph.cubical_persistence(-x, construction=construction, superlevel=False)
    for f in ("dim", "batch", "birth_index", "death_index"):
        assert torch.equal(getattr(a, f), getattr(b, f)), f
    assert torch.equal(a.pairs, -b.pairs)
