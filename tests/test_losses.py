"""gpuph.losses: persistence_energy and betti_loss against direct NumPy implementations of their formulas."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import sidon_values
from synthetic_diagrams import make_diagrams, random_images

import gpuph
from gpuph.losses import betti_loss, closed_pairs, persistence_energy, rank_in_image


# ---------------------------------------------------------------------------------------------- NumPy references
def _ranked(pts: np.ndarray, superlevel: bool, end: float) -> tuple[np.ndarray, np.ndarray]:
    """Lifetimes and midpoints of one image's bars, essential ones closed at ``end``, ranked essential first (by
    their closed lifetimes), then lifetime descending; ties keep the input order (gpuph's tie-break, by birth index,
    in these fixtures)."""
    pts = np.asarray(pts, dtype=np.float64).reshape(-1, 2)
    essential = pts[:, 1] == (-np.inf if superlevel else np.inf)
    death = np.where(essential, end, pts[:, 1])
    life = np.abs(death - pts[:, 0])
    order = np.lexsort((np.where(essential, -life, -np.abs(pts[:, 1] - pts[:, 0])), ~essential))
    return life[order], ((death + pts[:, 0]) / 2)[order]


def energy_ref(images, dim, superlevel, ends, p, q, i0) -> np.ndarray:
    out = []
    for b, by_dim in enumerate(images):
        life, mid = _ranked(by_dim.get(dim, np.zeros((0, 2))), superlevel, ends[b])
        out.append(float(np.sum(life[i0 - 1 :] ** p * mid[i0 - 1 :] ** q)))
    return np.array(out)


def betti_ref(images, dim, superlevel, ends, k, p) -> np.ndarray:
    out = []
    for b, by_dim in enumerate(images):
        life, _ = _ranked(by_dim.get(dim, np.zeros((0, 2))), superlevel, ends[b])
        out.append(float(np.sum(life[k:] ** p) - np.sum(life[:k] ** p)))
    return np.array(out)


def _ends(images, superlevel, rng) -> np.ndarray:
    """A last filtration value per image beyond all its finite values."""
    out = []
    for by_dim in images:
        vals = np.concatenate([v[np.isfinite(v)] for v in by_dim.values()] + [np.zeros(1)])
        out.append(vals.min() - rng.random() if superlevel else vals.max() + rng.random())
    return np.array(out)


def _cubical_images(dgm: gpuph.Diagrams) -> list[dict[int, np.ndarray]]:
    return [dict(enumerate(per)) for per in dgm.to_numpy()]


# ---------------------------------------------------------------------------------------------- values
@pytest.mark.parametrize("superlevel", [True, False], ids=["super", "sub"])
@pytest.mark.parametrize("integer", [False, True], ids=["float", "ties"])
@pytest.mark.parametrize("p,q", [(1, 0), (2, 0), (0.5, 0), (0, 0), (1, 1), (2, 2), (3, 1)])
def test_energy_matches_numpy_on_random_diagrams(superlevel, integer, p, q):
    rng = np.random.default_rng(hash((superlevel, integer, p, q)) % 2**32)
    images = random_images(rng, 9, superlevel, integer=integer)
    images.append({0: np.zeros((0, 2)), 1: np.zeros((0, 2))})  # an empty image
    images.append({0: np.array([[3.0, -np.inf if superlevel else np.inf]])})  # only an essential class
    ends = _ends(images, superlevel, rng)
    dgm = make_diagrams(images, superlevel, ends)
    for dim in (0, 1):
        for i0 in (1, 2, 3, 40):  # 40: beyond every image's count
            got = persistence_energy(dgm, dim, p=p, q=q, i0=i0, reduction="none")
            want = energy_ref(images, dim, superlevel, ends, p, q, i0)
            np.testing.assert_allclose(got.numpy(), want, rtol=1e-12, atol=1e-12)
            assert got.shape == (len(images),) and got.dtype == torch.float64


@pytest.mark.parametrize("superlevel", [True, False], ids=["super", "sub"])
def test_energy_q0_does_not_depend_on_the_order_of_tied_bars(superlevel):
    """With q = 0 only the multiset of lifetimes counts: reversing the input order of tied bars changes nothing."""
    rng = np.random.default_rng(3)
    images = random_images(rng, 6, superlevel, integer=True)
    ends = _ends(images, superlevel, rng)
    flipped = [{k: v[::-1].copy() for k, v in im.items()} for im in images]
    for i0 in (1, 2, 4):
        a = persistence_energy(make_diagrams(images, superlevel, ends), 0, p=1.5, i0=i0, reduction="none")
        b = persistence_energy(make_diagrams(flipped, superlevel, ends), 0, p=1.5, i0=i0, reduction="none")
        torch.testing.assert_close(a, b, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("superlevel", [True, False], ids=["super", "sub"])
@pytest.mark.parametrize("construction", ["V", "T"])
def test_energy_and_betti_on_cubical_diagrams(superlevel, construction):
    x = torch.rand(5, 9, 11, dtype=torch.float64, generator=torch.Generator().manual_seed(5 + superlevel))
    dgm = gpuph.cubical_persistence(x, superlevel=superlevel, construction=construction)
    images = _cubical_images(dgm)
    ends = dgm.filtration_end.numpy()
    np.testing.assert_array_equal(ends, (x.amin((1, 2)) if superlevel else x.amax((1, 2))).numpy())
    for dim in (0, 1):
        for p, q, i0 in [(1, 0, 1), (1, 0, 2), (2, 1, 1), (0.5, 2, 3)]:
            got = persistence_energy(dgm, dim, p=p, q=q, i0=i0, reduction="none")
            # The sums run in another order than the reference's: a value near 0 may differ by an ulp of the terms.
            np.testing.assert_allclose(
                got.numpy(), energy_ref(images, dim, superlevel, ends, p, q, i0), rtol=1e-12, atol=1e-14
            )
        for k in (0, 1, 3):
            got = betti_loss(dgm, dim, k, reduction="none")
            np.testing.assert_allclose(
                got.numpy(), betti_ref(images, dim, superlevel, ends, k, 1.0), rtol=1e-12, atol=1e-14
            )


@pytest.mark.parametrize("superlevel", [True, False], ids=["super", "sub"])
@pytest.mark.parametrize("integer", [False, True], ids=["float", "ties"])
@pytest.mark.parametrize("p", [1, 2, 0.5])
def test_betti_matches_numpy_on_random_diagrams(superlevel, integer, p):
    rng = np.random.default_rng(hash((superlevel, integer, p, "betti")) % 2**32)
    images = random_images(rng, 9, superlevel, integer=integer)
    images.append({0: np.zeros((0, 2))})
    images.append({0: np.array([[1.0, -np.inf if superlevel else np.inf]])})
    ends = _ends(images, superlevel, rng)
    dgm = make_diagrams(images, superlevel, ends)
    for dim in (0, 1):
        for k in (0, 1, 2, 40):
            got = betti_loss(dgm, dim, k, p=p, reduction="none")
            np.testing.assert_allclose(got.numpy(), betti_ref(images, dim, superlevel, ends, k, p), atol=1e-12)


def test_betti_is_energy_combination():
    """betti(k) = E(p,0,k+1) - (E(p,0,1) - E(p,0,k+1)): the documented identity."""
    rng = np.random.default_rng(5)
    images = random_images(rng, 7, True)
    dgm = make_diagrams(images, True, _ends(images, True, rng))
    for k in (0, 1, 3):
        tail = persistence_energy(dgm, 0, p=2, i0=k + 1, reduction="none")
        whole = persistence_energy(dgm, 0, p=2, i0=1, reduction="none")
        torch.testing.assert_close(betti_loss(dgm, 0, k, p=2, reduction="none"), tail - (whole - tail))


# ---------------------------------------------------------------------------------------------- batching, reductions
@pytest.mark.parametrize("fn", [
    lambda d, r: persistence_energy(d, 0, p=2, q=1, i0=2, reduction=r),
    lambda d, r: persistence_energy(d, 1, p=1, reduction=r),
    lambda d, r: betti_loss(d, 0, 1, reduction=r),
], ids=["energy0", "energy1", "betti"])
def test_batch_equals_per_image_and_reductions(fn):
    x = torch.randn(6, 8, 8, dtype=torch.float64)
    dgm = gpuph.cubical_persistence(x)
    per_image = fn(dgm, "none")
    alone = torch.stack([fn(dgm.image(b), "none")[0] for b in range(6)])
    torch.testing.assert_close(per_image, alone, rtol=0, atol=0)
    torch.testing.assert_close(fn(dgm, "mean"), per_image.mean())
    torch.testing.assert_close(fn(dgm, "sum"), per_image.sum())
    assert fn(dgm, "mean").shape == ()


def test_empty_batch_and_empty_diagrams():
    empty = make_diagrams([], True, np.zeros(0))
    for r in ("mean", "sum"):
        assert persistence_energy(empty, 0, reduction=r).item() == 0.0
        assert betti_loss(empty, 0, 2, reduction=r).item() == 0.0
    assert persistence_energy(empty, 0, reduction="none").shape == (0,)
    nothing = make_diagrams([{0: np.zeros((0, 2))}] * 3, True, np.zeros(3))
    assert torch.equal(persistence_energy(nothing, 0, reduction="none"), torch.zeros(3, dtype=torch.float64))
    assert torch.equal(betti_loss(nothing, 0, 1, reduction="none"), torch.zeros(3, dtype=torch.float64))


def test_helpers_rank_and_closed_pairs():
    x = torch.randn(4, 7, 7, dtype=torch.float64)
    dgm = gpuph.cubical_persistence(x)
    rank = rank_in_image(dgm)
    for b in range(4):
        assert torch.equal(rank[dgm.batch == b], torch.arange(int((dgm.batch == b).sum())))
    closed = closed_pairs(dgm)
    ess = dgm.death_index < 0
    assert torch.equal(closed[ess, 1], dgm.filtration_end[dgm.batch[ess]])
    assert torch.equal(closed[~ess], dgm.pairs[~ess])
    assert torch.isinf(dgm.pairs[ess, 1]).all()  # the caller's diagrams are not modified


# ---------------------------------------------------------------------------------------------- gradients
@pytest.mark.parametrize("superlevel", [True, False], ids=["super", "sub"])
@pytest.mark.parametrize("fn", [
    lambda d: persistence_energy(d, 0, p=1, q=0, i0=2, reduction="sum"),
    lambda d: persistence_energy(d, 0, p=2, q=1, i0=1, reduction="mean"),
    lambda d: persistence_energy(d, 1, p=1.5, q=2, i0=1, reduction="sum"),
    lambda d: betti_loss(d, 0, 2, p=2, reduction="sum"),
    lambda d: betti_loss(d, 1, 1, reduction="mean"),
], ids=["E(1,0,2)", "E(2,1,1)", "E1(1.5,2,1)", "betti0", "betti1"])
def test_gradcheck_on_tie_free_images(superlevel, fn):
    """Sidon values: no ties between values or lifetimes, so the pairing and the ranks are locally constant."""
    x = sidon_values((2, 5, 4), seed=11).requires_grad_()
    f = lambda t: fn(gpuph.cubical_persistence(t, superlevel=superlevel))
    assert torch.autograd.gradcheck(f, (x,), eps=1e-6, atol=1e-6)


def test_gradient_reaches_only_the_summed_bars():
    """E(1,0,2) on superlevel H0: +-1 at the birth and death pixels of every finite bar except the first."""
    x = sidon_values((2, 7, 7), seed=4).requires_grad_()
    dgm = gpuph.cubical_persistence(x, dims=0)
    persistence_energy(dgm, 0, p=1, q=0, i0=2, reduction="sum").backward()
    want = torch.zeros(2 * 49, dtype=torch.float64)
    keep = rank_in_image(dgm) >= 1
    fin = keep & (dgm.death_index >= 0)
    want.index_add_(0, dgm.batch[fin] * 49 + dgm.birth_index[fin], torch.ones(int(fin.sum()), dtype=torch.float64))
    want.index_add_(0, dgm.batch[fin] * 49 + dgm.death_index[fin], -torch.ones(int(fin.sum()), dtype=torch.float64))
    assert torch.equal(x.grad.reshape(-1), want)


@pytest.mark.parametrize("p", [0.5, 1.0, 2.0])
def test_constant_image_has_zero_length_essential_bar_without_nan(p):
    x = torch.full((2, 5, 5), 0.25, dtype=torch.float64, requires_grad=True)
    dgm = gpuph.cubical_persistence(x, dims=0)
    e = persistence_energy(dgm, 0, p=p, i0=1, reduction="sum")
    b = betti_loss(dgm, 0, 1, p=p, reduction="sum")
    assert e.item() == 0.0 and b.item() == 0.0
    (e + b).backward()
    assert torch.isfinite(x.grad).all()
    assert persistence_energy(dgm, 0, p=0, i0=1, reduction="sum").item() == 2.0  # p = 0 counts bars


@pytest.mark.parametrize("q", [0.5, -1.0, 2.0])
@pytest.mark.parametrize("value", [0.0, 0.25])
def test_zero_length_bar_adds_nothing_and_no_gradient_through_its_midpoint(q, value):
    """The closed essential bar of a constant image, at midpoint 0 too (where pow's derivative is infinite for
    q < 1, and 0 ** q infinite for q < 0): for p > 0 it adds 0 and no NaN reaches the gradient; for p = 0 (counting)
    it adds its midpoint factor, still without gradient. The other image's terms are unchanged."""
    x = torch.rand(2, 5, 5, dtype=torch.float64) + 1
    x[1] = value
    x.requires_grad_()
    dgm = gpuph.cubical_persistence(x, dims=0)
    other = gpuph.cubical_persistence(x.detach()[:1], dims=0)
    for p in (1.0, 0.5, 0.0):
        per_image = persistence_energy(dgm, 0, p=p, q=q, i0=1, reduction="none")
        assert per_image[1].item() == (torch.tensor(value).pow(q).item() if p == 0 else 0.0)
        assert per_image[0].item() == persistence_energy(other, 0, p=p, q=q, i0=1).item()
        (grad,) = torch.autograd.grad(per_image[0] + per_image[1], x, retain_graph=True)
        assert torch.isfinite(grad).all() and not grad[1].any() and grad[0].any()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_losses_add_up_in_float32(dtype):
    """Sums over an image's bars accumulate in float32 and come back in the diagrams' dtype, as torch.sum does: in
    bfloat16 itself 499 unit bars would add up to 256."""
    x = torch.tensor([0.0, 1.0] * 500).reshape(1, 1000)
    half, full = gpuph.cubical_persistence(x.to(dtype)), gpuph.cubical_persistence(x)
    for fn in (
        lambda d: persistence_energy(d, 0, i0=2),
        lambda d: persistence_energy(d, 0, p=2, q=1, i0=1),
        lambda d: betti_loss(d, 0, 1),
        lambda d: gpuph.barcode_features.sum_barcode_lengths(d, 0),
        lambda d: gpuph.barcode_features.partial_sum_barcode_lengths(d, 0, 1),
        lambda d: gpuph.barcode_features.barcode_poly_feature(d, 0, 2, 1),
    ):
        got, want = fn(half), fn(full)
        assert got.dtype == dtype and torch.equal(got, want.to(dtype)), (got, want)


