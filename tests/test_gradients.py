"""Gradients reach exactly the critical pixels: one scatter-add, no hidden state between forwards."""

from __future__ import annotations

import pytest
import torch
from conftest import CONSTRUCTIONS, DIRECTIONS, sidon_values, tie_free

import gpuph


def _manual_grad(x: torch.Tensor, dgm: gpuph.Diagrams, w_birth=None, w_death=None) -> torch.Tensor:
    """d(sum_i w_birth[i] * birth_i + w_death[i] * death_i)/dx for finite deaths, built by hand from the indices."""
    B = dgm.batch_size
    N = x[0].numel() if B else 0
    g = torch.zeros(B * N, dtype=torch.float64)
    wb = torch.ones(len(dgm), dtype=torch.float64) if w_birth is None else w_birth.double()
    wd = torch.ones(len(dgm), dtype=torch.float64) if w_death is None else w_death.double()
    g.index_add_(0, dgm.batch * N + dgm.birth_index, wb)
    fin = dgm.death_index >= 0
    g.index_add_(0, dgm.batch[fin] * N + dgm.death_index[fin], wd[fin])
    return g.reshape(x.shape)


SHAPES = {1: (30,), 2: (10, 12), 3: (5, 4, 6)}


@pytest.mark.parametrize("superlevel", DIRECTIONS, ids=["super", "sub"])
@pytest.mark.parametrize("construction", CONSTRUCTIONS)
@pytest.mark.parametrize("d", [1, 2, 3])
def test_backward_is_scatter_of_ones(construction, superlevel, d):
    g = torch.Generator().manual_seed(d)
    # Integer values: ties, so several pairs share critical pixels (multiplicities are counted).
    x = torch.randint(0, 4, (3, *SHAPES[d]), generator=g).double().requires_grad_()
    dgm = gpuph.cubical_persistence(x, construction=construction, superlevel=superlevel)
    fin = dgm.finite()
    fin.pairs.sum().backward()
    assert torch.equal(x.grad, _manual_grad(x, fin))
    assert x.grad.max() >= 1


@pytest.mark.parametrize("construction", CONSTRUCTIONS)
@pytest.mark.parametrize("d", [1, 2, 3])
def test_backward_weighted_and_essential(construction, d):
    x = torch.randn(2, *SHAPES[d], dtype=torch.float64, requires_grad=True)
    dgm = gpuph.cubical_persistence(x, construction=construction)
    wb = torch.randn(len(dgm), dtype=torch.float64)
    wd = torch.randn(len(dgm), dtype=torch.float64)
    # Essential deaths (-inf) carry no gradient: weight them through torch.where so the loss stays finite.
    death = torch.where(dgm.death_index >= 0, dgm.pairs[:, 1], torch.zeros_like(dgm.pairs[:, 1]))
    (dgm.pairs[:, 0] * wb + death * wd).sum().backward()
    assert torch.allclose(x.grad, _manual_grad(x, dgm, wb, wd), rtol=0, atol=1e-12)


def test_essential_death_has_no_gradient():
    x = torch.rand(2, 6, 6, dtype=torch.float64, requires_grad=True)
    dgm = gpuph.cubical_persistence(x)
    ess = dgm.essential()
    ess.pairs[:, 0].sum().backward(retain_graph=True)
    expected = torch.zeros_like(x)
    flat = expected.view(2, -1)
    flat[ess.batch, ess.birth_index] = 1
    assert torch.equal(x.grad, expected)
    x.grad = None
    grad_death = torch.autograd.grad(ess.pairs[:, 1].sum(), x, allow_unused=True)[0]
    assert grad_death is None or torch.count_nonzero(grad_death) == 0


@pytest.mark.parametrize("construction", CONSTRUCTIONS)
@pytest.mark.parametrize("shape", [(9,), (4, 5), (3, 3, 3), (2, 3, 4)], ids=str)
@pytest.mark.parametrize("superlevel", DIRECTIONS, ids=["super", "sub"])
def test_gradcheck(construction, shape, superlevel):
    # Distinct values with distinct differences: a perturbation by eps changes neither the pairing nor the row order.
    x = sidon_values((2, *shape), 1).requires_grad_()

    def f(inp):
        dgm = gpuph.cubical_persistence(inp, construction=construction, superlevel=superlevel)
        return dgm.finite().pairs

    assert len(f(x)) > 0
    assert torch.autograd.gradcheck(f, (x,), eps=1e-6, atol=1e-8)


@pytest.mark.parametrize("construction", CONSTRUCTIONS)
def test_gradcheck_lifetimes_and_padded(construction):
    x = sidon_values((2, 5, 6), 9).requires_grad_()

    def f(inp):
        dgm = gpuph.cubical_persistence(inp, construction=construction).finite()
        padded, _mask = dgm.padded(fill=0.0)
        return dgm.lifetimes(), padded

    assert torch.autograd.gradcheck(f, (x,), eps=1e-6, atol=1e-8)
    # Second order (double backward, torch.func.hessian) of a nonlinear loss of the values.
    loss = lambda inp: f(inp)[0].pow(3).sum() + f(inp)[1].pow(2).sum()
    assert torch.autograd.gradgradcheck(loss, (x,), eps=1e-6, atol=1e-6)
    h = torch.func.hessian(loss)(x.detach()).reshape(60, 60)
    assert torch.allclose(h, h.T) and bool(h.abs().sum() > 0)


