"""gpuph.distances against GUDHI (Wasserstein with the POT backend, bottleneck): random diagrams of different sizes,
points at infinity, identical and empty diagrams; gradients; pairwise matrices; errors."""

from __future__ import annotations

import itertools
import math
import warnings
from dataclasses import replace

import gudhi
import numpy as np
import pytest
import torch
from conftest import sidon_values
from gudhi.wasserstein import wasserstein_distance as gudhi_wasserstein
from hypothesis import given
from hypothesis import strategies as st
from synthetic_diagrams import make_diagrams, random_images, random_points

import gpuph
from gpuph.distances import bottleneck_distance, pairwise_wasserstein, wasserstein_distance

INF = math.inf
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


# ---------------------------------------------------------------------------------------------- oracles
def _gudhi_units(X: np.ndarray, superlevel: bool) -> np.ndarray:
    """GUDHI expects birth <= death: superlevel diagrams are compared negated (distances are invariant)."""
    X = np.asarray(X, dtype=np.float64).reshape(-1, 2)
    return -X if superlevel else X


def gudhi_w(X, Y, superlevel: bool, p: float, q: float) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Cardinality of essential parts differs"
        return float(gudhi_wasserstein(_gudhi_units(X, superlevel), _gudhi_units(Y, superlevel), order=p,
                                       internal_p=q))


def gudhi_b(X, Y, superlevel: bool) -> float:
    # e=0: GUDHI's exact algorithm (its default, e=None, allows a small multiplicative error: 1.016 for 1.0 on
    # X = 2 x (0, 2), Y = 2 x (0, 1), 2 x (0, 2), (0, 3)).
    return float(gudhi.bottleneck_distance(_gudhi_units(X, superlevel), _gudhi_units(Y, superlevel), e=0))


def exact_bottleneck(X: np.ndarray, Y: np.ndarray) -> float:
    """Bottleneck distance of two finite sublevel diagrams by an independent route: the least candidate cost t for
    which SciPy's assignment solver finds a perfect matching (X and Y each padded with diagonal copies of the
    other) that uses no cost above t. For small integer diagrams with many ties, where GUDHI's bottleneck is not
    always exact (it gives 2.0 for X = (0, 1), (0, 4) and Y = 2 x (0, 1), (0, 4), (0, 3), (-1, 2), whose
    bottleneck distance is 1.5)."""
    from scipy.optimize import linear_sum_assignment

    n, m = len(X), len(Y)
    cost = np.zeros((n + m, n + m))
    if n and m:
        cost[:n, :m] = np.abs(X[:, None, :] - Y[None, :, :]).max(2)
    cost[:n, m:] = ((X[:, 1] - X[:, 0]) / 2)[:, None]  # X's points to the diagonal
    cost[n:, :m] = ((Y[:, 1] - Y[:, 0]) / 2)[None, :]  # Y's points to the diagonal
    cost[n:, m:] = 0.0
    for t in np.unique(cost):
        rows, cols = linear_sum_assignment((cost > t).astype(np.float64))
        if not (cost[rows, cols] > t).any():
            return float(t)
    return 0.0


def _dim(images, b, k):
    return images[b].get(k, np.zeros((0, 2)))


def assert_close_with_inf(got, want, rtol=1e-9, atol=1e-12):
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    assert np.array_equal(np.isinf(got), np.isinf(want)), (got, want)
    fin = np.isfinite(want)
    np.testing.assert_allclose(got[fin], want[fin], rtol=rtol, atol=atol)


def with_infinite_points(rng, images, superlevel: bool):
    """Adds 0-2 points of each infinite kind ((-inf, y), (x, +inf), (-inf, +inf) in sublevel units) to H1, so that
    some image pairs have equal numbers of each kind and others do not."""
    s = -1.0 if superlevel else 1.0
    out = []
    for by_dim in images:
        extra = []
        for kind in range(3):
            for _ in range(int(rng.integers(0, 3))):
                v = rng.normal()
                extra.append([(-INF, v), (v, INF), (-INF, INF)][kind])
        pts = np.array(extra, dtype=np.float64).reshape(-1, 2) * s if extra else np.zeros((0, 2))
        out.append({**by_dim, 1: np.concatenate([by_dim.get(1, np.zeros((0, 2))), pts])})
    return out


def _two_batches(seed: int, superlevel: bool, B: int = 10, infinite: bool = True, integer: bool = False):
    rng = np.random.default_rng(seed)
    ia = random_images(rng, B, superlevel, max_points=14, integer=integer)
    ib = random_images(rng, B, superlevel, max_points=14, integer=integer)
    if infinite:
        ia, ib = with_infinite_points(rng, ia, superlevel), with_infinite_points(rng, ib, superlevel)
    return ia, ib