@pytest.mark.parametrize("superlevel", [True, False], ids=["super", "sub"])
@pytest.mark.parametrize("value", [np.inf, -np.inf], ids=["+inf", "-inf"])
def test_constant_infinite_image_has_zero_length_essential_bar_without_nan(superlevel, value):
    # Its essential class is closed at its own infinite birth: inf - inf would be NaN, and one such image would
    # make the whole batch's mean NaN. It is a bar of length 0, as on a finite constant image.
    x = torch.rand(3, 4, 5, dtype=torch.float64)
    x[1] = value
    x.requires_grad_()
    dgm = gpuph.cubical_persistence(x, superlevel=superlevel)
    finite = gpuph.cubical_persistence(x.detach()[[0, 2]], superlevel=superlevel)
    for fn, zero_length in (
        (lambda d, r: persistence_energy(d, 0, i0=1, reduction=r), 0.0),
        (lambda d, r: persistence_energy(d, 0, p=2, q=1, i0=1, reduction=r), 0.0),
        (lambda d, r: persistence_energy(d, 0, p=0, i0=1, reduction=r), 1.0),  # p = 0 counts the bar
        (lambda d, r: betti_loss(d, 0, 1, p=1.5, reduction=r), 0.0),
        (lambda d, r: betti_loss(d, 0, 0, reduction=r), 0.0),
    ):
        per_image = fn(dgm, "none")
        assert per_image[1].item() == zero_length
        # Equal up to the last bit of pow (p = 1.5): its vectorised and scalar loops may round an element apart,
        # and an element's position in the tensor differs between the two batches (5 in 2000 random batches).
        torch.testing.assert_close(per_image[[0, 2]].detach(), fn(finite, "none"), rtol=1e-14, atol=1e-14)
        x.grad = None
        fn(gpuph.cubical_persistence(x, superlevel=superlevel), "mean").backward()
        assert torch.isfinite(x.grad).all() and torch.all(x.grad[1] == 0)


