"""The Diagrams container's helpers and the nn module."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import CONSTRUCTIONS, check_order, ours_by_dim
from reference import _sorted_pairs

import gpuph

FIELDS = ("pairs", "dim", "batch", "birth_index", "death_index")


@pytest.fixture(params=[(1, (40,)), (2, (9, 11)), (3, (5, 6, 4))], ids=["1d", "2d", "3d"])
def dgm_and_x(request):
    d, shape = request.param
    g = torch.Generator().manual_seed(d)
    x = torch.randint(0, 5, (5, *shape), generator=g).double()
    x[2] = 1.0  # an image with a single (essential) pair
    x.requires_grad_()
    return gpuph.cubical_persistence(x), x


def _rows(dgm: gpuph.Diagrams, keep: torch.Tensor) -> dict:
    return {f: getattr(dgm, f)[keep] for f in FIELDS}


def _assert_rows(sub: gpuph.Diagrams, expected: dict) -> None:
    for f in FIELDS:
        assert torch.equal(getattr(sub, f).detach(), expected[f].detach()), f


def test_len_and_metadata(dgm_and_x):
    dgm, x = dgm_and_x
    assert len(dgm) == dgm.pairs.shape[0]
    assert dgm.batch_size == 5
    assert dgm.ndim == x.dim() - 1
    assert tuple(dgm.spatial_shape) == tuple(x.shape[1:])
    assert dgm.batch_shape == (5,)
    assert dgm.superlevel is True
    assert dgm.construction == "V"
    assert dgm.device == x.device


def test_select(dgm_and_x):
    dgm, _ = dgm_and_x
    for b in range(5):
        sub = dgm.select(batch=b)
        _assert_rows(sub, _rows(dgm, dgm.batch == b))
        assert sub.batch_size == 5
        for k in range(dgm.ndim):
            _assert_rows(dgm.select(batch=b, dim=k), _rows(dgm, (dgm.batch == b) & (dgm.dim == k)))
    _assert_rows(dgm.select(batch=-1), _rows(dgm, dgm.batch == 4))
    _assert_rows(dgm.select(), _rows(dgm, torch.ones(len(dgm), dtype=torch.bool)))
    with pytest.raises(IndexError):
        dgm.select(batch=5)
    with pytest.raises(IndexError):
        dgm.select(batch=-6)


def test_image(dgm_and_x):
    dgm, x = dgm_and_x
    for b in range(5):
        img = dgm.image(b)
        assert img.batch_size == 1
        assert torch.all(img.batch == 0)
        keep = dgm.batch == b
        for f in ("pairs", "dim", "birth_index", "death_index"):
            assert torch.equal(getattr(img, f).detach(), getattr(dgm, f)[keep].detach())
        # Same as computing the image alone.
        alone = gpuph.cubical_persistence(x[b : b + 1])
        for f in FIELDS:
            assert torch.equal(getattr(img, f).detach(), getattr(alone, f).detach())
        assert img.counts().shape == (1, dgm.ndim)
        assert torch.equal(img.counts()[0], dgm.counts()[b])
        assert len(img.to_numpy()) == 1
    assert len(dgm.image(2)) == 1  # the constant image
    with pytest.raises(IndexError):
        dgm.image(5)


def test_in_dim_finite_essential(dgm_and_x):
    dgm, _ = dgm_and_x
    for k in range(dgm.ndim):
        _assert_rows(dgm.in_dim(k), _rows(dgm, dgm.dim == k))
    fin, ess = dgm.finite(), dgm.essential()
    _assert_rows(fin, _rows(dgm, dgm.death_index >= 0))
    _assert_rows(ess, _rows(dgm, dgm.death_index < 0))
    assert len(fin) + len(ess) == len(dgm)
    assert len(ess) == 5
    assert torch.all(torch.isfinite(fin.pairs))
    assert torch.all(torch.isinf(ess.pairs[:, 1]))
    # Selections keep the order and compose.
    check_order(fin)
    check_order(ess)
    _assert_rows(dgm.finite().in_dim(0), _rows(dgm, (dgm.death_index >= 0) & (dgm.dim == 0)))
    _assert_rows(dgm.in_dim(0).essential(), _rows(dgm, dgm.death_index < 0))


def test_finite_and_essential_split_at_death_index_0():
    """A death at flat index 0 (the first pixel) is finite: finite() and essential() split on death_index >= 0."""
    d = gpuph.Diagrams(pairs=torch.tensor([[0.0, 1.0], [0.0, math.inf], [0.5, 2.0]]), dim=torch.tensor([0, 0, 1]),
                       batch=torch.zeros(3, dtype=torch.int64), birth_index=torch.tensor([4, 1, 2]),
                       death_index=torch.tensor([0, -1, 3]), batch_size=1, spatial_shape=(3, 3), superlevel=False,
                       construction="V")
    assert d.finite().death_index.tolist() == [0, 3] and d.essential().death_index.tolist() == [-1]


def test_lifetimes(dgm_and_x):
    dgm, _ = dgm_and_x
    life = dgm.lifetimes()
    assert life.shape == (len(dgm),)
    assert torch.all(life > 0)
    ess = dgm.death_index < 0
    assert torch.all(torch.isinf(life[ess]))
    p = dgm.pairs.detach()
    assert torch.equal(life[~ess].detach(), (p[~ess, 0] - p[~ess, 1]).abs())
    # Sublevel too: lifetimes are non-negative.
    sub = gpuph.cubical_persistence(torch.rand(2, 6, 7), superlevel=False)
    assert torch.all(sub.lifetimes() > 0)
    assert torch.all(sub.pairs[:, 1] > sub.pairs[:, 0])


def test_lifetimes_of_essential_classes_born_at_infinity():
    """inf - inf is NaN: an essential class born at +-inf still lives forever."""
    faces = torch.tensor([[0, 1, 2], [0, 2, 3], [0, 3, 1], [1, 3, 2]])
    for dgm in (gpuph.cubical_persistence(torch.full((1, 4, 4), -math.inf)),
                gpuph.cubical_persistence(torch.full((1, 4, 4), math.inf), superlevel=False),
                gpuph.lower_star_persistence(torch.tensor([0.0, 1.0, 2.0, math.inf]), faces, maxdim=2)):
        assert torch.isinf(dgm.pairs).any() and (dgm.death_index < 0).all()
        assert torch.equal(dgm.lifetimes(), torch.full((len(dgm),), math.inf, dtype=dgm.pairs.dtype))


def test_counts(dgm_and_x):
    dgm, _ = dgm_and_x
    c = dgm.counts()
    assert c.shape == (5, dgm.ndim)
    assert c.dtype == torch.int64
    for b in range(5):
        for k in range(dgm.ndim):
            assert int(c[b, k]) == int(((dgm.batch == b) & (dgm.dim == k)).sum())
    assert int(c.sum()) == len(dgm)
    assert int(c[2].sum()) == 1


@pytest.mark.parametrize("dim", [None, 0, "top"])
def test_padded(dgm_and_x, dim):
    dgm, x = dgm_and_x
    if dim == "top":
        dim = dgm.ndim - 1
    fill = -7.5
    out, mask = dgm.padded(dim=dim, fill=fill)
    sel = dgm if dim is None else dgm.in_dim(dim)
    counts = dgm.counts().sum(1) if dim is None else dgm.counts()[:, dim]
    assert out.shape == (5, int(counts.max()), 2)
    assert out.dtype == dgm.pairs.dtype
    assert mask.shape == out.shape[:2] and mask.dtype == torch.bool
    assert torch.equal(mask.sum(1), counts)
    for b in range(5):
        n = int(counts[b])
        assert torch.all(mask[b, :n]) and not torch.any(mask[b, n:])
        assert torch.equal(out[b, :n].detach(), sel.pairs[sel.batch == b].detach())
        assert torch.all(out[b, n:] == fill)
    # Gradient flows through the padded tensor to the critical pixels (not to the padding).
    w = torch.randn(out.shape, dtype=out.dtype)
    # Essential deaths (-inf) are left out of the loss; they carry no gradient anyway.
    safe = torch.where(torch.isfinite(out.detach()), out, torch.zeros_like(out))
    (safe * w).sum().backward()
    expected = torch.zeros_like(x).view(5, -1)
    for b in range(5):
        rows = (sel.batch == b).nonzero().squeeze(1)
        for j, r in enumerate(rows.tolist()):
            expected[b, sel.birth_index[r]] += w[b, j, 0]
            if int(sel.death_index[r]) >= 0:
                expected[b, sel.death_index[r]] += w[b, j, 1]
    assert not torch.any(mask[..., None] & ~torch.isfinite(out.detach()) & (torch.arange(2) == 0))
    assert torch.allclose(x.grad, expected.view_as(x), rtol=0, atol=1e-12)


def test_padded_empty_dimension():
    # A 1-pixel grid per image: only the essential class.
    x = torch.rand(3, 1, 1)
    dgm = gpuph.cubical_persistence(x)
    out, mask = dgm.padded(dim=1)
    assert out.shape == (3, 0, 2) and mask.shape == (3, 0)
    out, mask = dgm.padded(dim=0)
    assert out.shape == (3, 1, 2) and torch.all(mask)


def test_to_numpy(dgm_and_x):
    dgm, _ = dgm_and_x
    out = dgm.to_numpy()
    assert isinstance(out, list) and len(out) == 5
    for b in range(5):
        assert isinstance(out[b], list) and len(out[b]) == dgm.ndim
        ours = ours_by_dim(dgm, b)
        for k in range(dgm.ndim):
            a = out[b][k]
            assert isinstance(a, np.ndarray)
            assert a.dtype == np.float64
            assert a.shape == (int(dgm.counts()[b, k]), 2)
            # In gpuph's order, and the same multiset as the rows.
            rows = (dgm.batch == b) & (dgm.dim == k)
            assert np.array_equal(a, dgm.pairs[rows].detach().double().numpy())
            assert np.array_equal(_sorted_pairs(a), ours[k])


def test_to_numpy_low_precision():
    x = torch.rand(2, 7, 7).to(torch.bfloat16)
    dgm = gpuph.cubical_persistence(x)
    out = dgm.to_numpy()
    for b in range(2):
        for k in range(2):
            rows = (dgm.batch == b) & (dgm.dim == k)
            assert np.array_equal(out[b][k], dgm.pairs[rows].double().numpy())


def test_host_reads_under_torch_func():
    """to_numpy (host code reads through gpuph._common.host_numpy) inside torch.func.grad, whose tensors have no
    storage: the values of the plain computation; under torch.vmap the read is refused with gpuph's message."""
    from gpuph._common import host_numpy

    x = torch.rand(2, 6, 6, dtype=torch.float64)
    want = gpuph.cubical_persistence(x).to_numpy()
    seen = []

    def loss(y):
        dgm = gpuph.cubical_persistence(y)
        seen.append(dgm.to_numpy())
        return dgm.finite().lifetimes().sum()

    torch.func.grad(loss)(x)
    assert all(np.array_equal(a, b) for got, ref in zip(seen[0], want) for a, b in zip(got, ref))
    assert host_numpy(x, torch.float32).dtype == np.float32 and np.array_equal(host_numpy(x), x.numpy())
    with pytest.raises(RuntimeError, match="vmap over persistence is not supported"):
        torch.vmap(lambda t: torch.from_numpy(host_numpy(t)))(x)


