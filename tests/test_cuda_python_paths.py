"""The Python-level code paths on the input's device: point clouds (Rips, weak Alpha), losses, barcode features,
distances, ``Diagrams`` helpers, ``gpuph.nn`` modules, lower-star persistence and the TopologyLayer compat layers.

Every test is parametrized over ``DEVICES``: the ``cpu`` instance runs everywhere (and proves the test code right);
on a machine with a GPU the ``cuda`` instance is the real check, in one pytest run (tests/test_cuda.py covers
``cubical_persistence`` itself on CUDA). Each test runs the API on the device and compares with the CPU run: outputs
on the input's device, integer fields and gathered values equal bit for bit where the computation is the same,
``allclose`` with a stated tolerance where float sums may be reduced in another order (``index_add`` / scatter-add
on a GPU: losses, features, distances, gradients), and gradients on the device equal to the CPU gradients.

Point clouds: ``torch.cdist`` on a GPU may differ from the CPU in the last bits, so the clouds of the exact tests lie
on a dyadic grid (coordinates ``k / 256``): every difference, square and sum of squares is exact in float32, and the
square root is correctly rounded on both devices, so the distance matrices, and so the diagrams, are bitwise equal.
Generic clouds are compared with the CPU engine run on the device's own distance matrix (exact), and with the CPU
run within a tolerance (their clouds are checked to have no near-ties between edge lengths, which could reorder)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import gpuph
import gpuph.compat.topologylayer as topologylayer
from gpuph import barcode_features as bf
from gpuph import losses
from gpuph._common import dims_mask
from gpuph.compat.topologylayer.nn import (
    AlphaLayer,
    LevelSetLayer,
    LevelSetLayer1D,
    LevelSetLayer2D,
    RipsLayer,
    SumBarcodeLengths,
    TopKBarcodeLengths,
)
from gpuph.compat.topologylayer.util.process import remove_filler, remove_infinite_bars, remove_zero_bars
from gpuph.distances import bottleneck_distance, pairwise_wasserstein, wasserstein_distance
from gpuph.lower_star import prepare_complex
from gpuph.point_cloud import _rips_rows, _sizes_tensor, pairwise_distances

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
FIELDS = ("dim", "batch", "birth_index", "death_index")
# Float sums reduced in another order on a GPU (index_add, scatter-add of gradients, cdist's backward).
TOL = {
    torch.float16: dict(rtol=5e-3, atol=5e-3),
    torch.float32: dict(rtol=1e-5, atol=1e-5),
    torch.float64: dict(rtol=1e-10, atol=1e-12),
}


# ---------------------------------------------------------------------------------------------- helpers
def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)  # a CPU generator: inputs are drawn on the CPU, then moved


def dyadic_points(shape, seed: int, dtype=torch.float32) -> torch.Tensor:
    """Points ``k / 256``, ``k < 256``: exact distances on every device (see the module's docstring)."""
    return torch.randint(0, 256, shape, generator=gen(seed)).to(dtype) / 256


def sphere_points(shape, seed: int, dtype=torch.float32, dyadic: bool = True) -> torch.Tensor:
    """Points near a sphere (one H2 class, several H1 ones), rounded to ``k / 256`` unless not ``dyadic``."""
    u = torch.randn(shape, generator=gen(seed), dtype=torch.float64)
    u = 0.5 + 0.45 * u / u.norm(dim=-1, keepdim=True)
    return (torch.round(u * 256) / 256 if dyadic else u).to(dtype)


def images(shape, seed: int, dtype=torch.float32) -> torch.Tensor:
    """Noise plus a smooth bump: several H0 and H1 bars per image."""
    g = gen(seed)
    *_, h, w = shape
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    bump = torch.exp(-4 * (xx**2 + yy**2))
    return (bump + 0.5 * torch.rand(shape, generator=g)).to(dtype)


def weights(shape, seed: int) -> torch.Tensor:
    return torch.rand(shape, generator=gen(seed), dtype=torch.float64) + 0.5


def weighted_sum(t: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """A scalar with a distinct weight per entry (infinite entries left out), so that gradients see every entry."""
    w = weights(t.shape, seed).to(t.device, t.dtype)
    return torch.where(torch.isfinite(t), t * w, torch.zeros_like(t)).sum()


def on(t: torch.Tensor, device: str) -> bool:
    return t.device.type == torch.device(device).type


def assert_on(dgm: gpuph.Diagrams, device: str) -> None:
    for name in ("pairs", *FIELDS):
        assert on(getattr(dgm, name), device), name
    if dgm.filtration_end is not None:
        assert on(dgm.filtration_end, device)


def assert_same(got: gpuph.Diagrams, want: gpuph.Diagrams) -> None:
    """Equal rows, values (bit for bit), filtration ends and metadata."""
    assert type(got) is type(want)
    for name in FIELDS:
        assert torch.equal(getattr(got, name).cpu(), getattr(want, name).cpu()), name
    assert got.pairs.dtype == want.pairs.dtype
    assert torch.equal(got.pairs.detach().cpu(), want.pairs.detach().cpu())
    assert (got.filtration_end is None) == (want.filtration_end is None)
    if want.filtration_end is not None:
        assert torch.equal(got.filtration_end.detach().cpu(), want.filtration_end.detach().cpu())
    for name in ("batch_size", "spatial_shape", "superlevel", "construction", "batch_shape", "ndim"):
        assert getattr(got, name) == getattr(want, name), name


def assert_close(got: torch.Tensor, want: torch.Tensor, device: str, tol: dict | None = None) -> None:
    assert on(got, device), got.device
    assert got.dtype == want.dtype and got.shape == want.shape
    got = got.detach().cpu()
    want = want.detach().cpu()
    assert torch.equal(torch.isinf(got), torch.isinf(want))
    torch.testing.assert_close(got, want, equal_nan=True, **(tol or TOL[want.dtype]))


def run(fn, x: torch.Tensor, device: str, seed: int = 0):
    """``fn`` of ``x`` moved to ``device`` (a leaf that requires grad): its output and ``x``'s gradient after a
    backward of :func:`weighted_sum` of the output (of its ``pairs`` for a Diagrams)."""
    leaf = x.detach().to(device).requires_grad_(True)
    out = fn(leaf)
    t = out.pairs if isinstance(out, gpuph.Diagrams) else out
    if t.requires_grad:
        weighted_sum(t, seed).backward()
    grad = leaf.grad if leaf.grad is not None else torch.zeros_like(leaf)
    return out, grad


def check_against_cpu(fn, x: torch.Tensor, device: str, exact: bool, seed: int = 0):
    """Runs ``fn`` on the device and on the CPU; compares the outputs (exactly for diagrams with ``exact``, else
    within ``TOL``) and the gradients (within ``TOL``). Returns both outputs."""
    got, grad = run(fn, x, device, seed)
    want, want_grad = run(fn, x, "cpu", seed)
    if isinstance(want, gpuph.Diagrams):
        assert_on(got, device)
        if exact:
            assert_same(got, want)
        else:
            for name in FIELDS:
                assert torch.equal(getattr(got, name).cpu(), getattr(want, name).cpu()), name
            assert_close(got.pairs, want.pairs, device)
    elif exact:
        assert on(got, device) and torch.equal(got.detach().cpu(), want.detach())
    else:
        assert_close(got, want, device)
    assert on(grad, device)
    assert_close(grad, want_grad, device)
    return got, want


# ---------------------------------------------------------------------------------------------- Rips
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dims", [(0,), (0, 1), (0, 1, 2)])  # dims=(0,) on CUDA: the spanning-forest device path
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_rips_batch_equals_cpu(device, dims, dtype):
    x = sphere_points((2, 2, 16, 3), seed=len(dims), dtype=dtype)  # batch shape (2, 2)
    got, _ = check_against_cpu(lambda p: gpuph.rips_persistence(p, dims=dims), x, device, exact=True)
    assert got.batch_shape == (2, 2) and got.batch_size == 4
    assert set(got.dim.unique().tolist()) == set(dims)  # H2 too: the sphere's class


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dims", [(0,), (0, 1), (0, 1, 2)])
@pytest.mark.parametrize("thr", [math.inf, 0.3])
def test_rips_list_of_clouds_and_threshold_equals_cpu(device, dims, thr):
    sizes = (9, 1, 14, 0, 11)
    clouds = [sphere_points((n, 3), seed=20 + i) for i, n in enumerate(sizes)]

    def fn(flat):  # one leaf for the gradient; the clouds are views of it
        parts = torch.split(flat, sizes)
        return gpuph.rips_persistence(list(parts), dims=dims, max_edge_length=thr)

    got, _ = check_against_cpu(fn, torch.cat(clouds), device, exact=True)
    assert got.batch_size == len(sizes) and got.spatial_shape == (14, 14)
    if thr < math.inf:  # several components: several essential H0 classes per cloud
        assert int((got.death_index < 0).sum()) > len(sizes)


@pytest.mark.parametrize("device", DEVICES)
def test_rips_half_precision_input(device):
    x = dyadic_points((3, 10, 2), seed=5).half()  # k / 256 is exact in float16; diagrams in float32
    got, want = check_against_cpu(lambda p: gpuph.rips_persistence(p, dims=(0, 1)), x, device, exact=True)
    assert got.pairs.dtype == torch.float32


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("thr", [math.inf, 0.25])
def test_rips_spanning_forest_path_equals_the_engine_on_the_same_distances(device, thr):
    """The H0 device path (Borůvka where the distances live) against the CPU engine on the same matrix, padded
    clouds and a threshold included; generic (non-dyadic) float32 points."""
    x = torch.rand(4, 25, 2, generator=gen(7))
    sizes = _sizes_tensor([25, 3, 18, 1])
    dist = pairwise_distances(x.to(device))
    got = _rips_rows(dist, sizes, thr, 1, on_device=True)
    want = _rips_rows(dist.cpu(), sizes, thr, 1, on_device=False)
    assert on(got, device) and torch.equal(got.cpu(), want)


def _edge_gap(x: torch.Tensor) -> float:
    """The smallest gap between two edge lengths of one cloud, relative to the largest length."""
    d = torch.cdist(x.double(), x.double())
    i, j = torch.triu_indices(x.shape[1], x.shape[1], 1)
    lengths = d[:, i, j].sort(1).values
    return float(lengths.diff(dim=1).min() / lengths.max())


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dims", [(0,), (0, 1), (0, 1, 2)])
def test_rips_generic_points(device, dims):
    """Generic float32 points, whose GPU distances may differ from the CPU's in the last bits: the rows equal the
    CPU engine's on the device's own distance matrix, and the values gathered from it; the values are within a few
    ulps of the CPU run (the cloud has no near-tie between two edge lengths, so the edge order, and so every row,
    is the CPU's too)."""
    x = sphere_points((3, 12, 3), seed=11, dyadic=False)
    assert _edge_gap(x) > 1e-5  # no two edges could swap places by rounding
    leaf = x.detach().to(device).requires_grad_(True)
    dgm = gpuph.rips_persistence(leaf, dims=dims)
    assert_on(dgm, device)
    dist = pairwise_distances(leaf.detach())
    mask = dims_mask(dims, 3, "{k}")
    rows = _rips_rows(dist.cpu(), _sizes_tensor([12] * 3), math.inf, mask, on_device=False)
    assert torch.equal(torch.stack([dgm.batch, dgm.dim, dgm.birth_index, dgm.death_index], 1).cpu(), rows)
    flat = dist.reshape(-1)
    fin = dgm.death_index >= 0
    assert torch.equal(dgm.pairs[:, 1][fin], flat[dgm.batch[fin] * 144 + dgm.death_index[fin]])
    # Against the CPU run, within float32 rounding of cdist, and its gradient.
    cpu_leaf = x.detach().clone().requires_grad_(True)
    want = gpuph.rips_persistence(cpu_leaf, dims=dims)
    for name in FIELDS:
        assert torch.equal(getattr(dgm, name).cpu(), getattr(want, name)), name
    tol = dict(rtol=1e-6, atol=1e-6)
    assert_close(dgm.pairs, want.pairs, device, tol)
    assert_close(dgm.filtration_end, want.filtration_end, device, tol)
    weighted_sum(dgm.pairs).backward()
    weighted_sum(want.pairs).backward()
    assert_close(leaf.grad, cpu_leaf.grad, device, dict(rtol=1e-4, atol=1e-5))


# ---------------------------------------------------------------------------------------------- weak Alpha
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("complex", ["flag", "delaunay"])
@pytest.mark.parametrize("D,dims", [(2, (0, 1)), (3, (0, 1)), (3, (0, 1, 2)), (2, (0,))])
def test_weak_alpha_equals_cpu(device, complex, D, dims):
    points = dyadic_points if D == 2 else sphere_points
    x = points((3, 16, D), seed=30 + D)  # exact edge lengths on every device (vector_norm of k / 256)
    check_against_cpu(lambda p: gpuph.weak_alpha_persistence(p, dims=dims, complex=complex), x, device, exact=True)


@pytest.mark.parametrize("device", DEVICES)
def test_weak_alpha_list_of_clouds_equals_cpu(device):
    sizes = (7, 12, 2, 0, 5)
    flat = torch.cat([dyadic_points((n, 2), seed=40 + i, dtype=torch.float64) for i, n in enumerate(sizes)])
    fn = lambda f: gpuph.weak_alpha_persistence(list(torch.split(f, sizes)), dims=(0, 1))
    got, _ = check_against_cpu(fn, flat, device, exact=True)
    assert got.batch_size == len(sizes)


# ---------------------------------------------------------------------------------------------- Diagrams helpers
def _cubical(x, superlevel=True, construction="V"):
    return gpuph.cubical_persistence(x, spatial_dims=2, superlevel=superlevel, construction=construction)


@pytest.mark.parametrize("device", DEVICES)
def test_diagrams_helpers_equal_cpu(device):
    x = images((3, 1, 9, 10), seed=1)
    got, want = check_against_cpu(_cubical, x, device, exact=True)
    assert_same(got.select(batch=1, dim=1), want.select(batch=1, dim=1))
    assert_same(got.select(batch=-1), want.select(batch=-1))
    assert_same(got.in_dim(0), want.in_dim(0))
    assert_same(got.finite(), want.finite())
    assert_same(got.essential(), want.essential())
    assert_same(got.image(2), want.image(2))
    assert_same(got.detach(), want.detach())
    assert_same(got.to("cpu"), want)
    assert_on(got.finite(), device)
    assert_on(got.image(0), device)
    for a, b in ((got.lifetimes(), want.lifetimes()), (got.counts(), want.counts())):
        assert on(a, device) and torch.equal(a.detach().cpu(), b.detach())
    for dim in (None, 0, 1):
        (p, m), (q, n) = got.padded(dim=dim, fill=-1.0), want.padded(dim=dim, fill=-1.0)
        assert on(p, device) and on(m, device)
        assert torch.equal(p.detach().cpu(), q.detach()) and torch.equal(m.cpu(), n)
    for img_got, img_want in zip(got.to_numpy(), want.to_numpy()):
        for a, b in zip(img_got, img_want):
            assert a.dtype == np.float64 and np.array_equal(a, b)
    assert repr(got).replace(str(got.device), "cpu") == repr(want)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dim", [None, 0, 1])
def test_padded_and_lifetimes_gradients_equal_cpu(device, dim):
    x = images((4, 1, 8, 8), seed=2)
    check_against_cpu(lambda v: _cubical(v).padded(dim=dim)[0], x, device, exact=True)
    check_against_cpu(lambda v: _cubical(v).finite().lifetimes(), x, device, exact=True)


@pytest.mark.parametrize("device", DEVICES)
def test_complex_diagrams_helpers_equal_cpu(device):
    x = sphere_points((2, 16, 3), seed=3)
    got, want = check_against_cpu(lambda p: gpuph.rips_persistence(p, dims=(0, 1, 2)), x, device, exact=True)
    assert got.ndim == 3 and bool((got.counts()[:, 2] > 0).all())
    assert torch.equal(got.counts().cpu(), want.counts())
    assert all(np.array_equal(a, b) for ga, wa in zip(got.to_numpy(), want.to_numpy()) for a, b in zip(ga, wa))
    pg, mg = got.padded(dim=1)
    pw, mw = want.padded(dim=1)
    assert torch.equal(pg.detach().cpu(), pw.detach()) and torch.equal(mg.cpu(), mw)


# ---------------------------------------------------------------------------------------------- losses
LOSSES = {
    "energy_gan": lambda d: losses.persistence_energy(d, dim=0, p=1, q=0, i0=2),
    "energy_pq": lambda d: losses.persistence_energy(d, dim=1, p=2, q=1, i0=1, reduction="none"),
    "energy_sqrt_sum": lambda d: losses.persistence_energy(d, dim=0, p=0.5, q=2, i0=1, reduction="sum"),
    "energy_count": lambda d: losses.persistence_energy(d, dim=1, p=0, reduction="none"),
    "betti": lambda d: losses.betti_loss(d, dim=1, k=1, p=2, reduction="none"),
    "betti_k0": lambda d: losses.betti_loss(d, dim=0, k=0),
    "closed_pairs": losses.closed_pairs,
    "rank_in_image": losses.rank_in_image,
    "SumBarcodeLengths": lambda d: losses.SumBarcodeLengths(0)(d),
    "TopKBarcodeLengths": lambda d: losses.TopKBarcodeLengths(1, 3)(d),
    "PartialSumBarcodeLengths": lambda d: losses.PartialSumBarcodeLengths(0, 1)(d),
    "BarcodePolyFeature": lambda d: losses.BarcodePolyFeature(1, 2, 1)(d),
}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", sorted(LOSSES))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("superlevel", [True, False])
def test_losses_equal_cpu(device, name, dtype, superlevel):
    x = images((5, 1, 9, 9), seed=4, dtype=dtype)
    fn = LOSSES[name]
    exact = name in ("closed_pairs", "rank_in_image")  # gathers, no sum
    got, want = check_against_cpu(lambda v: fn(_cubical(v, superlevel)), x, device, exact=exact)
    if name == "rank_in_image":
        assert got.dtype == torch.int64


def test_every_public_loss_is_tested():
    public = set(losses.__all__) - {"BarcodePolyFeature", "PartialSumBarcodeLengths", "SumBarcodeLengths",
                                    "TopKBarcodeLengths"}
    assert public <= {"persistence_energy", "betti_loss", "closed_pairs", "rank_in_image"}
    assert set(bf.__all__) <= set(FEATURES) | {"BarcodePolyFeature", "PartialSumBarcodeLengths", "SumBarcodeLengths",
                                               "TopKBarcodeLengths"}


@pytest.mark.parametrize("device", DEVICES)
def test_losses_on_point_cloud_diagrams(device):
    x = dyadic_points((3, 14, 2), seed=6)
    for fn in (LOSSES["energy_gan"], LOSSES["betti"], LOSSES["PartialSumBarcodeLengths"]):
        check_against_cpu(lambda p, fn=fn: fn(gpuph.rips_persistence(p)), x, device, exact=False)


# ---------------------------------------------------------------------------------------------- barcode features
FEATURES = {
    "sum_barcode_lengths": lambda d: bf.sum_barcode_lengths(d, 0),
    "top_k_barcode_lengths": lambda d: bf.top_k_barcode_lengths(d, 1, 4),
    "partial_sum_barcode_lengths": lambda d: bf.partial_sum_barcode_lengths(d, 0, 2),
    "barcode_poly_feature": lambda d: bf.barcode_poly_feature(d, 0, 1, 2),
    "barcode_poly_feature_p0": lambda d: bf.barcode_poly_feature(d, 1, 0, 0, remove_zero=False),
}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", sorted(FEATURES))
@pytest.mark.parametrize("superlevel", [True, False])
def test_barcode_features_on_diagrams_equal_cpu(device, name, superlevel):
    x = images((4, 1, 10, 9), seed=8)
    check_against_cpu(lambda v: FEATURES[name](_cubical(v, superlevel)), x, device, exact=False)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", sorted(FEATURES))
def test_barcode_features_on_topologylayer_tuples_equal_cpu(device, name):
    x = images((7, 8), seed=9)
    layer = LevelSetLayer2D(size=(8, 7), maxdim=1, sublevel=False)
    got, _ = check_against_cpu(lambda v: FEATURES[name](layer(v)), x, device, exact=False)
    # and on tuples with zero-length and filler rows, as TopologyLayer's layers give them
    dgms = (torch.tensor([[0.0, 1.0], [2.0, 2.0], [0.5, math.inf]]), torch.tensor([[0.2, 0.9], [1.0, 1.0]]))
    want = FEATURES[name]((dgms, True))
    out = FEATURES[name]((tuple(d.to(device) for d in dgms), True))
    assert_close(out, want, device)


# ---------------------------------------------------------------------------------------------- distances
DISTANCES = {
    "wasserstein_h0_p2": lambda a, b: wasserstein_distance(a, b, dim=0, p=2),
    "wasserstein_h1_p1_l2": lambda a, b: wasserstein_distance(a, b, dim=1, p=1, internal_p=2),
    "wasserstein_h0_p3_l1": lambda a, b: wasserstein_distance(a, b, dim=0, p=3, internal_p=1),
    "bottleneck_h0": lambda a, b: bottleneck_distance(a, b, dim=0),
    "bottleneck_h1": lambda a, b: bottleneck_distance(a, b, dim=1),
    "pairwise_h0": lambda a, b: pairwise_wasserstein(a, b.image(1), dim=0, p=2),
    "pairwise_h1": lambda a, b: pairwise_wasserstein(a.image(0), b, dim=1, p=1.5, internal_p=2),
}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", sorted(DISTANCES))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_distances_equal_cpu(device, name, dtype):
    """Both sides differentiable; the cost of the matching is recomputed on the device (float64 sums, scattered
    in any order on a GPU)."""
    x = images((8, 1, 8, 8), seed=10, dtype=dtype)
    fn = DISTANCES[name]

    def dist(v):
        return fn(_cubical(v[:4]), _cubical(v[4:]))

    got, want = check_against_cpu(dist, x, device, exact=False)
    assert got.dtype == dtype
    # Without a gradient the host's sums are used, moved to the device.
    with torch.no_grad():
        fast = dist(x.to(device))
    assert_close(fast, want, device)


@pytest.mark.parametrize("device", DEVICES)
def test_distances_with_essential_classes_and_infinite_values(device):
    """Rips diagrams cut at a threshold (several essential classes, different numbers: distance inf) and sublevel
    units; the essential classes are matched on the device."""
    x = dyadic_points((6, 10, 2), seed=12, dtype=torch.float64)

    def both(p):
        a = gpuph.rips_persistence(p[:3], max_edge_length=0.3)
        b = gpuph.rips_persistence(p[3:], max_edge_length=0.35)
        return a, b

    for fn in (lambda a, b: wasserstein_distance(a, b, 0, p=2), lambda a, b: bottleneck_distance(a, b, 0),
               lambda a, b: wasserstein_distance(a, b, 1, p=1), lambda a, b: pairwise_wasserstein(a, b, 0)):
        got, want = check_against_cpu(lambda p, fn=fn: fn(*both(p)), x, device, exact=False)
    a, b = both(x.to(device))
    assert int((a.death_index < 0).sum()) > 3  # the threshold leaves several components
    assert bool(torch.isinf(wasserstein_distance(a, b, 0)).any())  # and different numbers of them


# ---------------------------------------------------------------------------------------------- nn modules
MODULES = {
    "CubicalPersistence": gpuph.nn.CubicalPersistence(dims=[0, 1], superlevel=False, construction="T", spatial_dims=2),
    "CubicalPersistence3d": gpuph.nn.CubicalPersistence(),
    "TopologyLoss": gpuph.nn.TopologyLoss(dim=0, p=1, q=0, i0=2, superlevel=True, construction="V", spatial_dims=2),
    "TopologyLoss_none": gpuph.nn.TopologyLoss(dim=1, p=2, q=1, reduction="none", weight=-0.5, spatial_dims=2,
                                               construction="freudenthal"),
    "BettiLoss": gpuph.nn.BettiLoss(dim=1, k=1, p=2, reduction="sum", weight=0.5, superlevel=False, spatial_dims=2),
}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", sorted(MODULES))
def test_nn_modules_equal_cpu(device, name):
    x = images((3, 1, 9, 8), seed=13)
    module = MODULES[name].to(device)  # no parameters or buffers; .to must not fail
    check_against_cpu(module, x, device, exact=name.startswith("CubicalPersistence"))


@pytest.mark.parametrize("device", DEVICES)
def test_nn_several_forwards_share_one_backward(device):
    topo = gpuph.nn.TopologyLoss(dim=0, i0=2, spatial_dims=2)
    x = images((2, 1, 8, 8), seed=14)

    def two(v):
        return topo(v) + 2 * topo(v.flip(-1))

    check_against_cpu(two, x, device, exact=False)


# ---------------------------------------------------------------------------------------------- lower star
def torus_faces(m: int, n: int) -> torch.Tensor:
    """A triangulated torus (m x n grid with wrap-around; m, n >= 3): H1 of rank 2, H2 of rank 1."""
    faces = []
    for i in range(m):
        for j in range(n):
            a, b = i * n + j, i * n + (j + 1) % n
            c, d = ((i + 1) % m) * n + j, ((i + 1) % m) * n + (j + 1) % n
            faces += [[a, b, d], [a, c, d]]
    return torch.tensor(faces)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("maxdim", [0, 1, 2])
@pytest.mark.parametrize("sublevel", [True, False])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
def test_lower_star_equals_cpu(device, maxdim, sublevel, dtype):
    faces = torus_faces(5, 4)
    x = torch.rand(2, 3, 20, generator=gen(15)).to(dtype)
    fn = lambda v: gpuph.lower_star_persistence(v, faces, maxdim=maxdim, sublevel=sublevel)
    got, _ = check_against_cpu(fn, x, device, exact=True)
    assert got.batch_shape == (2, 3)
    if maxdim == 2:
        assert int(((got.dim == 2) & (got.death_index < 0)).sum()) == 6  # one essential H2 class per function


@pytest.mark.parametrize("device", DEVICES)
def test_lower_star_with_device_simplices_and_a_closed_complex(device):
    faces = torus_faces(4, 5)
    x = torch.rand(4, 20, generator=gen(16))
    want = gpuph.lower_star_persistence(x, faces, maxdim=1)
    cx = prepare_complex(faces.to(device), 20, max_dim=3)  # simplices on the device are read on the host
    for simplices in (faces.to(device), cx, [f.to(device) for f in faces]):
        got = gpuph.lower_star_persistence(x.to(device), simplices, maxdim=1)
        assert_on(got, device)
        assert_same(got, want)


# ---------------------------------------------------------------------------------------------- compat layers
def _tuples_equal(got, want, device):
    (dg, sg), (dw, sw) = got, want
    assert sg is sw and len(dg) == len(dw)
    for a, b in zip(dg, dw):
        assert on(a, device) and torch.equal(a.detach().cpu(), b.detach())


def _tuple_sum(out):
    dgms, _ = out
    return torch.stack([weighted_sum(d, k) for k, d in enumerate(dgms)]).sum()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("complex_", ["freudenthal", "grid", "delaunay"])
@pytest.mark.parametrize("maxdim", [1, 2])
def test_levelset2d_equals_cpu(device, complex_, maxdim):
    layer = LevelSetLayer2D(size=(6, 5), maxdim=maxdim, sublevel=False, complex=complex_)
    one = images((5, 6), seed=17)
    got, want = check_against_cpu(lambda v: _tuple_sum(layer(v)), one, device, exact=False)
    _tuples_equal(layer(one.to(device)), layer(one), device)
    batch = images((3, 5, 6), seed=18)
    check_against_cpu(layer, batch, device, exact=True)


@pytest.mark.parametrize("device", DEVICES)
def test_levelset1d_equals_cpu(device):
    layer = LevelSetLayer1D(size=12, sublevel=True)
    x = torch.rand(4, 12, generator=gen(19))
    check_against_cpu(layer, x, device, exact=True)
    check_against_cpu(lambda v: _tuple_sum(layer(v)), x[0], device, exact=False)
    _tuples_equal(layer(x[1].to(device)), layer(x[1]), device)


@pytest.mark.parametrize("device", DEVICES)
def test_levelset_layer_on_complexes_equals_cpu(device):
    faces = torus_faces(4, 4)
    sc = topologylayer.SimplicialComplex()
    for f in faces:
        sc.append(f.to(device))  # a simplex given as a device tensor
    x = torch.rand(3, 16, generator=gen(20))
    for cpx in (sc, faces.tolist(), faces.to(device), [faces.to(device)]):
        layer = LevelSetLayer(cpx, maxdim=2, sublevel=False)
        check_against_cpu(layer, x, device, exact=True)
        check_against_cpu(lambda v, layer=layer: _tuple_sum(layer(v)), x[0], device, exact=False)


@pytest.mark.parametrize("device", DEVICES)
def test_compat_functional_equals_cpu(device):
    from gpuph.compat.topologylayer.util.construction import unique_simplices

    sc = unique_simplices(torus_faces(3, 4).to(device), 2)  # faces given as a device tensor
    f = torch.rand(12, generator=gen(21))

    def forward(v):
        sc.extendFloat(v)
        return (tuple(topologylayer.functional.persistenceForwardHom(sc, 2)), True)

    check_against_cpu(lambda v: _tuple_sum(forward(v)), f, device, exact=False)
    _tuples_equal(forward(f.to(device)), forward(f), device)
    apply = lambda v: (topologylayer.functional.SubLevelSetDiagram.apply(sc, v, 1), True)
    check_against_cpu(lambda v: _tuple_sum(apply(v)), f, device, exact=False)
    _tuples_equal(apply(f.to(device)), apply(f), device)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("layer", [RipsLayer(14, maxdim=1), RipsLayer(14, maxdim=0), AlphaLayer(maxdim=1)],
                         ids=["rips1", "rips0", "alpha1"])
def test_point_cloud_layers_equal_cpu(device, layer):
    x = dyadic_points((3, 14, 2), seed=22)
    check_against_cpu(layer, x, device, exact=True)
    check_against_cpu(lambda p: _tuple_sum(layer(p)), x[0], device, exact=False)
    _tuples_equal(layer(x[0].to(device)), layer(x[0]), device)


@pytest.mark.parametrize("device", DEVICES)
def test_compat_features_and_process_helpers_equal_cpu(device):
    x = images((3, 6, 6), seed=23)
    layer = LevelSetLayer2D(size=(6, 6), sublevel=False)
    for feature in (SumBarcodeLengths(0), TopKBarcodeLengths(1, 2)):
        check_against_cpu(lambda v, feature=feature: feature(layer(v)), x, device, exact=False)
        check_against_cpu(lambda v, feature=feature: feature(layer(v)), x[0], device, exact=False)
    got, want = layer(x.to(device)), layer(x)
    for helper in (remove_filler, remove_zero_bars, lambda d: remove_infinite_bars(d, False)):
        assert_same(helper(got), helper(want))
        rows = torch.tensor([[0.0, 1.0], [2.0, 2.0], [math.inf, 3.0], [4.0, -math.inf]])
        out = helper(rows.to(device))
        assert on(out, device) and torch.equal(out.cpu(), helper(rows))
    to_tuples = topologylayer.util.diagrams_to_tuples
    for one_got, one_want in zip(to_tuples(got), to_tuples(want)):
        _tuples_equal(one_got, one_want, device)


@pytest.mark.parametrize("device", DEVICES)
def test_strict_deterministic_mode(device):
    """With ``torch.use_deterministic_algorithms(True)`` (strict: an op without a deterministic version raises), the
    user's paths run on the device: cubical diagrams (2D, and 3D with H1), the paper's loss and its backward, a
    Wasserstein distance, Rips and weak Alpha with their backward. Two runs give the same bits, and the same values
    as outside the mode (diagrams exactly, sums within TOL)."""

    def run_all():
        x = images((4, 12, 12), seed=31).to(device).requires_grad_()
        v = images((2, 7, 6, 5), seed=32).to(device)
        p = dyadic_points((2, 12, 2), seed=33).to(device).requires_grad_()
        d2 = gpuph.cubical_persistence(x)
        d3 = gpuph.cubical_persistence(v)
        loss = losses.persistence_energy(d2, dim=0, p=1, q=0, i0=2)
        w = wasserstein_distance(d2, gpuph.cubical_persistence(x.detach().flip(-1)), dim=0).sum()
        rips = gpuph.rips_persistence(p)
        alpha = gpuph.weak_alpha_persistence(p)
        cloud = rips.finite().lifetimes().sum() + alpha.finite().lifetimes().sum()
        (loss + w).backward()
        cloud.backward()
        return [d2, d3, rips, alpha], torch.stack([loss, w, cloud]).detach(), x.grad, p.grad

    old = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())
    torch.use_deterministic_algorithms(True)
    try:
        first, second = run_all(), run_all()
    finally:
        torch.use_deterministic_algorithms(old[0], warn_only=old[1])
    free = run_all()
    for dgm_a, dgm_b, dgm_free in zip(first[0], second[0], free[0]):
        assert_on(dgm_a, device)
        assert_same(dgm_a, dgm_b)
        assert_same(dgm_a, dgm_free)
    for a, b, c in zip(first[1:], second[1:], free[1:]):
        assert on(a, device) and torch.equal(a, b)
        torch.testing.assert_close(a, c, **TOL[a.dtype])