def _relabelled_losses(dgm) -> list[float]:
    return [persistence_energy(dgm, k, i0=i0).item() for k in dgm.computed_dims for i0 in (1, 2, 3)] + [
        betti_loss(dgm, k, c).item() for k in dgm.computed_dims for c in (0, 1, 2)
    ]


@pytest.mark.parametrize("superlevel", [True, False], ids=["super", "sub"])
def test_several_essential_classes_rank_by_closed_lifetime_whatever_the_numbering(superlevel):
    """A complex with several essential classes (lower-star on disconnected complexes, Rips below a threshold):
    they rank by their lifetimes once closed at the filtration's end, so renumbering the same filtered complex
    changes no loss (ranked by birth index, `i0` and `k` skipped or rewarded an arbitrary one)."""
    rng = np.random.default_rng(4)
    # Three paths and two hollow triangles: five H0 and two H1 essential classes.
    edges = [[0, 1], [1, 2], [3, 4], [5, 6], [6, 7], [7, 5], [8, 9], [9, 10], [10, 8], [11, 12]]
    f = rng.permutation(13).astype(np.float64)
    want = None
    for _ in range(6):
        perm = rng.permutation(13)  # vertex v becomes perm[v]
        g = np.empty(13)
        g[perm] = f
        dgm = gpuph.lower_star_persistence(torch.from_numpy(g), perm[np.array(edges)].tolist(), maxdim=1,
                                           sublevel=not superlevel)
        assert int((dgm.death_index < 0).sum()) == 7
        got = _relabelled_losses(dgm)
        want = got if want is None else want
        assert got == want


