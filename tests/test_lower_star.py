"""gpuph.lower_star_persistence: exact against GUDHI's SimplexTree on random complexes, meshes and volumes; tie-break,
critical vertices, order, batching, gradients and errors."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from conftest import check_order, sidon_values
from hypothesis import given
from hypothesis import strategies as st
from reference import freudenthal_simplices
from reference_simplicial import gudhi_lower_star

import gpuph
from gpuph.lower_star import ClosedComplex, LowerStarDiagrams, lower_star_persistence, prepare_complex


# ---------------------------------------------------------------------------------------------- oracle
def ours(dgm: gpuph.Diagrams, b: int = 0) -> dict[int, np.ndarray]:
    p = dgm.pairs.detach().cpu().double().numpy()
    sel = dgm.batch.cpu().numpy() == b
    dims = dgm.dim.cpu().numpy()
    out = {}
    for k in range(dgm.ndim):
        a = p[sel & (dims == k)]
        out[k] = a[np.lexsort((a[:, 1], a[:, 0]))]
    return out


def assert_equal_to_gudhi(values, simplices, maxdim: int, sublevel: bool, dgm=None) -> gpuph.Diagrams:
    x = torch.as_tensor(values)
    if dgm is None:
        dgm = lower_star_persistence(x, simplices, maxdim=maxdim, sublevel=sublevel)
    xb = x.detach().double().reshape(-1, x.shape[-1]).numpy()
    for b in range(xb.shape[0]):
        ref = gudhi_lower_star(xb[b], simplices, maxdim, sublevel)
        got = ours(dgm, b)
        for k in range(maxdim + 1):
            assert np.array_equal(got[k], ref[k]), f"image {b} H{k}:\ngpuph {got[k]}\ngudhi {ref[k]}"
    check_critical_vertices(x, dgm)
    check_order(dgm)
    return dgm


def check_critical_vertices(values, dgm: gpuph.Diagrams) -> None:
    """Values at the critical vertices equal the pairs bit for bit; essential deaths are +-inf with index -1."""
    x = torch.as_tensor(values).detach()
    flat = x.reshape(-1, x.shape[-1])
    assert dgm.pairs.dtype == x.dtype
    assert torch.equal(flat[dgm.batch, dgm.birth_index], dgm.pairs[:, 0].detach())
    fin = dgm.death_index >= 0
    assert torch.equal(flat[dgm.batch[fin], dgm.death_index[fin]], dgm.pairs[fin, 1].detach())
    inf = -np.inf if dgm.superlevel else np.inf
    assert torch.all(dgm.pairs[~fin, 1] == inf)
    assert torch.all(dgm.pairs[fin, 0] != dgm.pairs[fin, 1])  # zero-length pairs are never returned


# ---------------------------------------------------------------------------------------------- complexes
def torus_mesh(a: int, b: int) -> np.ndarray:
    """Triangles of an a x b grid with both directions wrapped: a torus (H1 rank 2, H2 rank 1)."""
    ids = np.arange(a * b).reshape(a, b)
    tri = []
    for i in range(a):
        for j in range(b):
            p, q = ids[i, j], ids[i, (j + 1) % b]
            r, s = ids[(i + 1) % a, j], ids[(i + 1) % a, (j + 1) % b]
            tri += [(p, q, s), (p, r, s)]
    return np.array(tri)


def octahedron() -> np.ndarray:
    """A sphere: 6 vertices, 8 triangles."""
    return np.array([(0, 2, 4), (0, 2, 5), (0, 3, 4), (0, 3, 5), (1, 2, 4), (1, 2, 5), (1, 3, 4), (1, 3, 5)])


def random_complex(rng, n: int, m: int, max_size: int = 4) -> list[list[int]]:
    return [rng.choice(n, size=min(n, int(rng.integers(1, max_size + 1))), replace=False).tolist() for _ in range(m)]


# ---------------------------------------------------------------------------------------------- exactness
@pytest.mark.parametrize("sublevel", [True, False], ids=["sub", "super"])
@pytest.mark.parametrize("maxdim", [0, 1, 2])
def test_random_complexes_vs_gudhi(maxdim, sublevel):
    rng = np.random.default_rng(maxdim * 2 + sublevel)
    for trial in range(40):
        n = int(rng.integers(1, 11))
        simplices = random_complex(rng, n, int(rng.integers(0, 14)))
        # Half the trials with integer values: many ties between vertices and simplices.
        f = rng.integers(0, 3, (3, n)).astype(np.float64) if trial % 2 else rng.standard_normal((3, n))
        assert_equal_to_gudhi(torch.from_numpy(f), simplices, maxdim, sublevel)


def test_seven_simplices_on_both_sides_of_the_packed_rank_keys():
    """Simplices are sorted by their vertices' ranks (descending), packed into one 64-bit key when bits per rank x
    vertices per simplex fit: 256 vertices (8 bits) with 7-simplices (8 vertices) fill the 64 bits exactly, 257 vertices
    (9 bits) take the lexicographic comparison. The boundary of an 8-simplex (a 7-sphere) through the vertices of the
    largest and the smallest value, the other vertices isolated, against GUDHI: a rank of 256 packed in 8 bits would
    lose its top bit and put the 7-simplices at the last vertex first."""
    rng = np.random.default_rng(11)
    for n in (255, 256, 257):
        f = rng.permutation(n).astype(np.float64)
        rest = np.setdiff1d(np.arange(n), [f.argmax(), f.argmin()])
        verts = [int(f.argmax()), int(f.argmin()), *rng.choice(rest, 7, replace=False).tolist()]
        simplices = [list(c) for c in itertools.combinations(verts, 8)]
        for sublevel in (True, False):
            dgm = assert_equal_to_gudhi(torch.from_numpy(f), simplices, maxdim=7, sublevel=sublevel)
            assert len(dgm.in_dim(7)) == 1  # the 7-sphere's class


@given(
    data=st.data(),
    n=st.integers(1, 9),
    maxdim=st.integers(0, 3),
    sublevel=st.booleans(),
)
def test_hypothesis_complexes_vs_gudhi(data, n, maxdim, sublevel):
    simplex = st.lists(st.integers(0, n - 1), min_size=1, max_size=5, unique=True)
    simplices = data.draw(st.lists(simplex, max_size=10))
    vals = data.draw(st.lists(st.sampled_from([-np.inf, -1.0, 0.0, 0.5, 2.0, np.inf]), min_size=n, max_size=n))
    assert_equal_to_gudhi(torch.tensor([vals]), simplices, maxdim, sublevel)


@pytest.mark.parametrize("sublevel", [True, False], ids=["sub", "super"])
@pytest.mark.parametrize("mesh", ["torus", "octahedron"])
def test_closed_surfaces_vs_gudhi(mesh, sublevel):
    tri = torus_mesh(5, 6) if mesh == "torus" else octahedron()
    n = int(tri.max()) + 1
    g = torch.Generator().manual_seed(3)
    f = torch.cat([torch.randn(3, n, generator=g, dtype=torch.float64),
                   torch.randint(0, 3, (2, n), generator=g).double()])
    dgm = assert_equal_to_gudhi(f, tri, 2, sublevel)
    essential = dgm.essential()
    betti = torch.zeros(5, 3, dtype=torch.int64).index_put_((essential.batch, essential.dim),
                                                            torch.ones(len(essential), dtype=torch.int64),
                                                            accumulate=True)
    expected = [1, 2, 1] if mesh == "torus" else [1, 0, 1]
    assert betti.tolist() == [expected] * 5


@pytest.mark.parametrize("shape", [(4, 5), (3, 4, 3)], ids=str)
@pytest.mark.parametrize("sublevel", [True, False], ids=["sub", "super"])
def test_triangulated_grids_equal_freudenthal_construction(shape, sublevel):
    # A tetrahedralised volume (and a triangulated image): the top simplices alone; faces are closed automatically.
    top = np.array(freudenthal_simplices(shape)[len(shape)])
    g = torch.Generator().manual_seed(len(shape))
    x = torch.cat([torch.randn(2, *shape, generator=g, dtype=torch.float64),
                   torch.randint(0, 4, (2, *shape), generator=g).double()])
    n = int(np.prod(shape))
    dgm = lower_star_persistence(x.reshape(4, n), top, maxdim=len(shape) - 1, sublevel=sublevel)
    ref = gpuph.cubical_persistence(x, construction="freudenthal", superlevel=not sublevel, spatial_dims=len(shape))
    for f in ("pairs", "dim", "batch", "birth_index", "death_index"):
        assert torch.equal(getattr(dgm, f), getattr(ref, f)), f
    assert_equal_to_gudhi(x.reshape(4, n)[:1], top, len(shape) - 1, sublevel)


def test_truncation_to_maxdim_plus_one_gives_the_same_diagrams():
    tri = torus_mesh(4, 5)
    f = torch.randn(2, 20, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    for maxdim in (0, 1):
        a = lower_star_persistence(f, prepare_complex(tri, 20, max_dim=maxdim + 1), maxdim=maxdim)
        b = lower_star_persistence(f, prepare_complex(tri, 20, max_dim=maxdim + 2), maxdim=maxdim)
        c = lower_star_persistence(f, tri, maxdim=maxdim)
        for d in (b, c):
            assert torch.equal(a.pairs, d.pairs) and torch.equal(a.birth_index, d.birth_index)


# ---------------------------------------------------------------------------------------------- small cases
@pytest.mark.parametrize("sublevel", [True, False])
def test_one_vertex(sublevel):
    x = torch.tensor([2.5])
    dgm = lower_star_persistence(x, [], maxdim=2, sublevel=sublevel)
    assert isinstance(dgm, LowerStarDiagrams)
    assert dgm.pairs.tolist() == [[2.5, np.inf if sublevel else -np.inf]]
    assert dgm.birth_index.tolist() == [0] and dgm.death_index.tolist() == [-1]
    assert dgm.spatial_shape == (1,) and dgm.ndim == 3 and dgm.counts().tolist() == [[1, 0, 0]]
    assert lower_star_persistence(x, [[0]], sublevel=sublevel).pairs.tolist() == dgm.pairs.tolist()


def test_isolated_and_unlisted_vertices_are_components():
    f = torch.tensor([0.0, 1.0, 2.0, 3.0])
    dgm = lower_star_persistence(f, [[0, 1]])  # vertices 2 and 3 are not listed: isolated points
    assert sorted(dgm.pairs[:, 0].tolist()) == [0.0, 2.0, 3.0]
    assert torch.all(dgm.death_index == -1)


def test_no_vertices_and_empty_batch():
    dgm = lower_star_persistence(torch.zeros(0), [], maxdim=1)
    assert len(dgm) == 0 and dgm.batch_size == 1
    dgm = lower_star_persistence(torch.zeros(0, 5), [[0, 1, 2]], maxdim=1)
    assert len(dgm) == 0 and dgm.batch_size == 0 and dgm.batch_shape == (0,)
    assert dgm.filtration_end.shape == (0,)
    # Losses of no pairs backpropagate to values with no vertices (a zero gradient), as on empty grids and clouds.
    for shape in ((0,), (2, 0)):
        v = torch.zeros(shape, requires_grad=True)
        dgm = lower_star_persistence(v, [])
        gpuph.losses.persistence_energy(dgm, 0, reduction="sum").backward()
        assert dgm.pairs.shape == (0, 2) and v.grad.shape == shape


def test_closure_and_duplicates():
    f = torch.tensor([[0.0, 3.0, 1.0, 2.0], [1.0, 0.0, 2.0, 5.0]])
    full = [[0], [1], [2], [3], [0, 1], [1, 2], [0, 2], [2, 3], [1, 3], [0, 1, 2], [1, 2, 3]]
    reference = lower_star_persistence(f, full)
    for form in (
        [[2, 1, 0], [3, 2, 1]],                                      # top simplices only, unsorted
        [[0, 1, 2], [1, 2, 3], [2, 1, 0], [1, 0], [3]],              # duplicates and redundant faces
        torch.tensor([[0, 1, 2], [3, 1, 2]]),                        # (m, k) tensor
        np.array([[0, 1, 2], [3, 1, 2]], dtype=np.int32),            # numpy, other int dtype
        [np.array([[0, 1]]), np.array([[0, 1, 2], [1, 2, 3]])],      # a list of arrays
        prepare_complex([[0, 1, 2], [1, 2, 3]], 4),                  # prepared once
    ):
        dgm = lower_star_persistence(f, form)
        for name in ("pairs", "dim", "batch", "birth_index", "death_index"):
            assert torch.equal(getattr(dgm, name), getattr(reference, name)), (form, name)


def test_prepare_complex_counts_and_facets():
    cx = prepare_complex(np.array([[0, 1, 2, 3]]), 5, max_dim=3)
    assert isinstance(cx, ClosedComplex)
    assert cx.counts() == (5, 6, 4, 1)
    for d in (2, 3):
        simp, below, fac = cx.simplices[d - 1], cx.simplices[d - 2], cx.facets[d - 2]
        for i in range(simp.shape[0]):
            for j in range(d + 1):
                expected = [v for c, v in enumerate(simp[i].tolist()) if c != j]
                assert below[fac[i, j]].tolist() == expected
    assert prepare_complex(np.array([[0, 1, 2, 3]]), 5, max_dim=1).counts() == (5, 6)


# ---------------------------------------------------------------------------------------------- tie-break
@pytest.mark.parametrize("sublevel", [True, False])
def test_constant_function_pins_the_smallest_vertex(sublevel):
    tri = torus_mesh(3, 4)
    dgm = lower_star_persistence(torch.full((12,), 7.0), tri, maxdim=2, sublevel=sublevel)
    # All pairs have zero length; the essential classes are born at the earliest vertex/simplex in (value, index)
    # order: H0 at vertex 0, and every higher class is also born at value 7.
    assert torch.all(dgm.death_index == -1)
    assert dgm.counts().tolist() == [[1, 2, 1]]
    assert dgm.birth_index[dgm.dim == 0].tolist() == [0]


def test_tie_break_order_is_value_then_index():
    # Path 0 - 1 - 2 with values (1, 0, 1): superlevel has two maxima at 1; the elder is vertex 0 (smaller index).
    dgm = lower_star_persistence(torch.tensor([1.0, 0.0, 1.0]), [[0, 1], [1, 2]], maxdim=0, sublevel=False)
    assert dgm.birth_index.tolist() == [0, 2]
    assert dgm.death_index.tolist() == [-1, 1]


def test_deterministic_across_calls_and_batches():
    tri = torus_mesh(4, 4)
    g = torch.Generator().manual_seed(5)
    f = torch.randint(0, 3, (6, 16), generator=g).double()
    a = lower_star_persistence(f, tri, maxdim=2)
    b = lower_star_persistence(f, tri, maxdim=2)
    for name in ("pairs", "dim", "batch", "birth_index", "death_index"):
        assert torch.equal(getattr(a, name), getattr(b, name))
    for i in range(6):
        one = lower_star_persistence(f[i], tri, maxdim=2)
        sel = a.batch == i
        assert torch.equal(one.pairs, a.pairs[sel]) and torch.equal(one.birth_index, a.birth_index[sel])
        assert torch.equal(one.death_index, a.death_index[sel])


# ---------------------------------------------------------------------------------------------- formats
def test_batch_shape_dtypes_and_no_mutation():
    tri = octahedron()
    base = torch.randn(2, 3, 6, generator=torch.Generator().manual_seed(1))
    for dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        x = base.to(dtype)
        keep = x.clone()
        dgm = lower_star_persistence(x, tri, maxdim=2)
        assert dgm.batch_shape == (2, 3) and dgm.batch_size == 6 and dgm.pairs.dtype == dtype
        assert torch.equal(x, keep)
        check_critical_vertices(x, dgm)
        ref = lower_star_persistence(x.double(), tri, maxdim=2)
        assert torch.equal(dgm.birth_index, ref.birth_index) and torch.equal(dgm.death_index, ref.death_index)
    dgm = lower_star_persistence(base.numpy(), tri)
    assert dgm.pairs.dtype == torch.float32
    assert dgm.construction == "lower_star" and dgm.spatial_shape == (6,)


def test_filtration_end_and_helpers():
    tri = octahedron()
    x = torch.randn(3, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    sub = lower_star_persistence(x, tri, maxdim=2)
    sup = lower_star_persistence(x, tri, maxdim=2, sublevel=False)
    assert torch.equal(sub.filtration_end, x.max(1).values) and torch.equal(sup.filtration_end, x.min(1).values)
    assert sub.counts().shape == (3, 3) and len(sub.to_numpy()[0]) == 3
    one = sub.image(1)
    assert isinstance(one, LowerStarDiagrams) and one.ndim == 3
    assert "lower_star" in repr(sub)


def test_superlevel_is_sublevel_of_negation():
    tri = torus_mesh(4, 5)
    x = torch.randn(2, 20, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    sup = lower_star_persistence(x, tri, maxdim=2, sublevel=False)
    sub = lower_star_persistence(-x, tri, maxdim=2, sublevel=True)
    assert torch.equal(sup.pairs, -sub.pairs)
    assert torch.equal(sup.birth_index, sub.birth_index) and torch.equal(sup.death_index, sub.death_index)


# ---------------------------------------------------------------------------------------------- gradients
@pytest.mark.parametrize("sublevel", [True, False])
def test_gradcheck(sublevel):
    tri = torus_mesh(4, 4)
    x = sidon_values((2, 16), 3).requires_grad_()

    def f(inp):
        return lower_star_persistence(inp, tri, maxdim=2, sublevel=sublevel).finite().pairs

    assert len(f(x)) > 0
    assert torch.autograd.gradcheck(f, (x,), eps=1e-6, atol=1e-8)
    loss = lambda inp: (f(inp)[:, 1] - f(inp)[:, 0]).pow(3).sum()
    assert torch.autograd.gradgradcheck(loss, (x,), eps=1e-6, atol=1e-6)
    h = torch.func.hessian(loss)(x.detach()).reshape(32, 32)
    assert torch.allclose(h, h.T) and bool(h.abs().sum() > 0)


def test_backward_is_a_scatter_onto_critical_vertices():
    tri = octahedron()
    x = torch.randint(0, 3, (4, 6), generator=torch.Generator().manual_seed(6)).double().requires_grad_()
    dgm = lower_star_persistence(x, tri, maxdim=2).finite()
    dgm.pairs.sum().backward()
    expected = torch.zeros(4 * 6, dtype=torch.float64)
    expected.index_add_(0, dgm.batch * 6 + dgm.birth_index, torch.ones(len(dgm), dtype=torch.float64))
    expected.index_add_(0, dgm.batch * 6 + dgm.death_index, torch.ones(len(dgm), dtype=torch.float64))
    assert torch.equal(x.grad, expected.view(4, 6))


# ---------------------------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "simplices,error,match",
    [
        ([[0, 5]], ValueError, "out of range"),
        ([[0, 4]], ValueError, r"out of range 0\.\.3"),  # the first id past the vertices
        ([[-1, 0]], ValueError, "out of range"),
        ([[0, 1, 1]], ValueError, "repeats a vertex"),
        ([[]], ValueError, "empty simplex"),
        (torch.tensor([[0.0, 1.0]]), TypeError, "integer"),
        (np.array([[True, False]]), TypeError, "integer"),
        ([[0, 1.5]], TypeError, "integers"),
        ("012", TypeError, "simplices"),
        (torch.tensor([0, 1, 2]), ValueError, r"shape \(m, k\)"),
        (7, TypeError, "simplices"),
    ],
)
def test_bad_simplices(simplices, error, match):
    with pytest.raises(error, match=match):
        lower_star_persistence(torch.zeros(4), simplices)


def test_bare_vertex_ids_are_0_simplices_and_max_dim_is_checked():
    """TopologyLayer's SimplicialComplex.append takes a bare id for a vertex: a list may mix ids and simplices."""
    mixed = prepare_complex([0, [0, 1], np.int64(2), [1, 2, 3]], 4)
    listed = prepare_complex([[0], [0, 1], [2], [1, 2, 3]], 4)
    assert mixed.counts() == listed.counts()
    assert all(torch.equal(a, b) for a, b in zip(mixed.simplices + mixed.facets, listed.simplices + listed.facets))
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="max_dim must be a non-negative int"):
            prepare_complex([[0, 1]], 2, max_dim=bad)