# ---------------------------------------------------------------------------------------------- values vs GUDHI
@pytest.mark.parametrize("superlevel", [True, False], ids=["super", "sub"])
@pytest.mark.parametrize("p", [1.0, 1.5, 2.0, 3.0])
@pytest.mark.parametrize("q", [1.0, 2.0, INF], ids=["q1", "q2", "qinf"])
def test_wasserstein_matches_gudhi_on_random_diagrams(superlevel, p, q):
    ia, ib = _two_batches(int(p * 10 + (q if q < INF else 9)) + 100 * superlevel, superlevel)
    a, b = make_diagrams(ia, superlevel), make_diagrams(ib, superlevel)
    for k in (0, 1):
        got = wasserstein_distance(a, b, k, p=p, internal_p=q)
        want = [gudhi_w(_dim(ia, i, k), _dim(ib, i, k), superlevel, p, q) for i in range(len(ia))]
        assert_close_with_inf(got.numpy(), want)
        assert got.shape == (len(ia),) and got.dtype == torch.float64


@pytest.mark.parametrize("superlevel", [True, False], ids=["super", "sub"])
@pytest.mark.parametrize("integer", [False, True], ids=["float", "ties"])
def test_bottleneck_matches_gudhi_on_random_diagrams(superlevel, integer):
    ia, ib = _two_batches(7 + superlevel + 2 * integer, superlevel, B=16, integer=integer)
    a, b = make_diagrams(ia, superlevel), make_diagrams(ib, superlevel)
    for k in (0, 1):
        got = bottleneck_distance(a, b, k)
        want = [gudhi_b(_dim(ia, i, k), _dim(ib, i, k), superlevel) for i in range(len(ia))]
        assert_close_with_inf(got.numpy(), want)


def _noisy_digits(n: int, seed: int, noise: float) -> torch.Tensor:
    data = np.load(gpuph.__path__[0] + "/data/mnist_sample.npz")["images"].astype(np.float64) / 255
    rng = np.random.default_rng(seed)
    return torch.from_numpy(data[rng.integers(0, len(data), n)] + noise * rng.random((n, 28, 28)))


@pytest.mark.parametrize("superlevel", [True, False], ids=["super", "sub"])
@pytest.mark.parametrize("noise", [0.0, 0.02], ids=["digits", "noisy"])
def test_distances_of_cubical_diagrams_match_gudhi(superlevel, noise):
    """MNIST digits (few bars) and noisy digits (~140 bars near the diagonal: one dense matching component)."""
    x, y = _noisy_digits(3, 1, noise), _noisy_digits(3, 2, noise)
    a = gpuph.cubical_persistence(x, superlevel=superlevel)
    b = gpuph.cubical_persistence(y, superlevel=superlevel)
    A, Bn = a.to_numpy(), b.to_numpy()
    for k in (0, 1):
        for p, q in [(1.0, INF), (2.0, 2.0), (2.5, 1.0)]:
            want = [gudhi_w(A[i][k], Bn[i][k], superlevel, p, q) for i in range(3)]
            assert_close_with_inf(wasserstein_distance(a, b, k, p=p, internal_p=q).numpy(), want)
        want = [gudhi_b(A[i][k], Bn[i][k], superlevel) for i in range(3)]
        assert_close_with_inf(bottleneck_distance(a, b, k).numpy(), want)


@given(
    st.lists(st.tuples(st.integers(-3, 3), st.integers(1, 4)), max_size=9),
    st.lists(st.tuples(st.integers(-3, 3), st.integers(1, 4)), max_size=9),
    st.sampled_from([1.0, 2.0, 3.0]),
    st.sampled_from([1.0, 2.0, INF]),
)
def test_integer_diagrams_with_many_ties_match_gudhi(xs, ys, p, q):
    """Small integer diagrams: many equal costs, so many optimal matchings; the value must still be the optimum
    (bottleneck: against an exact assignment, see exact_bottleneck)."""
    X = np.array([(b, b + life) for b, life in xs], dtype=np.float64).reshape(-1, 2)
    Y = np.array([(b, b + life) for b, life in ys], dtype=np.float64).reshape(-1, 2)
    a, b = make_diagrams([{0: X}], False), make_diagrams([{0: Y}], False)
    assert_close_with_inf([wasserstein_distance(a, b, 0, p=p, internal_p=q).item()], [gudhi_w(X, Y, False, p, q)])
    assert_close_with_inf([bottleneck_distance(a, b, 0).item()], [exact_bottleneck(X, Y)])