def test_several_essential_rips_classes_rank_by_closed_lifetime_whatever_the_numbering():
    t = np.linspace(0, 2 * np.pi, 13)[:-1]
    circle = np.c_[np.cos(t), np.sin(t)]
    clouds = [circle, 1.6 * circle + [10, 0], 1.3 * circle + [0, 10]]
    rng = np.random.default_rng(5)
    want = None
    for _ in range(4):
        pts = np.concatenate([clouds[i] for i in rng.permutation(3)])[rng.permutation(36)]
        dgm = gpuph.rips_persistence(torch.from_numpy(pts), max_edge_length=1.6)
        assert int(((dgm.death_index < 0) & (dgm.dim == 1)).sum()) == 3
        got = _relabelled_losses(dgm)
        want = got if want is None else want
        assert got == pytest.approx(want, rel=1e-12, abs=1e-12)


def test_a_dimension_not_computed_is_an_error_not_a_zero_loss():
    x = torch.rand(2, 5, 6)
    only_h0 = gpuph.cubical_persistence(x, dims=0)
    for k in (1, 2, 7):  # not computed; impossible on 2D grids; absurd
        for fn in (persistence_energy, lambda d, k: betti_loss(d, k, 1), gpuph.barcode_features.sum_barcode_lengths):
            with pytest.raises(ValueError, match=f"no diagram of dimension {k}: these diagrams hold only"):
                fn(only_h0, k)
    full = gpuph.cubical_persistence(x)
    assert torch.equal(persistence_energy(only_h0, 0, i0=2), persistence_energy(full, 0, i0=2))
    with pytest.raises(ValueError, match="no diagram of dimension 0"):
        persistence_energy(full.select(dim=1), 0)
    rips = gpuph.rips_persistence(torch.rand(2, 9, 2), dims=0)
    with pytest.raises(ValueError, match="no diagram of dimension 1"):
        betti_loss(rips, 1, 1)