def test_lower_star_pairs_refuses_repeated_facets_and_simplices():
    """The operator is callable directly: a facet named twice in one row (its column would hold a row twice, and the
    reduction need not end) or a simplex listed twice (a spurious class) is a clear error."""
    edges = torch.tensor([[0, 1], [1, 2], [0, 2], [3, 4], [4, 5], [3, 5]])
    values = torch.rand(1, 6)
    with pytest.raises(ValueError, match="names the same facet twice"):
        torch.ops.gpuph.lower_star_pairs(values, [edges, torch.tensor([[0, 1, 2], [3, 4, 5]]),
                                                  torch.tensor([[0, 1, 2, 3], [0, 1, 2, 3]])],
                                         [torch.tensor([[0, 1, 2], [3, 4, 5]]), torch.tensor([[0, 0, 1, 1]] * 2)],
                                         2, False)
    with pytest.raises(ValueError, match="same simplex twice"):
        torch.ops.gpuph.lower_star_pairs(values, [edges, torch.tensor([[0, 1, 2], [0, 1, 2]])],
                                         [torch.tensor([[1, 2, 0], [1, 2, 0]])], 1, False)


def test_lower_star_pairs_refuses_tables_of_another_complex():
    """A facet table whose rows name simplices that are not faces of their row's simplex, or a simplex that repeats
    a vertex, describes no complex: the diagrams would be silently wrong, so the operator refuses them. A row's facets
    may come in any order."""
    edges = torch.tensor([[0, 1], [1, 2], [0, 2], [3, 4], [4, 5], [3, 5]])
    triangles = torch.tensor([[0, 1, 2], [3, 4, 5]])
    values = torch.rand(3, 6)
    with pytest.raises(ValueError, match="row 0 of simplices.0., which is not a facet of simplex 1"):
        torch.ops.gpuph.lower_star_pairs(values, [edges, triangles], [torch.tensor([[0, 1, 2], [0, 4, 5]])], 2, False)
    with pytest.raises(ValueError, match=r"simplices\[0\] row 1 repeats vertex 2"):
        torch.ops.gpuph.lower_star_pairs(values, [torch.tensor([[0, 1], [2, 2]])], [], 1, False)
    with pytest.raises(ValueError, match=r"simplices\[1\] row 0 repeats vertex 1"):
        torch.ops.gpuph.lower_star_pairs(values, [edges, torch.tensor([[0, 1, 1]])], [torch.tensor([[0, 1, 2]])], 2,
                                         False)
    # The same complex with each row's facets permuted: the same pairs.
    facets = torch.tensor([[0, 1, 2], [3, 4, 5]])
    expected = torch.ops.gpuph.lower_star_pairs(values, [edges, triangles], [facets], 2, True)
    permuted = torch.ops.gpuph.lower_star_pairs(values, [edges, triangles], [facets[:, [2, 0, 1]]], 2, True)
    assert expected.shape[0] > 0 and torch.equal(expected, permuted)