def test_exact_bottleneck_oracle_on_gudhis_counterexample():
    """The oracle's value where GUDHI's differs, checked by brute force over all matchings; gpuph agrees."""
    import itertools

    X = np.array([(0.0, 1.0), (0.0, 4.0)])
    Y = np.array([(0.0, 1.0), (0.0, 1.0), (0.0, 4.0), (0.0, 3.0), (-1.0, 2.0)])
    A = [tuple(x) for x in X] + [None] * len(Y)
    B = [tuple(y) for y in Y] + [None] * len(X)

    def cost(u, v):
        if u is None and v is None:
            return 0.0
        if u is None or v is None:
            w = u if v is None else v
            return (w[1] - w[0]) / 2
        return max(abs(u[0] - v[0]), abs(u[1] - v[1]))

    brute = min(max(cost(A[i], B[j]) for i, j in enumerate(perm)) for perm in itertools.permutations(range(len(A))))
    assert brute == exact_bottleneck(X, Y) == 1.5
    a, b = make_diagrams([{0: X}], False), make_diagrams([{0: Y}], False)
    assert bottleneck_distance(a, b, 0).item() == 1.5


def test_diagonal_points_with_both_coordinates_infinite_cost_nothing():
    """(+inf, +inf) / (-inf, -inf) (the essential class of an all-inf grid) lie on the diagonal, as in GUDHI."""
    X = np.array([[INF, INF], [0.0, 1.0], [-INF, -INF]])
    Y = np.array([[0.0, 1.5]])
    a, b = make_diagrams([{0: X}], False), make_diagrams([{0: Y}], False)
    assert_close_with_inf([wasserstein_distance(a, b, 0, p=2).item()], [gudhi_w(X, Y, False, 2, INF)])
    assert_close_with_inf([bottleneck_distance(a, b, 0).item()], [gudhi_b(X, Y, False)], atol=1e-300)


# ---------------------------------------------------------------------------------------------- special cases
@pytest.mark.parametrize("superlevel", [True, False], ids=["super", "sub"])
def test_identical_diagrams_are_at_distance_zero_with_finite_gradient(superlevel):
    x = torch.rand(4, 10, 10, dtype=torch.float64, requires_grad=True)
    a = gpuph.cubical_persistence(x, superlevel=superlevel)
    b = gpuph.cubical_persistence(x.detach().clone(), superlevel=superlevel)
    for k in (0, 1):
        for q in (1.0, 2.0, INF):
            a = gpuph.cubical_persistence(x, superlevel=superlevel)  # a fresh graph for each backward
            w = wasserstein_distance(a, b, k, p=2, internal_p=q)
            assert torch.equal(w, torch.zeros(4, dtype=torch.float64))
            w.sum().backward()
            assert torch.isfinite(x.grad).all()
        assert torch.equal(bottleneck_distance(a, b, k), torch.zeros(4, dtype=torch.float64))
        assert torch.equal(pairwise_wasserstein(a, b, k).diagonal(), torch.zeros(4, dtype=torch.float64))


@pytest.mark.parametrize("superlevel", [True, False], ids=["super", "sub"])
@pytest.mark.parametrize("p,q", [(1.0, INF), (2.0, 2.0), (3.0, 1.0)])
def test_empty_against_nonempty_is_the_total_persistence(superlevel, p, q):
    rng = np.random.default_rng(int(p * 7 + superlevel))
    X = random_points(rng, 11, superlevel)
    a = make_diagrams([{0: X}, {0: np.zeros((0, 2))}, {0: np.zeros((0, 2))}], superlevel)
    b = make_diagrams([{0: np.zeros((0, 2))}, {0: X}, {0: np.zeros((0, 2))}], superlevel)
    total = np.sum((np.abs(X[:, 1] - X[:, 0]) * 2 ** (1 / q - 1)) ** p) ** (1 / p)
    want = [total, total, 0.0]
    np.testing.assert_allclose(wasserstein_distance(a, b, 0, p=p, internal_p=q).numpy(), want, rtol=1e-12)
    assert_close_with_inf(want, [gudhi_w(_dim_of(a, i), _dim_of(b, i), superlevel, p, q) for i in range(3)])
    half = np.abs(X[:, 1] - X[:, 0]).max() / 2
    np.testing.assert_allclose(bottleneck_distance(a, b, 0).numpy(), [half, half, 0.0], rtol=1e-15)
    # An essential class against none: infinite.
    ess = make_diagrams([{0: np.array([[0.0, -INF if superlevel else INF]])}], superlevel)
    none = make_diagrams([{0: np.zeros((0, 2))}], superlevel)
    assert wasserstein_distance(ess, none, 0).item() == INF
    assert bottleneck_distance(none, ess, 0).item() == INF


def _dim_of(d: gpuph.Diagrams, b: int) -> np.ndarray:
    return d.to_numpy()[b][0]