def test_repr(dgm_and_x):
    dgm, _ = dgm_and_x
    r = repr(dgm)
    totals = dgm.counts().sum(0).tolist()
    for k, c in enumerate(totals):
        assert f"H{k}={c}" in r
    assert "batch_size=5" in r
    assert "superlevel" in r
    assert "'V'" in r
    sub = gpuph.cubical_persistence(torch.rand(1, 4, 4), superlevel=False, construction="T")
    assert "sublevel" in repr(sub) and "'T'" in repr(sub)


def test_to_and_detach(dgm_and_x):
    dgm, _ = dgm_and_x
    moved = dgm.to("cpu")
    for f in FIELDS:
        assert torch.equal(getattr(moved, f).detach(), getattr(dgm, f).detach())
    assert moved.pairs.requires_grad
    det = dgm.detach()
    assert not det.pairs.requires_grad
    # filtration_end too: a loss closing essential classes at the end must not reach the input through it.
    assert dgm.filtration_end.requires_grad and not det.filtration_end.requires_grad
    assert torch.equal(det.pairs, dgm.pairs.detach())
    assert det.batch_size == dgm.batch_size and det.spatial_shape == dgm.spatial_shape
    as64 = dgm.to(torch.device("cpu"))
    assert as64.device.type == "cpu"
    with pytest.raises(TypeError, match="takes a device"):  # it would turn the indices into floats
        dgm.to(torch.float64)