@pytest.mark.parametrize("superlevel", [True, False], ids=["super", "sub"])
def test_other_rows_with_infinite_values_leave_no_nan(superlevel):
    """The losses mask the rows they do not sum instead of selecting the others (no synchronisation): rows of the
    other dimension whose values are infinite (an image with +-inf pixels) must change neither the value nor the
    gradient, which equal those of the selected rows alone."""
    g = torch.Generator().manual_seed(8)
    x = torch.rand(3, 8, 9, generator=g, dtype=torch.float64)
    # Pixels entering first at +-inf: H0 holds infinite bars, H1 none.
    x[0, 2, 3] = x[1, 5, 5] = x[0, 6, 1] = x[2, 1, 1] = np.inf if superlevel else -np.inf
    x.requires_grad_()
    dgm = gpuph.cubical_persistence(x, superlevel=superlevel)
    assert not torch.isfinite(closed_pairs(dgm)[dgm.dim == 0]).all()
    for fn in (
        lambda d: persistence_energy(d, 1, p=2, q=1, i0=1, reduction="sum"),
        lambda d: persistence_energy(d, 1, p=0.5, i0=2, reduction="sum"),
        lambda d: betti_loss(d, 1, 2, p=1.5, reduction="sum"),
    ):
        x.grad = None
        got = fn(gpuph.cubical_persistence(x, superlevel=superlevel))
        got.backward()
        grad = x.grad.clone()
        x.grad = None
        want = fn(gpuph.cubical_persistence(x, superlevel=superlevel).select(dim=1))
        want.backward()
        assert torch.isfinite(got) and torch.equal(got, want)
        assert torch.isfinite(grad).all() and torch.equal(grad, x.grad)
        assert grad.abs().sum() > 0