def test_missing_dimension_and_empty_batch():
    # A dimension that was not computed (1 here), or that the grids cannot have (5), is an error, not a distance
    # of 0 between two "empty" diagrams; on either side.
    x = torch.rand(3, 6, 6, dtype=torch.float64)
    a = gpuph.cubical_persistence(x, dims=0)
    full = gpuph.cubical_persistence(x)
    for fn in (wasserstein_distance, bottleneck_distance, pairwise_wasserstein):
        for one, other, k in ((a, a, 1), (a, full, 1), (full, a, 1), (full, full, 5)):
            with pytest.raises(ValueError, match=f"no diagram of dimension {k}: these diagrams hold only"):
                fn(one, other, k)
        same = fn(a, full, 0)
        assert torch.all((same.diagonal() if same.dim() == 2 else same) == 0)
    e = gpuph.cubical_persistence(torch.rand(0, 6, 6))
    assert wasserstein_distance(e, e, 0).shape == (0,)
    assert bottleneck_distance(e, e, 0).shape == (0,)
    assert pairwise_wasserstein(e, a, 0).shape == (0, 3)
    assert pairwise_wasserstein(a, e, 0).shape == (3, 0)


def test_superlevel_equals_negated_sublevel():
    ia, ib = _two_batches(31, True)
    a, b = make_diagrams(ia, True), make_diagrams(ib, True)
    neg = lambda images: [{k: -v for k, v in im.items()} for im in images]
    na, nb = make_diagrams(neg(ia), False), make_diagrams(neg(ib), False)
    for k in (0, 1):
        torch.testing.assert_close(wasserstein_distance(a, b, k, p=1.5, internal_p=2),
                                   wasserstein_distance(na, nb, k, p=1.5, internal_p=2), rtol=1e-14, atol=0)
        torch.testing.assert_close(bottleneck_distance(a, b, k), bottleneck_distance(na, nb, k), rtol=0, atol=0)


# ---------------------------------------------------------------------------------------------- pairwise
@pytest.mark.parametrize("superlevel", [True, False], ids=["super", "sub"])
def test_pairwise_matches_gudhi_and_per_pair(superlevel):
    rng = np.random.default_rng(17 + superlevel)
    ia = with_infinite_points(rng, random_images(rng, 5, superlevel), superlevel)
    ib = with_infinite_points(rng, random_images(rng, 7, superlevel), superlevel)
    # Give one image of b the same essential counts as image 0 of a, so that some finite entries have essentials.
    ib[0] = {k: v.copy() for k, v in ia[0].items()}
    a, b = make_diagrams(ia, superlevel), make_diagrams(ib, superlevel)
    for k, p, q in [(0, 2.0, INF), (1, 1.0, 2.0), (1, 2.5, 1.0)]:
        got = pairwise_wasserstein(a, b, k, p=p, internal_p=q)
        assert got.shape == (5, 7)
        want = [[gudhi_w(_dim(ia, i, k), _dim(ib, j, k), superlevel, p, q) for j in range(7)] for i in range(5)]
        assert_close_with_inf(got.numpy(), want)
        assert np.isfinite(got.numpy()).any()
        # The same as wasserstein_distance on the image pairs, and the gradient path gives the same values.
        for j in range(5):
            aj = make_diagrams([ia[j]] * 7, superlevel)
            torch.testing.assert_close(got[j], wasserstein_distance(aj, b, k, p=p, internal_p=q), rtol=1e-13,
                                       atol=1e-13)
        grad_a = make_diagrams(ia, superlevel, requires_grad=True)
        torch.testing.assert_close(pairwise_wasserstein(grad_a, b, k, p=p, internal_p=q).detach(), got,
                                   rtol=1e-13, atol=1e-13)


def test_pairwise_on_digits_matches_gudhi():
    x, y = _noisy_digits(6, 3, 0.0), _noisy_digits(5, 4, 0.0)
    a, b = gpuph.cubical_persistence(x, dims=0), gpuph.cubical_persistence(y, dims=0)
    A, Bn = a.to_numpy(), b.to_numpy()
    want = [[gudhi_w(A[i][0], Bn[j][0], True, 2.0, INF) for j in range(5)] for i in range(6)]
    assert_close_with_inf(pairwise_wasserstein(a, b, 0, p=2).numpy(), want)


# ---------------------------------------------------------------------------------------------- gradients
def _with_pairs(d: gpuph.Diagrams, pairs: torch.Tensor) -> gpuph.Diagrams:
    return replace(d, pairs=pairs)