def test_hand_built_closed_complex_is_checked():
    """ClosedComplex is a public dataclass: one built by hand with a facet table of another complex is refused by
    lower_star_persistence, not reduced into wrong diagrams."""
    good = prepare_complex([[0, 1, 2], [1, 2, 3]], 4)
    swapped = good.facets[0].flip(0)  # each triangle gets the other's facets
    bad = ClosedComplex(good.n_vertices, good.simplices, (swapped,), good.max_dim)
    with pytest.raises(ValueError, match="not a facet"):
        lower_star_persistence(torch.rand(4), bad)


def test_bad_values_and_arguments():
    tri = [[0, 1, 2]]
    with pytest.raises(ValueError, match="NaN"):
        lower_star_persistence(torch.tensor([[0.0, 1.0, 2.0], [0.0, float("nan"), 1.0]]), tri)
    with pytest.raises(TypeError, match="dtype"):
        lower_star_persistence(torch.tensor([0, 1, 2]), tri)
    with pytest.raises(TypeError, match="dtype"):
        lower_star_persistence(torch.zeros(3, dtype=torch.complex64), tri)
    with pytest.raises(ValueError, match="vertex axis"):
        lower_star_persistence(torch.tensor(1.0), tri)
    with pytest.raises(ValueError, match="maxdim"):
        lower_star_persistence(torch.zeros(3), tri, maxdim=-1)
    with pytest.raises(ValueError, match="vertices"):
        lower_star_persistence(torch.zeros(5), prepare_complex(tri, 3))
    with pytest.raises(ValueError, match="truncated"):
        lower_star_persistence(torch.zeros(3), prepare_complex(tri, 3, max_dim=1), maxdim=1)
    with pytest.raises(ValueError, match="n_vertices"):
        prepare_complex(tri, -1)