def test_float32_and_device_of_result():
    x = torch.rand(3, 6, 6)
    dgm = gpuph.cubical_persistence(x)
    for v in (persistence_energy(dgm, 0, reduction="none"), betti_loss(dgm, 0, 1, reduction="none")):
        assert v.dtype == torch.float32 and v.device == x.device


# ---------------------------------------------------------------------------------------------- errors
def test_errors():
    dgm = gpuph.cubical_persistence(torch.rand(2, 5, 5))
    bad = [
        lambda: persistence_energy(dgm, 0, reduction="max"),
        lambda: persistence_energy(dgm, 0, i0=0),
        lambda: persistence_energy(dgm, 0, i0=1.5),
        lambda: persistence_energy(dgm, -1),
        lambda: persistence_energy(dgm, 0, p=float("inf")),
        lambda: persistence_energy(dgm, 0, q=float("nan")),
        lambda: betti_loss(dgm, 0, -1),
        lambda: betti_loss(dgm, 0, 1.5),
        lambda: betti_loss(dgm, 0, True),
        lambda: betti_loss(dgm, 0, 1, reduction="avg"),
    ]
    for call in bad:
        with pytest.raises(ValueError, match="gpuph"):
            call()
    no_end = make_diagrams([{0: np.array([[1.0, -np.inf], [0.5, 0.0]])}], True, None)
    with pytest.raises(ValueError, match="filtration_end"):
        persistence_energy(no_end, 0, i0=1)
    with pytest.raises(ValueError, match="filtration_end"):
        betti_loss(no_end, 0, 1)
    assert persistence_energy(no_end, 0, i0=2).item() == 0.5  # skipping the essential class needs no end