@pytest.mark.parametrize("superlevel", [True, False], ids=["super", "sub"])
@pytest.mark.parametrize("which", ["w1inf", "w2q2", "w3q1", "bottleneck", "pairwise"])
def test_gradcheck_through_the_matching(superlevel, which):
    """Generic float diagrams (no ties between costs): the optimal matching is locally constant."""
    rng = np.random.default_rng(5 + superlevel)
    ia = random_images(rng, 2, superlevel, max_points=4)
    ib = random_images(rng, 2, superlevel, max_points=4)
    for images in (ia, ib):  # equal essential counts so the values are finite
        for im in images:
            im[0] = np.concatenate([[[5.0, -INF] if superlevel else [-5.0, INF]], im[0][np.isfinite(im[0][:, 1])]])
    a, b = make_diagrams(ia, superlevel), make_diagrams(ib, superlevel)
    fns = {
        "w1inf": lambda x, y: wasserstein_distance(x, y, 0, p=1.0),
        "w2q2": lambda x, y: wasserstein_distance(x, y, 1, p=2.0, internal_p=2.0),
        "w3q1": lambda x, y: wasserstein_distance(x, y, 0, p=3.0, internal_p=1.0),
        "bottleneck": lambda x, y: bottleneck_distance(x, y, 0),
        "pairwise": lambda x, y: pairwise_wasserstein(x, y, 0, p=2.0),
    }
    fn = fns[which]
    pa, pb = a.pairs.clone().requires_grad_(), b.pairs.clone().requires_grad_()
    f = lambda s, t: fn(_with_pairs(a, s), _with_pairs(b, t))
    assert torch.isfinite(f(pa, pb)).all()
    assert torch.autograd.gradcheck(f, (pa, pb), eps=1e-7, atol=1e-6)
    if which in ("w2q2", "w3q1"):  # smooth ground costs (internal_p = inf has a kink on the diagonal's normal)
        assert torch.autograd.gradgradcheck(f, (pa, pb), eps=1e-7, atol=1e-6)


def test_gradient_reaches_the_images():
    x = torch.rand(3, 8, 8, dtype=torch.float64, requires_grad=True)
    y = torch.rand(3, 8, 8, dtype=torch.float64)

    def loss(x):
        a, b = gpuph.cubical_persistence(x), gpuph.cubical_persistence(y)
        return wasserstein_distance(a, b, 0, p=2.0).sum() + bottleneck_distance(a, b, 1).sum()

    loss(x).backward()
    assert x.grad.abs().sum() > 0 and torch.isfinite(x.grad).all()
    # torch.func transforms (whose tensors hide their storage from the host-side matching) give the same gradient.
    assert torch.equal(torch.func.grad(loss)(x.detach()), x.grad)
    h = torch.func.hessian(loss)(x.detach()).reshape(192, 192)
    assert torch.allclose(h, h.T) and bool(h.abs().sum() > 0)


@pytest.mark.parametrize("device", DEVICES)
def test_dtype_and_device(device):
    x = torch.rand(2, 7, 7, device=device)
    a = gpuph.cubical_persistence(x)
    b = gpuph.cubical_persistence(x.double().flip(-1))
    for out in (wasserstein_distance(a, b, 0), bottleneck_distance(a, b, 0), pairwise_wasserstein(a, b, 0)):
        assert out.dtype == torch.float64 and out.device == x.device
    assert wasserstein_distance(a, a, 0).dtype == torch.float32


@pytest.mark.parametrize("p, lifetime", [(20, 200.0), (10, 2e4), (40, 20.0)])
def test_float32_large_orders_do_not_overflow(p, lifetime):
    """The sums of p-th powers are taken in float64: in float32 they overflowed to inf (and a NaN gradient)."""
    X, Y = [(0.0, lifetime), (1.0, 3.0)], [(0.0, lifetime / 20)]
    a = make_diagrams([{0: np.array(X)}], superlevel=False, dtype=torch.float32, requires_grad=True)
    b = make_diagrams([{0: np.array(Y)}], superlevel=False, dtype=torch.float32)
    ref = gudhi_w(X, Y, False, p, INF)
    for out in (wasserstein_distance(a, b, 0, p=p), pairwise_wasserstein(a, b, 0, p=p).view(-1)):
        assert out.dtype == torch.float32
        np.testing.assert_allclose(out.detach().numpy(), [ref], rtol=1e-6)
    wasserstein_distance(a, b, 0, p=p).sum().backward()
    assert torch.isfinite(a.pairs.grad).all() and a.pairs.grad.abs().sum() > 0