@pytest.mark.parametrize("construction", CONSTRUCTIONS)
def test_gradient_of_one_image_ignores_the_others(construction):
    g = torch.Generator().manual_seed(0)
    target = torch.randint(0, 5, (1, 8, 9), generator=g).double()
    alone = target.clone().requires_grad_()
    gpuph.cubical_persistence(alone, construction=construction).finite().pairs.sum().backward()
    for others in (torch.rand(3, 8, 9, generator=g, dtype=torch.float64), torch.zeros(3, 8, 9, dtype=torch.float64)):
        x = torch.cat([others[:2], target, others[2:]]).requires_grad_()
        dgm = gpuph.cubical_persistence(x, construction=construction)
        dgm.select(batch=2).finite().pairs.sum().backward()
        assert torch.equal(x.grad[2], alone.grad[0])
        assert torch.count_nonzero(x.grad[[0, 1, 3]]) == 0


@pytest.mark.parametrize("construction", CONSTRUCTIONS)
def test_two_forwards_one_backward(construction):
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, 6, (2, 7, 7), generator=g).double().requires_grad_()
    y = torch.rand(3, 5, 4, generator=g, dtype=torch.float64).requires_grad_()
    module = gpuph.nn.CubicalPersistence(construction=construction)
    # Same module, several inputs and settings, one backward: no state of one forward leaks into another.
    d1 = module(x)
    d2 = module(y)
    d3 = gpuph.cubical_persistence(x, construction=construction, superlevel=False)
    d4 = module(x * 2)
    loss = d1.finite().pairs.sum() + d2.finite().pairs.sum() + d3.finite().pairs.sum() + d4.finite().pairs.sum()
    loss.backward()
    gx = _manual_grad(x, d1.finite()) + _manual_grad(x, d3.finite()) + 2 * _manual_grad(x, d4.finite())
    assert torch.equal(x.grad, gx)
    assert torch.equal(y.grad, _manual_grad(y, d2.finite()))


def test_two_backwards_accumulate():
    x = torch.rand(2, 6, 6, dtype=torch.float64, requires_grad=True)
    d1 = gpuph.cubical_persistence(x)
    d2 = gpuph.cubical_persistence(x, construction="T")
    d1.finite().pairs.sum().backward()
    d2.finite().pairs.sum().backward()
    assert torch.equal(x.grad, _manual_grad(x, d1.finite()) + _manual_grad(x, d2.finite()))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32], ids=str)
@pytest.mark.parametrize("construction", CONSTRUCTIONS)
def test_gradients_low_precision(construction, dtype):
    g = torch.Generator().manual_seed(2)
    x = torch.rand(3, 9, 8, generator=g).to(dtype).requires_grad_()
    dgm = gpuph.cubical_persistence(x, construction=construction)
    assert dgm.pairs.dtype == dtype
    fin = dgm.finite()
    fin.lifetimes().sum().backward()
    assert x.grad.dtype == dtype
    sign = 1.0 if dgm.superlevel else -1.0
    expected = _manual_grad(x, fin, torch.full((len(fin),), sign), torch.full((len(fin),), -sign))
    assert torch.equal(x.grad.double(), expected)


@pytest.mark.parametrize("construction", CONSTRUCTIONS)
@pytest.mark.parametrize("spatial_dims", [1, 2, 3])
def test_gradients_through_nn_module(construction, spatial_dims):
    x = torch.rand(2, 3, 4, 5, 6, requires_grad=True)
    layer = gpuph.nn.CubicalPersistence(dims=None, superlevel=True, construction=construction,
                                        spatial_dims=spatial_dims)
    dgm = layer(x)
    fin = dgm.finite()
    fin.pairs.sum().backward()
    assert torch.equal(x.grad.double(), _manual_grad(x.reshape(-1, *x.shape[5 - spatial_dims:]), fin).view(x.shape))


def test_gradients_through_leading_axes_and_noncontiguous_views():
    base = torch.rand(6, 8, 2, 3, dtype=torch.float64, requires_grad=True)
    x = base.permute(2, 3, 1, 0)  # (2, 3, 8, 6), not contiguous
    dgm = gpuph.cubical_persistence(x, spatial_dims=2)
    fin = dgm.finite()
    fin.pairs.sum().backward()
    expected = _manual_grad(x.detach().reshape(6, 8, 6), fin).reshape(2, 3, 8, 6).permute(3, 2, 0, 1)
    assert torch.equal(base.grad, expected)


def test_input_without_requires_grad_gives_detached_pairs():
    x = torch.rand(2, 5, 5)
    dgm = gpuph.cubical_persistence(x)
    assert not dgm.pairs.requires_grad
    x.requires_grad_()
    assert gpuph.cubical_persistence(x).pairs.requires_grad
    with torch.no_grad():
        assert not gpuph.cubical_persistence(x).pairs.requires_grad


def test_double_backward():
    # pairs are a gather of x: linear, so the second derivative of a quadratic loss is a scatter of 2s.
    x = tie_free((1, 5, 5), 4, scale=0.5).requires_grad_()
    dgm = gpuph.cubical_persistence(x).finite()
    loss = (dgm.pairs**2).sum()
    (gx,) = torch.autograd.grad(loss, x, create_graph=True)
    assert torch.allclose(gx, _manual_grad(x, dgm, 2 * dgm.pairs[:, 0].detach(), 2 * dgm.pairs[:, 1].detach()))
    gx.sum().backward()
    assert torch.equal(x.grad, 2 * _manual_grad(x, dgm))