def test_image_indices_are_integers():
    dgm = gpuph.cubical_persistence(torch.rand(3, 4, 4))
    assert torch.equal(dgm.image(np.int64(2)).pairs, dgm.image(-1).pairs)
    assert torch.equal(dgm.image(torch.tensor(1)).pairs, dgm.select(batch=1).pairs)
    for bad in (1.7, 1.0, True, torch.tensor(1.0), "1"):  # 1.7 used to select image 1
        with pytest.raises(TypeError, match="image index must be an integer"):
            dgm.image(bad)


def test_repr_lists_the_computed_dimensions():
    x = torch.rand(2, 5, 5)
    assert "pairs: H1=" in repr(gpuph.cubical_persistence(x, dims=1))
    assert "H0=" not in repr(gpuph.cubical_persistence(x, dims=1))
    assert "pairs: H0=" in repr(gpuph.cubical_persistence(x)) and "H1=" in repr(gpuph.cubical_persistence(x))


def test_computed_dims_and_select_of_a_dimension(dgm_and_x):
    dgm, x = dgm_and_x
    d = len(dgm.spatial_shape)
    assert dgm.computed_dims == tuple(range(d))
    assert gpuph.cubical_persistence(x, dims=[d - 1]).computed_dims == (d - 1,)
    assert dgm.select(dim=d - 1).computed_dims == (d - 1,) and dgm.in_dim(0).computed_dims == (0,)
    assert dgm.select(batch=1).computed_dims == tuple(range(d)) and dgm.image(1).computed_dims == tuple(range(d))
    for bad in (-1, d, 1.5, True, "0"):
        with pytest.raises(ValueError, match="gpuph"):
            dgm.select(dim=bad)