@pytest.mark.parametrize("superlevel", [True, False], ids=["super", "sub"])
@pytest.mark.parametrize("exponent", [-700, -60, 60, 700])
@pytest.mark.parametrize(("p", "q"), [(1.0, INF), (2.0, 2.0), (7.5, 3.0), (30.0, INF)])
def test_distances_scale_with_the_diagrams_past_the_range_of_their_powers(superlevel, exponent, p, q):
    """W(c a, c b) = c W(a, b) for c a power of two (exact), also where the p-th powers of the scaled costs leave
    float64's range (2^700 squared overflows, 2^-60 to the 30th underflows); the gradient with respect to the
    scaled pairs equals the unscaled one. Essential points included."""
    ia, ib = _two_batches(11, superlevel, B=4)
    c = math.ldexp(1.0, exponent)
    scaled = lambda images: [{k: v * c for k, v in im.items()} for im in images]
    for grad in (False, True):
        a, b = make_diagrams(ia, superlevel, requires_grad=grad), make_diagrams(ib, superlevel)
        ca, cb = make_diagrams(scaled(ia), superlevel, requires_grad=grad), make_diagrams(scaled(ib), superlevel)
        for fn in (lambda x, y: wasserstein_distance(x, y, 1, p=p, internal_p=q),
                   lambda x, y: pairwise_wasserstein(x, y, 1, p=p, internal_p=q)):
            want, got = fn(a, b), fn(ca, cb)
            assert_close_with_inf(got.detach().numpy() / c, want.detach().numpy(), rtol=1e-12, atol=0)
            if grad:
                finite = torch.isfinite(want)
                (ga,) = torch.autograd.grad(want[finite].sum(), a.pairs)
                (gc,) = torch.autograd.grad(got[finite].sum(), ca.pairs)
                assert torch.isfinite(gc).all()
                torch.testing.assert_close(gc, ga, rtol=1e-9, atol=1e-12)


def _exact_wasserstein(X: np.ndarray, Y: np.ndarray, p: int) -> float:
    """W_p (max-norm ground) of two small finite sublevel diagrams in exact rational arithmetic: the least sum of
    p-th powers over every bijection between X plus Y's diagonal copies and Y plus X's."""
    from fractions import Fraction

    X = [tuple(map(Fraction, r)) for r in X]
    Y = [tuple(map(Fraction, r)) for r in Y]
    n, m = len(X), len(Y)
    to_diagonal = lambda r: ((r[1] - r[0]) / 2) ** p
    best = None
    for perm in itertools.permutations(range(n + m)):  # row i < n: X[i]; row n + j: Y[j]'s diagonal copy
        total = Fraction(0)
        for i, c in enumerate(perm):
            if i < n:
                if c < m:
                    total += max(abs(X[i][0] - Y[c][0]), abs(X[i][1] - Y[c][1])) ** p
                elif c - m == i:
                    total += to_diagonal(X[i])
                else:
                    break
            elif c < m:
                if c != i - n:
                    break
                total += to_diagonal(Y[c])
        else:
            best = total if best is None else min(best, total)
    # The root of a rational in float64 without overflow: scale by a power of two first.
    e = (best.numerator.bit_length() - best.denominator.bit_length()) // p
    return math.ldexp(float(best / Fraction(2) ** (e * p)) ** (1.0 / p), e) if best else 0.0


@pytest.mark.parametrize("p", [10, 30, 100, 1000])
def test_high_orders_on_close_diagrams_equal_the_exact_optimum(p):
    """Close diagrams at a high order: the optimum's p-th powers lie hundreds of orders of magnitude below those of
    the long bars (1e-3^30 against 1), beyond what an assignment in the values' units resolves; it is solved again
    in units of the distance. Before, W_30 of such diagrams came out many times W_10's (W_p falls with p)."""
    rng = np.random.default_rng(p)
    for trial in range(6):
        n = int(rng.integers(2, 4))
        X = np.sort(rng.random((n, 2)), 1)
        X[0] = (0.0, 1.0 + rng.random())  # a long bar: its power dwarfs the optimum's
        Y = np.sort(X + 1e-3 * rng.standard_normal(X.shape), 1)[: n - int(rng.integers(0, 2))]
        want = _exact_wasserstein(X, Y, p)
        a = make_diagrams([{0: X}], superlevel=False, requires_grad=True)
        b = make_diagrams([{0: Y}], superlevel=False)
        for grad in (False, True):
            with torch.set_grad_enabled(grad):
                got = [wasserstein_distance(a, b, 0, p=p), pairwise_wasserstein(a, b, 0, p=p).view(-1)]
            for g in got:
                np.testing.assert_allclose(g.detach().numpy(), [want], rtol=1e-12, err_msg=f"trial {trial}")


