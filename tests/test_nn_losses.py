"""gpuph.nn loss modules: the same values and gradients as the functional calls they wrap."""

from __future__ import annotations

import pytest
import torch
from conftest import sidon_values

import gpuph
from gpuph.losses import betti_loss, persistence_energy


@pytest.mark.parametrize("superlevel", [True, False], ids=["super", "sub"])
@pytest.mark.parametrize("construction", ["V", "T", "freudenthal"])
@pytest.mark.parametrize("dim,p,q,i0,reduction", [(0, 1, 0, 2, "mean"), (1, 2, 1, 1, "sum"), (0, 0.5, 2, 3, "none")])
def test_topology_loss_equals_functional(superlevel, construction, dim, p, q, i0, reduction):
    x = torch.rand(3, 1, 9, 8, dtype=torch.float64)
    topo = gpuph.nn.TopologyLoss(dim=dim, p=p, q=q, i0=i0, reduction=reduction, superlevel=superlevel,
                                 construction=construction, spatial_dims=2)
    dgm = gpuph.cubical_persistence(x, superlevel=superlevel, construction=construction, spatial_dims=2)
    want = persistence_energy(dgm, dim, p=p, q=q, i0=i0, reduction=reduction)
    torch.testing.assert_close(topo(x), want, rtol=0, atol=0)
    assert topo(x).shape == ((3,) if reduction == "none" else ())


@pytest.mark.parametrize("k", [0, 1, 3])
def test_betti_loss_module_equals_functional_and_weight(k):
    x = torch.rand(4, 10, 10, dtype=torch.float64)
    mod = gpuph.nn.BettiLoss(dim=1, k=k, p=2, weight=-0.5, superlevel=False)
    want = -0.5 * betti_loss(gpuph.cubical_persistence(x, superlevel=False), 1, k, p=2)
    torch.testing.assert_close(mod(x), want, rtol=0, atol=0)


def test_gan_use_case_gradients():
    """E(1,0,2; PD0) on superlevel V diagrams of generator outputs (B, 1, 28, 28): the gradient is the one of the
    functional loss, and a gradient step lowers the loss (fewer / shorter extra components)."""
    x = sidon_values((4, 1, 28, 28), seed=2, scale=1e-4).requires_grad_()
    topo = gpuph.nn.TopologyLoss(dim=0, p=1, q=0, i0=2, superlevel=True, construction="V", spatial_dims=2)
    loss = topo(x)
    (g,) = torch.autograd.grad(loss, x)
    x2 = x.detach().clone().requires_grad_()
    want = persistence_energy(gpuph.cubical_persistence(x2, spatial_dims=2), 0, p=1, q=0, i0=2)
    (g2,) = torch.autograd.grad(want, x2)
    assert torch.equal(g, g2)
    with torch.no_grad():
        stepped = topo(x - 1e-5 * g)
    assert stepped < loss


def test_gradcheck_module():
    x = sidon_values((2, 5, 4), seed=8).requires_grad_()
    topo = gpuph.nn.TopologyLoss(dim=0, p=2, q=1, i0=1, reduction="sum")
    assert torch.autograd.gradcheck(topo, (x,), eps=1e-6, atol=1e-6)


def test_modules_are_stateless_and_composable():
    topo = gpuph.nn.TopologyLoss(dim=0, i0=2, spatial_dims=2)
    assert topo.state_dict() == {} and list(topo.parameters()) == []
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 1, 3, padding=1), torch.nn.Sigmoid())
    x = torch.rand(2, 1, 12, 12)
    # Two forwards sharing one backward: each keeps its own graph.
    loss = topo(net(x)) + topo(net(x.flip(-1)))
    loss.backward()
    assert net[0].weight.grad is not None and torch.isfinite(net[0].weight.grad).all()
    assert "i0=2" in repr(topo) and "spatial_dims=2" in repr(topo)
    assert "k=2" in repr(gpuph.nn.BettiLoss(k=2))


def test_only_the_needed_dimension_is_computed():
    topo = gpuph.nn.TopologyLoss(dim=1)
    dgm = topo.diagrams(torch.rand(2, 6, 6))
    assert set(dgm.dim.tolist()) <= {1}


def test_cubical_persistence_module_takes_what_the_function_takes():
    x = torch.rand(2, 6, 6)
    for dims in (torch.tensor(1), torch.tensor([0, 1]), [0], 1):
        module = gpuph.nn.CubicalPersistence(dims=dims, spatial_dims=2)(x)
        function = gpuph.cubical_persistence(x, dims=dims, spatial_dims=2)
        assert torch.equal(module.pairs, function.pairs) and torch.equal(module.dim, function.dim)


def test_bad_settings_raise_at_construction():
    with pytest.raises(ValueError, match="construction"):
        gpuph.nn.CubicalPersistence(construction=["V"])
    for kwargs in [dict(reduction="max"), dict(i0=0), dict(dim=-1), dict(p=float("inf")), dict(construction="X")]:
        with pytest.raises(ValueError, match="gpuph"):
            gpuph.nn.TopologyLoss(**kwargs)
    for kwargs in [dict(k=-1), dict(reduction="avg"), dict(dim=1.5)]:
        with pytest.raises(ValueError, match="gpuph"):
            gpuph.nn.BettiLoss(**kwargs)
    # What the input cannot change: a grid dimension past 3, or a homology dimension past the grids'.
    for cls in (gpuph.nn.TopologyLoss, gpuph.nn.BettiLoss):
        with pytest.raises(ValueError, match="spatial_dims must be 1, 2 or 3"):
            cls(spatial_dims=5)
        with pytest.raises(ValueError, match="out of range 0..1 for 2D grids"):
            cls(dim=3, spatial_dims=2)
        cls(dim=2, spatial_dims=3)
    with pytest.raises(ValueError, match="out of range 0..0 for 1D grids"):
        gpuph.nn.CubicalPersistence(dims=(0, 1), spatial_dims=1)


def test_spatial_dims_outside_1_to_3_fail_at_construction():
    for cls in (gpuph.nn.TopologyLoss, gpuph.nn.BettiLoss, gpuph.nn.CubicalPersistence):
        for sd in (0, 4):
            with pytest.raises(ValueError, match="spatial_dims must be 1, 2 or 3"):
                cls(spatial_dims=sd)


def test_topology_loss_defaults_are_the_papers_e_1_0_2():
    """TopologyLoss() is E(p=1, q=0, i0=1) of PD0 (superlevel V), averaged over the batch."""
    x = torch.rand(3, 1, 6, 6, generator=torch.Generator().manual_seed(0))
    want = gpuph.losses.persistence_energy(gpuph.cubical_persistence(x, dims=0, spatial_dims=2), 0, 1.0, 0.0, 1)
    torch.testing.assert_close(gpuph.nn.TopologyLoss(spatial_dims=2)(x), want.mean())