# ---------------------------------------------------------------------------------------------- nn module
@pytest.mark.parametrize("construction", CONSTRUCTIONS)
@pytest.mark.parametrize("superlevel", [True, False])
@pytest.mark.parametrize("dims", [None, 0, [1], (0, 1)])
def test_nn_module_equals_functional(construction, superlevel, dims):
    x = torch.randint(0, 4, (2, 3, 8, 7)).float()
    layer = gpuph.nn.CubicalPersistence(dims=dims, superlevel=superlevel, construction=construction, spatial_dims=2)
    assert isinstance(layer, torch.nn.Module)
    assert len(list(layer.parameters())) == 0
    a = layer(x)
    b = gpuph.cubical_persistence(x, dims=dims, superlevel=superlevel, construction=construction, spatial_dims=2)
    for f in FIELDS:
        assert torch.equal(getattr(a, f), getattr(b, f)), f
    assert a.batch_shape == (2, 3)
    assert a.superlevel == superlevel and a.construction == construction
    assert construction in repr(layer)


def test_nn_module_defaults_and_generator_dims():
    x = torch.rand(2, 5, 6)
    assert torch.equal(gpuph.nn.CubicalPersistence()(x).pairs, gpuph.cubical_persistence(x).pairs)
    layer = gpuph.nn.CubicalPersistence(dims=(k for k in [0]))
    # A one-shot iterable must still work on the second call.
    for _ in range(2):
        assert torch.equal(layer(x).pairs, gpuph.cubical_persistence(x, dims=0).pairs)


def test_nn_module_in_sequential_and_state_dict():
    layer = gpuph.nn.CubicalPersistence(dims=0, construction="T")
    seq = torch.nn.Sequential(torch.nn.Identity(), layer)
    x = torch.rand(3, 6, 6)
    assert torch.equal(seq(x).pairs, gpuph.cubical_persistence(x, dims=0, construction="T").pairs)
    assert layer.state_dict() == {}


@pytest.mark.parametrize("superlevel", [True, False])
def test_filtration_end_is_the_last_value_with_one_pixel_gradient(superlevel):
    x = torch.randn(3, 2, 6, 5, dtype=torch.float64, requires_grad=True)
    d = gpuph.cubical_persistence(x, spatial_dims=2, superlevel=superlevel)
    flat = x.detach().reshape(6, -1)
    want = flat.amin(1) if superlevel else flat.amax(1)
    assert torch.equal(d.filtration_end.detach(), want)
    assert torch.equal(d.image(4).filtration_end.detach(), want[4:5])
    d.filtration_end.sum().backward()
    assert torch.equal((x.grad.reshape(6, -1) != 0).sum(1), torch.ones(6, dtype=torch.int64))


def test_group_positions_count_selected_rows_within_each_group():
    from gpuph.diagrams import group_positions

    g = torch.Generator().manual_seed(3)
    group = torch.sort(torch.randint(0, 5, (40,), generator=g)).values
    sel = torch.randint(0, 2, (40,), generator=g)
    for s in (None, sel):
        pos, counts = group_positions(group, 7, s)
        seen = [0] * 7
        for i, b in enumerate(group.tolist()):
            if s is None or s[i]:
                assert pos[i] == seen[b]
                seen[b] += 1
        assert counts.tolist() == seen  # groups 5 and 6 are empty
    pos, counts = group_positions(group[:0], 3)
    assert pos.shape == (0,) and counts.tolist() == [0, 0, 0]