@pytest.mark.parametrize("p", [20, 50, 200])
def test_high_orders_with_points_competing_for_one_partner(p):
    """Three bars within 1e-6 of one bar of the other diagram: each point's nearest option is 1e-6 away, but two of
    them must go to the diagonal, so the distance (about 0.15) is far above that lower bound. The rescaled solves
    then try scales below the distance, where the capped costs must be recognised as such."""
    X = np.array([[0.0, 1.0], [0.2, 0.5], [0.2, 0.500001], [0.2 - 2e-6, 0.5]])
    Y = np.array([[0.0, 1.0 + 1e-9], [0.2, 0.5 + 3e-7]])
    a = make_diagrams([{0: X}], superlevel=False, requires_grad=True)
    b = make_diagrams([{0: Y}], superlevel=False)
    want = _exact_wasserstein(X, Y, p)
    for grad in (False, True):
        with torch.set_grad_enabled(grad):
            got = [wasserstein_distance(a, b, 0, p=p), pairwise_wasserstein(a, b, 0, p=p).view(-1)]
        for g in got:
            np.testing.assert_allclose(g.detach().numpy(), [want], rtol=1e-12)


def test_high_orders_where_every_power_underflows():
    """The longest bar exactly 1 (the first solve's unit; its cost to the diagonal 0.5^p) and p = 2000: every p-th
    power of the first solve underflows to 0, which must not read as a distance of 0."""
    rng = np.random.default_rng(3)
    X = np.sort(rng.random((40, 2)), 1)
    X[0] = (0.0, 1.0)
    Y = np.sort(X + 1e-4 * rng.standard_normal(X.shape), 1)
    Y[0] = (0.0, 1.0)
    a, b = make_diagrams([{0: X}], superlevel=False), make_diagrams([{0: Y}], superlevel=False)
    B = gudhi_b(X, Y, False)
    w = float(wasserstein_distance(a, b, 0, p=2000))
    assert B * (1 - 1e-12) <= w <= 80 ** (1 / 2000) * B * (1 + 1e-12)


def test_wasserstein_falls_with_the_order_to_the_bottleneck():
    """Diagrams of hundreds of points a small perturbation apart: B <= W_q <= W_p <= N^(1/p) B for p < q (B the
    bottleneck distance, N the points), for orders up to the thousands; with gradients too."""
    rng = np.random.default_rng(1)
    X = np.sort(rng.random((300, 2)), 1)
    Y = np.sort(X + 1e-5 * rng.standard_normal(X.shape), 1)
    a = make_diagrams([{0: X}], superlevel=False, requires_grad=True)
    b = make_diagrams([{0: Y}], superlevel=False)
    B = float(bottleneck_distance(a, b, 0))
    assert B == pytest.approx(gudhi_b(X, Y, False), rel=1e-12)
    last = math.inf
    for p in (1, 2, 5, 10, 30, 100, 300, 1000, 3000):
        w = wasserstein_distance(a, b, 0, p=p)
        with torch.no_grad():
            assert float(wasserstein_distance(a, b, 0, p=p)) == pytest.approx(float(w), rel=1e-12)
        w = float(w)
        assert B * (1 - 1e-12) <= w <= last * (1 + 1e-12), p
        assert w <= 600 ** (1 / p) * B * (1 + 1e-12), p
        last = w


def test_gradcheck_at_a_high_order_on_close_diagrams():
    """The distance at p = 30 of diagrams 1e-2 apart with bars of 1: the gradient of the optimum's cost, summed in
    units of the distance."""
    X = np.array([[0.0, 1.0], [0.2, 0.5], [0.3, 0.4]])
    Y = X + np.array([[0.01, -0.012], [0.005, 0.02], [-0.011, 0.007]])
    a, b = make_diagrams([{0: X}], superlevel=False), make_diagrams([{0: Y}], superlevel=False)
    pa, pb = a.pairs.clone().requires_grad_(), b.pairs.clone().requires_grad_()
    f = lambda s, t: wasserstein_distance(_with_pairs(a, s), _with_pairs(b, t), 0, p=30)
    assert float(f(pa, pb)) == pytest.approx(_exact_wasserstein(X, Y, 30), rel=1e-12)
    assert torch.autograd.gradcheck(f, (pa, pb), eps=1e-8, atol=1e-6)


def test_large_internal_p_ground_norm_does_not_underflow():
    """||(a, b)||_q of small differences for a large q: a^q + b^q underflowed to 0 (and the distance with it);
    the norm is taken of the ratios to the larger coordinate, on the host and in torch (the gradient path)."""
    a = make_diagrams([{0: np.array([[0.0, 0.5]])}], False, requires_grad=True)
    b = make_diagrams([{0: np.array([[0.01, 0.49]])}], False)
    for q in (400.0, 1500.0):
        want = 0.01 * 2 ** (1 / q)  # the pair, matched (both to the diagonal would cost about 0.25)
        for out in (wasserstein_distance(a, b, 0, p=1, internal_p=q), pairwise_wasserstein(a, b, 0, p=1, internal_p=q)):
            np.testing.assert_allclose(out.detach().numpy().ravel(), [want], rtol=1e-12)
        (g,) = torch.autograd.grad(wasserstein_distance(a, b, 0, p=1, internal_p=q).sum(), a.pairs)
        np.testing.assert_allclose(g.numpy(), [[-(2 ** (1 / q - 1)), 2 ** (1 / q - 1)]], rtol=1e-9)


@pytest.mark.parametrize("superlevel", [True, False], ids=["super", "sub"])
@pytest.mark.parametrize("q", [1.0, 3.0, INF], ids=["q1", "q3", "qinf"])
def test_wasserstein_gradient_reaches_b_when_only_b_requires_grad(superlevel, q):
    """W is symmetric, so the gradient with respect to ``b`` alone equals that with respect to the first argument of
    W(b, a): the matching's cost is recomputed with torch whenever either side requires grad (not only ``a``)."""
    x = sidon_values((3, 6, 6), seed=2)
    y = sidon_values((3, 6, 6), seed=9).requires_grad_()
    a = gpuph.cubical_persistence(x, superlevel=superlevel)
    b = lambda: gpuph.cubical_persistence(y, superlevel=superlevel)  # a fresh graph for each backward
    for dim in (0, 1):
        for fn, p in ((wasserstein_distance, 2.0), (pairwise_wasserstein, 1.5)):
            (g_second,) = torch.autograd.grad(fn(a, b(), dim, p=p, internal_p=q).sum(), y)
            (g_first,) = torch.autograd.grad(fn(b(), a, dim, p=p, internal_p=q).sum(), y)
            assert g_first.abs().sum() > 0
            torch.testing.assert_close(g_second, g_first, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("superlevel", [True, False], ids=["super", "sub"])
@pytest.mark.parametrize("q", [1.5, 3.0, 400.0])
def test_exactly_matched_points_with_a_generic_ground_norm_give_no_nan(superlevel, q):
    """A point matched to an identical one has a difference of 0: the generic ``internal_p`` path (other than 1, 2,
    inf) divides by the larger coordinate, which must not be 0 (0 / 0), neither in the value nor in the gradient."""
    X = np.array([[0.0, 1.0], [0.5, 3.0], [1.0, 1.25]])
    Y = np.array([[0.0, 1.0], [0.75, 2.5]])
    if superlevel:
        X, Y = -X, -Y
    a = make_diagrams([{0: X}], superlevel, requires_grad=True)
    b = make_diagrams([{0: Y}], superlevel)
    same = (a.pairs.detach() == torch.from_numpy(X[0])).all(1)  # the point matched exactly
    for p in (1.0, 2.0):
        want = gudhi_w(X, Y, superlevel, p, q)
        for out in (wasserstein_distance(a, b, 0, p=p, internal_p=q), pairwise_wasserstein(a, b, 0, p=p, internal_p=q)):
            np.testing.assert_allclose(out.detach().numpy().ravel(), [want], rtol=1e-12)
            (g,) = torch.autograd.grad(out.sum(), a.pairs)
            assert torch.isfinite(g).all() and not g[same].any() and g[~same].any()


# ---------------------------------------------------------------------------------------------- errors
def test_errors():
    a = gpuph.cubical_persistence(torch.rand(2, 5, 5))
    b3 = gpuph.cubical_persistence(torch.rand(3, 5, 5))
    sub = gpuph.cubical_persistence(torch.rand(2, 5, 5), superlevel=False)
    for fn in (wasserstein_distance, bottleneck_distance):
        with pytest.raises(ValueError, match="batch size"):
            fn(a, b3, 0)
        with pytest.raises(ValueError, match="superlevel"):
            fn(a, sub, 0)
        with pytest.raises(TypeError, match="Diagrams"):
            fn(a, a.pairs, 0)
        with pytest.raises(ValueError, match="dim"):
            fn(a, a, -1)
    with pytest.raises(ValueError, match="superlevel"):
        pairwise_wasserstein(a, sub, 0)
    for p, q in [(0.5, INF), (INF, INF), (float("nan"), 2.0), (2.0, 0.5), (2.0, float("nan"))]:
        with pytest.raises(ValueError, match="p"):
            wasserstein_distance(a, a, 0, p=p, internal_p=q)
        with pytest.raises(ValueError, match="p"):
            pairwise_wasserstein(a, b3, 0, p=p, internal_p=q)
    wrong = make_diagrams([{0: np.array([[0.0, 1.0]])}] * 2, True)  # birth < death in a superlevel diagram
    with pytest.raises(ValueError, match="orientation"):
        wasserstein_distance(wrong, a, 0)
    assert pairwise_wasserstein(a, b3, 0).shape == (2, 3)  # different batch sizes are fine here
