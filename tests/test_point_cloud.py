"""Point-cloud persistence (Rips, weak Alpha): exactness against GUDHI and Ripser, critical edges, gradients,
batching and input errors."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from conftest import check_order, setting
from hypothesis import given
from hypothesis import strategies as st
from reference import _sorted_pairs

import gpuph
from gpuph.delaunay import delaunay_edges, delaunay_simplices
from gpuph.point_cloud import pairwise_distances, rips_persistence, weak_alpha_persistence


def delaunay_alpha_persistence(points, **kwargs):
    """Weak Alpha on the Delaunay complex (TopologyLayer's AlphaLayer complex)."""
    return weak_alpha_persistence(points, complex="delaunay", **kwargs)


FNS = [rips_persistence, weak_alpha_persistence, delaunay_alpha_persistence]


# ---------------------------------------------------------------------------------------------- oracles
def _by_dim(items, maxdim: int = 1) -> dict[int, np.ndarray]:
    out: dict[int, list] = {k: [] for k in range(maxdim + 1)}
    for k, (b, d) in items:
        if k <= maxdim and b != d:  # gpuph drops zero-length pairs
            out[k].append((b, d))
    return {k: _sorted_pairs(v) for k, v in out.items()}


def gudhi_rips(dist: np.ndarray, thr: float = math.inf, maxdim: int = 1) -> dict[int, np.ndarray]:
    import gudhi

    if len(dist) <= 1:  # GUDHI's RipsComplex builds nothing from a 1 x 1 matrix
        return _by_dim([(0, (0.0, math.inf))] * len(dist), maxdim)
    rc = gudhi.RipsComplex(distance_matrix=dist, max_edge_length=thr)
    st_ = rc.create_simplex_tree(max_dimension=maxdim + 1)
    return _by_dim(st_.persistence(homology_coeff_field=2, min_persistence=0, persistence_dim_max=True), maxdim)


def gudhi_flag(n: int, edges: np.ndarray, lengths: np.ndarray, maxdim: int = 1) -> dict[int, np.ndarray]:
    import gudhi

    st_ = gudhi.SimplexTree()
    for v in range(n):
        st_.insert([v], 0.0)
    for (i, j), w in zip(edges.tolist(), lengths.tolist()):
        st_.insert([i, j], w)
    st_.expansion(maxdim + 1)
    return _by_dim(st_.persistence(homology_coeff_field=2, min_persistence=0, persistence_dim_max=True), maxdim)


def gudhi_delaunay(x: np.ndarray, maxdim: int = 1) -> dict[int, np.ndarray]:
    """The Delaunay complex (the faces of delaunay_simplices, up to dimension maxdim + 1), each simplex at its
    longest edge (lengths as gpuph computes them), in GUDHI's SimplexTree."""
    import itertools

    import gudhi

    st_ = gudhi.SimplexTree()
    for v in range(len(x)):
        st_.insert([v], 0.0)
    t = torch.as_tensor(x)
    for block in delaunay_simplices(x):
        for s in block.tolist():
            for k in range(2, min(len(s), maxdim + 2) + 1):  # edges first: a face is inserted before its cofaces
                for f in itertools.combinations(s, k):
                    st_.insert(list(f), max(float(torch.linalg.vector_norm(t[a] - t[b]))
                                            for a, b in itertools.combinations(f, 2)))
    return _by_dim(st_.persistence(homology_coeff_field=2, min_persistence=0, persistence_dim_max=True), maxdim)


def ripser_rips(dist: np.ndarray, thr: float = math.inf, maxdim: int = 1) -> dict[int, np.ndarray]:
    import ripser

    dgms = ripser.ripser(dist, distance_matrix=True, maxdim=maxdim, thresh=thr)["dgms"]
    return _by_dim([(k, (b, d)) for k in range(maxdim + 1) for b, d in dgms[k]], maxdim)


def ours(dgm: gpuph.Diagrams, b: int = 0, maxdim: int = 1) -> dict[int, np.ndarray]:
    pairs = dgm.pairs.detach().cpu().to(torch.float64).numpy()
    sel = dgm.batch.cpu().numpy() == b
    dims = dgm.dim.cpu().numpy()
    return {k: _sorted_pairs(pairs[sel & (dims == k)]) for k in range(maxdim + 1)}


def assert_same(a: dict, r: dict, what: str = "", rtol: float = 0.0) -> None:
    assert a.keys() == r.keys()
    for k in r:
        x, y = a[k], r[k]
        assert x.shape == y.shape, f"{what}: PD{k} has {len(x)} pairs, oracle {len(y)}\n{x}\n{y}"
        if rtol == 0:
            assert np.array_equal(x, y), f"{what}: PD{k} differs\n{x}\n{y}"
        else:
            np.testing.assert_allclose(x, y, rtol=rtol, atol=rtol, err_msg=f"{what}: PD{k}")


def dist64(x) -> np.ndarray:
    return pairwise_distances(torch.as_tensor(x, dtype=torch.float64)[None])[0].numpy()


def edge_lengths(x: np.ndarray, edges: np.ndarray) -> np.ndarray:
    t = torch.as_tensor(x)
    return torch.linalg.vector_norm(t[edges[:, 0]] - t[edges[:, 1]], dim=-1).numpy()


def check_critical_edges(dgm: gpuph.Diagrams, values_of_edge) -> None:
    """Every finite value is the length of the edge its index names (bit for bit); H0 births are 0 at a vertex
    code v * (N + 1); essential deaths are +inf with index -1; and the rows are in the pinned order."""
    N = dgm.spatial_shape[0]
    p = dgm.pairs.detach().cpu()
    for r in range(len(dgm)):
        b, k = int(dgm.batch[r]), int(dgm.dim[r])
        bi, di = int(dgm.birth_index[r]), int(dgm.death_index[r])
        if k == 0:
            assert bi % (N + 1) == 0 and p[r, 0] == 0
        else:
            i, j = divmod(bi, N)
            assert i < j and p[r, 0] == values_of_edge(b, i, j)
        if di < 0:
            assert p[r, 1] == math.inf
        else:
            i, j = divmod(di, N)
            assert i < j and p[r, 1] == values_of_edge(b, i, j)
        assert p[r, 0] < p[r, 1]
    check_order(dgm)


# ---------------------------------------------------------------------------------------------- Rips exactness
@given(n=st.integers(0, 30), d=st.integers(1, 4), seed=st.integers(0, 2**31 - 1), quantile=st.sampled_from(
    [None, 0.1, 0.3, 0.6]))
def test_rips_equals_gudhi(n, d, seed, quantile):
    x = np.random.default_rng(seed).standard_normal((n, d))
    D = dist64(x)
    thr = math.inf if quantile is None or n < 2 else float(np.quantile(D[np.triu_indices(n, 1)], quantile))
    dgm = rips_persistence(torch.from_numpy(x), max_edge_length=thr)
    assert_same(ours(dgm), gudhi_rips(D, thr), f"n={n} d={d} thr={thr}")
    t = torch.from_numpy(D)
    check_critical_edges(dgm, lambda b, i, j: t[i, j])
    assert dgm.counts().shape == (1, 2)


@pytest.mark.parametrize("n,d,thr", [(60, 2, math.inf), (80, 3, math.inf), (60, 2, 0.4), (50, 5, 1.5)])
def test_rips_equals_ripser(n, d, thr):
    x = np.random.default_rng(n + d).random((n, d))
    D = dist64(x)
    dgm = rips_persistence(torch.from_numpy(x), max_edge_length=thr)
    # Ripser rounds the distances to float32.
    assert_same(ours(dgm), ripser_rips(D, thr), f"n={n} d={d}", rtol=1e-6)
    # float32 points: Ripser on our float32 distance matrix.
    dgm32 = rips_persistence(torch.from_numpy(x).float(), max_edge_length=thr)
    D32 = pairwise_distances(torch.from_numpy(x).float()[None])[0].numpy()
    assert_same(ours(dgm32), ripser_rips(D32, thr), f"float32 n={n} d={d}", rtol=1e-6)


def test_rips_ripser_on_points():
    import ripser

    x = np.random.default_rng(7).random((70, 2))
    dgms = ripser.ripser(x, maxdim=1)["dgms"]  # its own distances (float32)
    ref = _by_dim([(k, (b, d)) for k in (0, 1) for b, d in dgms[k]])
    assert_same(ours(rips_persistence(x)), ref, "points", rtol=1e-5)


@pytest.mark.parametrize(
    "name",
    ["duplicates", "all_equal", "collinear", "grid", "one", "two", "empty", "circle", "two_clusters"],
)
@pytest.mark.parametrize("thr", [math.inf, 0.5])
def test_rips_special_clouds(name, thr):
    rng = np.random.default_rng(3)
    x = {
        "duplicates": np.repeat(rng.random((12, 2)), 3, axis=0),
        "all_equal": np.ones((6, 3)),
        "collinear": np.stack([np.arange(10.0), 2 * np.arange(10.0) + 1], 1) / 10,
        "grid": np.stack(np.meshgrid(np.arange(4.0), np.arange(4.0)), -1).reshape(-1, 2) / 3,  # many ties
        "one": np.zeros((1, 2)),
        "two": np.array([[0.0, 0.0], [0.3, 0.4]]),
        "empty": np.zeros((0, 2)),
        "circle": np.stack([np.cos(np.linspace(0, 2 * np.pi, 24, endpoint=False)),
                            np.sin(np.linspace(0, 2 * np.pi, 24, endpoint=False))], 1),
        "two_clusters": np.concatenate([rng.random((8, 2)) * 0.1, rng.random((8, 2)) * 0.1 + 3]),
    }[name]
    D = dist64(x)
    dgm = rips_persistence(torch.from_numpy(x), max_edge_length=thr)
    assert_same(ours(dgm), gudhi_rips(D, thr), name)
    if len(x):
        assert_same(ours(dgm), ripser_rips(D, thr), name, rtol=1e-6)
    t = torch.from_numpy(D)
    check_critical_edges(dgm, lambda b, i, j: t[i, j])


def test_rips_circle_has_one_loop_and_essential_h0():
    a = np.linspace(0, 2 * np.pi, 40, endpoint=False)
    x = torch.from_numpy(np.stack([np.cos(a), np.sin(a)], 1))
    dgm = rips_persistence(x)
    h1 = dgm.in_dim(1)
    assert len(h1) == 1 and float(h1.lifetimes()[0]) > 1.0
    assert len(dgm.essential()) == 1 and int(dgm.essential().dim[0]) == 0
    assert int(dgm.essential().birth_index[0]) == 0  # born at the smallest vertex
    # The essential H1 classes of a threshold below the loop's death.
    death = float(h1.pairs[0, 1])
    dgm_t = rips_persistence(x, max_edge_length=death * 0.99)
    ess = dgm_t.essential()
    assert ess.dim.tolist() == [0, 1]


@pytest.mark.parametrize(("seed", "thr"), [(0, math.inf), (1, math.inf), (2, 0.6), (3, 0.3)])
def test_rips_h0_rows_name_the_younger_components_smallest_vertex(seed, thr):
    """Every vertex is born at 0, so the elder rule is by vertex: a merge kills the component whose smallest vertex is
    larger, and the H0 row names that vertex (birth index v * (N + 1)) and the merging edge. The reference: Kruskal
    over the edges in the engine's order (length, then code i * N + j), each component's root its smallest vertex.
    check_critical_edges only checks that H0 births name some vertex."""
    x = np.random.default_rng(seed).standard_normal((25, 2))
    D = dist64(x)
    n = len(x)
    edges = sorted((D[i, j], i * n + j, i, j) for i in range(n) for j in range(i + 1, n) if D[i, j] <= thr)
    parent = list(range(n))

    def find(v: int) -> int:
        while parent[v] != v:
            v = parent[v]
        return v

    want = set()
    for _, code, i, j in edges:
        a, b = find(i), find(j)
        if a != b:
            parent[max(a, b)] = min(a, b)
            want.add((max(a, b) * (n + 1), code))
    want |= {(v * (n + 1), -1) for v in range(n) if find(v) == v}
    dgm = rips_persistence(torch.from_numpy(x), max_edge_length=thr).in_dim(0)
    assert set(zip(dgm.birth_index.tolist(), dgm.death_index.tolist(), strict=True)) == want


# ---------------------------------------------------------------------------------------------- weak Alpha
def test_delaunay_edges_are_scipy_edges_for_generic_clouds():
    from scipy.spatial import Delaunay

    for d, n in ((2, 60), (3, 40)):
        x = np.random.default_rng(d).random((n, d))
        tri = Delaunay(x)
        ref = set()
        for s in tri.simplices:
            for a in range(d + 1):
                for b in range(a + 1, d + 1):
                    ref.add(tuple(sorted((int(s[a]), int(s[b])))))
        assert set(map(tuple, delaunay_edges(x).tolist())) == ref


def test_delaunay_edges_refuse_non_finite_points():
    for bad in (np.nan, np.inf, -np.inf):
        x = np.random.default_rng(0).random((6, 2))
        x[2, 1] = bad
        with pytest.raises(ValueError, match="finite coordinates"):
            delaunay_edges(x)


def test_delaunay_refuses_what_are_no_real_coordinates():
    """Complex coordinates (whose imaginary part a float cast drops with a mere warning), bool and text arrays, and
    clouds with D = 0 are refused with gpuph's message; integer and float32 coordinates are taken."""
    for bad, match in (
        ([[0, 0], [1j, 0], [0, 1]], "real coordinates .dtype complex128"),
        (np.ones((3, 2), dtype=bool), "real coordinates .dtype bool"),
        ([["0", "1"], ["1", "0"]], "real coordinates .dtype <U1"),
        (np.zeros((3, 0)), "D = 0 coordinates"),
        (torch.zeros(3, 2, dtype=torch.complex64), "real coordinates .dtype complex64"),
    ):
        for fn in (delaunay_edges, delaunay_simplices):
            with pytest.raises(ValueError, match=match):
                fn(bad)
    want = delaunay_edges(np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
    for good in ([[0, 0], [1, 0], [0, 1], [1, 1]], np.array([[0, 0], [1, 0], [0, 1], [1, 1]], dtype=np.float32)):
        assert np.array_equal(delaunay_edges(good), want)


def test_lazily_negated_coordinates_are_read_as_their_values():
    """A view with its negative bit set (the imaginary part of a conjugate) is a plain float tensor to the caller:
    the host code (Delaunay, the compat layers) reads its values, which numpy() alone refuses."""
    from gpuph.compat.topologylayer.nn import AlphaLayer

    g = torch.Generator().manual_seed(0)
    z = torch.complex(torch.rand(9, 2, generator=g, dtype=torch.float64), torch.rand(9, 2, generator=g,
                                                                                     dtype=torch.float64))
    x, plain = z.conj().imag, -z.imag
    assert x.is_neg() and not plain.is_neg() and torch.equal(x, plain)
    assert np.array_equal(delaunay_edges(x), delaunay_edges(plain))
    for cx in ("flag", "delaunay"):
        assert torch.equal(weak_alpha_persistence(x, complex=cx).pairs, weak_alpha_persistence(plain, complex=cx).pairs)
    got, want = AlphaLayer(maxdim=1)(x)[0], AlphaLayer(maxdim=1)(plain)[0]
    assert all(torch.equal(a, b) for a, b in zip(got, want))


@given(n=st.integers(0, 40), d=st.integers(2, 3), seed=st.integers(0, 2**31 - 1))
def test_weak_alpha_equals_gudhi_flag(n, d, seed):
    x = np.random.default_rng(seed).standard_normal((n, d))
    dgm = weak_alpha_persistence(torch.from_numpy(x))
    edges = delaunay_edges(x)
    lengths = edge_lengths(x, edges)
    assert_same(ours(dgm), gudhi_flag(n, edges, lengths), f"n={n} d={d}")
    table = {(int(i), int(j)): v for (i, j), v in zip(edges.tolist(), lengths.tolist())}
    check_critical_edges(dgm, lambda b, i, j: table[(i, j)])


SPECIAL_CLOUDS = ["duplicates", "collinear", "plane_in_3d", "one", "two", "three", "square", "line_1d"]


def special_cloud(name: str, d: int = 2) -> np.ndarray:
    """Degenerate clouds for the Delaunay code (``d``: the dimension of the random ones)."""
    rng = np.random.default_rng(5)
    x = {
        "duplicates": np.concatenate([rng.random((20, d)), rng.random((20, d))[:5]]),
        "collinear": np.stack([np.arange(10.0), np.arange(10.0) * 0.5], 1),
        "plane_in_3d": np.concatenate([rng.random((25, 2)), np.zeros((25, 1))], 1) @ np.linalg.qr(
            rng.standard_normal((3, 3)))[0],
        "one": np.zeros((1, 2)),
        "two": np.array([[0.0, 1.0], [1.0, 0.0]]),
        "three": np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]),
        "square": np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]),
        "line_1d": rng.random((15, 1)),
        "triangle_in_3d": np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]),
        "octahedron": np.concatenate([np.eye(3), -np.eye(3)]) + rng.random((6, 3)) * 0.01,
    }[name]
    if name == "duplicates":
        x[-5:] = x[:5]
    return x


@pytest.mark.parametrize("name", SPECIAL_CLOUDS)
def test_weak_alpha_special_clouds(name):
    x = special_cloud(name)
    dgm = weak_alpha_persistence(torch.from_numpy(x))
    edges = delaunay_edges(x)
    assert_same(ours(dgm), gudhi_flag(len(x), edges, edge_lengths(x, edges)), name)
    # Connected: exactly one essential class.
    assert len(dgm.essential()) == 1


@given(n=st.integers(0, 40), d=st.integers(1, 4), seed=st.integers(0, 2**31 - 1), maxdim=st.integers(0, 2),
       quantised=st.booleans())
def test_delaunay_alpha_equals_gudhi(n, d, seed, maxdim, quantised):
    x = np.random.default_rng(seed).standard_normal((n, d if n < 25 else min(d, 3)))
    if quantised:  # ties, repeated points, cocircular quadruples
        x = np.round(x * 2) / 2
    dgm = delaunay_alpha_persistence(torch.from_numpy(x), dims=tuple(range(maxdim + 1)))
    assert dgm.construction == "delaunay" and dgm.computed_dims == tuple(range(maxdim + 1))
    assert_same(ours(dgm, maxdim=maxdim), gudhi_delaunay(x, maxdim), f"n={n} d={d}")
    edges = delaunay_edges(x)
    table = {(int(i), int(j)): v for (i, j), v in zip(edges.tolist(), edge_lengths(x, edges).tolist())}
    check_critical_edges(dgm, lambda b, i, j: table[(i, j)])


@pytest.mark.parametrize("name", [*SPECIAL_CLOUDS, "triangle_in_3d", "octahedron"])
def test_delaunay_alpha_special_clouds(name):
    x = special_cloud(name, d=3)
    dgm = delaunay_alpha_persistence(torch.from_numpy(x), dims=(0, 1, 2))
    assert_same(ours(dgm, maxdim=2), gudhi_delaunay(x, maxdim=2), name)
    assert len(dgm.essential()) == 1  # connected, and no class of H1 or H2 outlives the whole complex


def test_delaunay_complex_and_flag_complex_differ_only_where_they_may():
    """The Delaunay complex is a subcomplex of the flag complex of its graph with the same edges: the same H0 rows
    always, the same H1 rows for 2D clouds (a 3-clique that is no Delaunay triangle encloses triangles no longer
    than its longest edge), and no H2 for 2D clouds (a planar triangulation bounds no cavity), while the flag
    complex of some 2D and 3D clouds has H2 and the two H1 of some 3D clouds differ."""
    rng = np.random.default_rng(21)
    flag_h2_2d = h1_differs_3d = 0
    for t in range(60):
        d = 2 if t < 30 else 3
        x = torch.from_numpy(rng.random((int(rng.integers(5, 60)), d)))
        flag = weak_alpha_persistence(x, dims=(0, 1, 2))
        dela = delaunay_alpha_persistence(x, dims=(0, 1, 2))
        _same_rows(flag.in_dim(0), dela.in_dim(0), 0)
        if d == 2:
            _same_rows(flag.in_dim(1), dela.in_dim(1), 0)
            assert len(dela.in_dim(2)) == 0
            flag_h2_2d += len(flag.in_dim(2)) > 0
        else:
            h1_differs_3d += not torch.equal(flag.in_dim(1).pairs, dela.in_dim(1).pairs)
    assert flag_h2_2d + h1_differs_3d > 0  # the two complexes are not the same


def test_delaunay_simplices():
    """Generic clouds: scipy's simplices; their edges are delaunay_edges; degenerate clouds as documented."""
    from scipy.spatial import Delaunay

    rng = np.random.default_rng(8)
    for d in (2, 3):
        x = rng.random((40, d))
        (got,) = delaunay_simplices(x)
        want = np.sort(Delaunay(x).simplices, axis=1)
        assert np.array_equal(got[np.lexsort(got.T[::-1])], want[np.lexsort(want.T[::-1])])
    x = rng.random((25, 3))
    x[20:] = x[:5]
    blocks = delaunay_simplices(x)
    edges = np.concatenate([b[:, list(c)] for b in blocks for c in itertools.combinations(range(b.shape[1]), 2)])
    assert np.array_equal(np.unique(edges, axis=0), delaunay_edges(x))
    assert any(b.shape[1] == 2 and len(b) == 5 for b in blocks)  # the copies, joined to their first occurrence
    # Copies are joined to their first occurrence, which is the one triangulated.
    copies = np.array([[0.0, 0], [1, 0], [0, 1], [1, 0], [1, 0]])
    assert [b.tolist() for b in delaunay_simplices(copies)] == [[[0, 1, 2]], [[1, 3], [1, 4]]]
    # A thin cloud (relative thickness 1e-5) is still 2D: scipy's triangulation, not a chain along its length.
    thin = np.stack([np.linspace(0, 1, 8), 2e-5 * rng.random(8)], 1)
    (got,) = delaunay_simplices(thin)
    want = np.sort(Delaunay(thin).simplices, axis=1)
    assert np.array_equal(got[np.lexsort(got.T[::-1])], want[np.lexsort(want.T[::-1])])
    line = np.stack([np.arange(6.0)[::-1], np.zeros(6)], 1)
    assert [b.tolist() for b in delaunay_simplices(line)] == [[[i, i + 1] for i in range(5)]]
    tri = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    assert [b.tolist() for b in delaunay_simplices(tri)] == [[[0, 1, 2]]]
    assert delaunay_simplices(np.zeros((1, 2))) == [] and delaunay_simplices(np.zeros((3, 2))) != []
    with pytest.raises(ValueError, match="finite"):
        delaunay_simplices(np.array([[0.0, np.nan], [1.0, 1.0]]))
    with pytest.raises(ValueError, match="gpuph: delaunay_simplices expects an"):
        delaunay_simplices([[0.0, 1.0], [2.0]])
    leaf = torch.from_numpy(x).requires_grad_(True)  # a tensor that requires grad is read, not refused
    assert all(np.array_equal(a, b) for a, b in zip(delaunay_simplices(leaf), blocks))
    assert np.array_equal(delaunay_edges(leaf), delaunay_edges(x))
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        delaunay_simplices(np.zeros(4))


def test_complex_flag_pairs_refuses_bad_tables():
    """The operator behind complex="delaunay" checks its tables: no crash or garbage on a triangle whose edges do
    not bound one, a cell of another image, an edge listed twice, bad offsets."""
    from gpuph._ext import ops

    edges = torch.tensor([[0, 1], [1, 2], [0, 2], [2, 3]])
    lengths = torch.tensor([1.0, 2.0, 3.0, 4.0])
    one = torch.tensor([0, 4])
    no_tets, tet_off = torch.zeros(0, 4, dtype=torch.int64), torch.tensor([0, 0])

    def run(tri, tri_off=None, e=edges):
        tri_off = torch.tensor([0, len(tri)]) if tri_off is None else tri_off
        return ops.complex_flag_pairs(e, lengths, one, torch.tensor([4]), 4, 0b111, tri, tri_off, no_tets, tet_off)

    rows = run(torch.tensor([[0, 1, 2]]))
    assert rows[:, 1].tolist() == [0] * 4  # 3 deaths and one essential class: the triangle fills the cycle
    with pytest.raises(ValueError, match="do not bound a triangle"):
        run(torch.tensor([[0, 1, 3]]))
    with pytest.raises(ValueError, match="not an edge of its image"):
        run(torch.tensor([[0, 1, 7]]))
    with pytest.raises(ValueError, match="same edge twice"):
        run(torch.zeros(0, 3, dtype=torch.int64), e=torch.tensor([[0, 1], [1, 0], [0, 2], [2, 3]]))
    with pytest.raises(ValueError, match="offsets"):
        run(torch.tensor([[0, 1, 2]]), torch.tensor([0, 2]))
    with pytest.raises(ValueError, match="same triangle twice"):
        run(torch.tensor([[0, 1, 2], [2, 0, 1]]))
    with pytest.raises(ValueError, match="lengths must be >= 0"):
        ops.complex_flag_pairs(edges, -lengths, one, torch.tensor([4]), 4, 0b111, torch.tensor([[0, 1, 2]]),
                               torch.tensor([0, 1]), no_tets, tet_off)
    with pytest.raises(ValueError, match="do not bound a tetrahedron"):
        ops.complex_flag_pairs(edges, lengths, one, torch.tensor([4]), 4, 0b111, torch.tensor([[0, 1, 2]] * 4),
                               torch.tensor([0, 4]), torch.tensor([[0, 1, 2, 3]]), torch.tensor([0, 1]))
    # Two triangles without a common edge, each named twice, pass an edge count (six edges, each twice) but are no
    # tetrahedron: a column holding a row twice would never finish reducing.
    e7 = torch.tensor([[0, 1], [1, 2], [0, 2], [3, 4], [4, 5], [3, 5]])
    with pytest.raises(ValueError, match="do not bound a tetrahedron"):
        ops.complex_flag_pairs(e7, torch.arange(1.0, 7.0), torch.tensor([0, 6]), torch.tensor([6]), 6, 0b111,
                               torch.tensor([[0, 1, 2], [3, 4, 5]]), torch.tensor([0, 2]), torch.tensor([[0, 0, 1, 1]]),
                               torch.tensor([0, 1]))


def test_rows_with_infinite_lengths_keep_the_pinned_order():
    """An edge of infinite length kills a class after an infinite lifetime, as essential classes live: essential
    rows come first among them (std::sort with an inconsistent order read past the rows). Each graph: a square
    whose diagonal is infinitely long (its loop dies at inf) and a square without one (an essential loop)."""
    from gpuph._ext import ops

    rng = np.random.default_rng(3)
    graphs = 300
    one = [[0, 1], [1, 2], [2, 3], [0, 3], [0, 2], [4, 5], [5, 6], [6, 7], [4, 7]]
    edges = torch.tensor(one).repeat(graphs, 1)
    lengths = torch.from_numpy(rng.random(len(one) * graphs))
    lengths[4::len(one)] = math.inf
    offsets = torch.arange(graphs + 1) * len(one)
    for op in ("flag_pairs", "complex_flag_pairs"):
        extra = () if op == "flag_pairs" else (
            (torch.tensor([[0, 1, 4], [2, 3, 4]])[None] + offsets[:-1, None, None]).reshape(-1, 3),
            torch.arange(graphs + 1) * 2, torch.zeros(0, 4, dtype=torch.int64),
            torch.zeros(graphs + 1, dtype=torch.int64))
        rows = getattr(ops, op)(edges, lengths, offsets, torch.full((graphs,), 8), 8, 0b11, *extra)
        for b in range(graphs):
            r = rows[rows[:, 0] == b].tolist()
            assert sum(k == 1 and d < 0 for _, k, _, d, _, _ in r) == 1  # the essential loop ...
            assert sum(k == 1 and d >= 0 and math.isinf(lengths[dp]) for _, k, _, d, _, dp in r) == 1  # ... the other
            life = [math.inf if d < 0 else float(lengths[dp] - (0 if k == 0 else lengths[bp]))
                    for _, k, _, d, bp, dp in r]
            key = [(k, -lf, 0 if d < 0 else 1) for (_, k, _, d, _, _), lf in zip(r, life)]
            assert key == sorted(key), (op, b)


def gudhi_flag_of_complex(x: np.ndarray, simplices, maxdim: int) -> dict[int, np.ndarray]:
    """GUDHI's SimplexTree holding the faces (up to dimension maxdim + 1) of the given simplices, each at its longest
    edge (lengths as gpuph computes them)."""
    import gudhi

    st_ = gudhi.SimplexTree()
    for v in range(len(x)):
        st_.insert([v], 0.0)
    t = torch.as_tensor(x)
    for s in simplices:
        for k in range(2, min(len(s), maxdim + 2) + 1):
            for f in itertools.combinations(sorted(s), k):
                st_.insert(list(f), max(float(torch.linalg.vector_norm(t[a] - t[b]))
                                        for a, b in itertools.combinations(f, 2)))
    return _by_dim(st_.persistence(homology_coeff_field=2, min_persistence=0, persistence_dim_max=True), maxdim)


@given(n=st.integers(1, 16), d=st.integers(1, 3), seed=st.integers(0, 2**31 - 1), maxdim=st.integers(0, 2),
       density=st.sampled_from([0.05, 0.2, 0.6]))
def test_flag_persistence_of_a_given_complex_equals_gudhi(n, d, seed, maxdim, density):
    """Random complexes (random tetrahedra, triangles and edges, faces added) on random and quantised clouds."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    if seed % 2:
        x = np.round(x)  # ties
    simplices = [list(c) for k in (2, 3, 4) for c in itertools.combinations(range(n), k) if rng.random() < density / k]
    dgm = gpuph.flag_persistence(torch.from_numpy(x), simplices, dims=tuple(range(maxdim + 1)))
    assert dgm.construction == "flag"
    assert_same(ours(dgm, maxdim=maxdim), gudhi_flag_of_complex(x, simplices, maxdim), f"n={n} d={d}")
    t = torch.from_numpy(x)
    check_critical_edges(dgm, lambda b, i, j: torch.linalg.vector_norm(t[i] - t[j]).item())


def test_flag_persistence_generalises_rips_and_the_delaunay_complex():
    x = torch.from_numpy(np.random.default_rng(14).random((4, 14, 3)))
    everything = list(itertools.combinations(range(14), 4))
    got = gpuph.flag_persistence(x, everything, dims=(0, 1, 2))
    for b in range(4):
        assert_same(ours(got, b, maxdim=2), ours(rips_persistence(x[b], dims=(0, 1, 2)), maxdim=2), "rips",
                    rtol=1e-12)
        (tets,) = delaunay_simplices(x[b].numpy())
        _same_rows(gpuph.flag_persistence(x[b], tets, dims=(0, 1, 2)),
                   delaunay_alpha_persistence(x[b], dims=(0, 1, 2)), 0)


def test_flag_persistence_batches_shapes_and_errors():
    rng = np.random.default_rng(15)
    x = torch.from_numpy(rng.random((2, 3, 10, 2))).requires_grad_(True)
    tris = [[0, 1, 2], [2, 3, 4], [4, 5, 6, 7], [7, 8], [1, 9]]
    dgm = gpuph.flag_persistence(x, tris)
    assert dgm.batch_shape == (2, 3) and dgm.batch_size == 6 and dgm.spatial_shape == (10, 10)
    flat = x.reshape(6, 10, 2)
    for b in range(6):
        _same_rows(dgm, gpuph.flag_persistence(flat[b], tris), b)
    cx = gpuph.lower_star.prepare_complex(tris, 10, max_dim=2)
    _same_rows(gpuph.flag_persistence(flat[1], cx), gpuph.flag_persistence(flat[1], tris), 0)
    assert torch.autograd.gradcheck(lambda p: gpuph.flag_persistence(p, tris).finite().pairs,
                                    (flat[0].detach().clone().requires_grad_(True),))
    assert len(gpuph.flag_persistence(torch.zeros(0, 10, 2), tris)) == 0
    assert int((gpuph.flag_persistence(flat[0], []).death_index < 0).sum()) == 10  # isolated vertices
    with pytest.raises(ValueError, match="out of range"):
        gpuph.flag_persistence(flat[0], [[0, 10]])
    with pytest.raises(ValueError, match=r"truncated to dimension 2; homology up to dimension 2 needs .*max_dim=3"):
        gpuph.flag_persistence(flat[0], gpuph.lower_star.prepare_complex([[0, 1, 2, 3]], 10), dims=(0, 1, 2))
    with pytest.raises(ValueError, match=r"out of range 0\.\.9 \(the complex has 10 vertices\)"):
        gpuph.flag_persistence(flat[0], [[0, 10]])
    with pytest.raises(ValueError, match="the complex has 9 vertices, the points 10"):
        gpuph.flag_persistence(flat[0], gpuph.lower_star.prepare_complex([[0, 1]], 9))
    with pytest.raises(ValueError, match="NaN"):
        gpuph.flag_persistence(torch.full((3, 2), math.nan), [[0, 1]])
    with pytest.raises(ValueError, match="shape"):
        gpuph.flag_persistence(torch.rand(3), [[0, 1]])
    with pytest.raises(ValueError, match="0, 1 and 2 only"):
        gpuph.flag_persistence(flat[0], tris, dims=3)


def test_weak_alpha_ignores_copies():
    """Repeated points add only zero-length pairs, which are dropped: the diagrams are those of the distinct
    points."""
    x = np.random.default_rng(11).random((30, 2))
    with_copies = np.concatenate([x, x[[3, 7, 7, 20]]])
    assert_same(ours(weak_alpha_persistence(with_copies)), ours(weak_alpha_persistence(x)), "copies")


def test_weak_alpha_h1_of_annulus_matches_rips_loop():
    a = np.random.default_rng(2).uniform(0, 2 * np.pi, 200)
    r = np.random.default_rng(3).uniform(0.9, 1.0, 200)
    x = torch.from_numpy(np.stack([r * np.cos(a), r * np.sin(a)], 1))
    lt = weak_alpha_persistence(x).in_dim(1).lifetimes()
    assert float(lt.max()) > 0.8 and int((lt > 0.5).sum()) == 1


# ---------------------------------------------------------------------------------------------- magnitudes
@pytest.mark.parametrize("exponent", [266, 465, -500])  # about 1e80, 1e140, 1e-150
def test_weak_alpha_of_a_scaled_cloud_is_the_scaled_diagram(exponent):
    """Scaling by a power of two changes no bit of the Delaunay graph (Qhull gets the cloud at unit size; on raw
    coordinates it failed from about 1e60 and crashed from about 1e120) nor of the lengths relative to the scale."""
    x = np.random.default_rng(4).standard_normal((25, 3))
    y = np.ldexp(x, exponent)
    assert np.array_equal(delaunay_edges(y), delaunay_edges(x))
    a, b = weak_alpha_persistence(torch.from_numpy(x)), weak_alpha_persistence(torch.from_numpy(y))
    assert torch.equal(torch.ldexp(a.pairs, torch.tensor(exponent)), b.pairs)
    assert torch.equal(a.birth_index, b.birth_index) and torch.equal(a.death_index, b.death_index)


def _components(n: int, edges: np.ndarray) -> int:
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    graph = coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n, n))
    return connected_components(graph, directed=False)[0]


def test_weak_alpha_of_tight_clusters_far_from_the_origin():
    """Distinct points within 1e-14 of each other: Qhull must see them centred (it failed on the raw coordinates),
    and points it drops are joined to the graph (they were joined to each other, splitting it)."""
    far = np.array([[1.0000000000000075, 0.9999999999999984], [0.9999999999999957, 0.9999999999999994],
                    [0.9999999999999909, 0.9999999999999962], [1.000000000000008, 1.000000000000002]])
    dropped = np.array([[1.0000000000000064, 1.12e-14], [1.000000000000011, 1.0000000000000124],
                        [0.9999999999999959, -9.9e-15], [9.8e-15, 1.0000000000000142],
                        [1.0000000000000007, 1.58e-14], [0.9999999999999873, 1.0000000000000016],
                        [-2e-16, 0.999999999999993], [1.36e-14, -6e-16], [1.11e-14, -1.16e-14],
                        [1.0000000000000056, 5.6e-15]])
    rng = np.random.default_rng(9)
    corners = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    clusters = [corners[rng.integers(0, 4, 12)] + rng.standard_normal((12, 2)) * 1e-14 for _ in range(300)]
    for x in [far, dropped, *clusters]:
        edges = delaunay_edges(x)
        assert _components(len(x), edges) == 1
        dgm = weak_alpha_persistence(torch.from_numpy(x))
        assert len(dgm.essential()) == 1
        assert_same(ours(dgm), gudhi_flag(len(x), edges, edge_lengths(x, edges)), "cluster")


@pytest.mark.parametrize("fn", FNS)
@pytest.mark.parametrize("dtype, scale", [(torch.float32, 1e20), (torch.float32, 1e-30), (torch.float32, 1e-41),
                                          (torch.float64, 1e160), (torch.float64, 1e-200), (torch.float64, 1e-310)])
def test_clouds_of_any_magnitude(fn, dtype, scale):
    """Distances whose squares overflow or underflow the dtype are still right: finite pairs have finite,
    nonzero values, none is lost (they were inf, or dropped as zero-length)."""
    x = torch.from_numpy(np.random.default_rng(6).random((15, 2))).to(dtype) * scale
    dgm = fn(x)
    ref = fn(x.double() / scale)
    assert dgm.pairs.dtype == dtype and len(dgm) == len(ref)
    assert torch.equal(dgm.dim, ref.dim) and torch.equal(dgm.death_index, ref.death_index)
    finite = dgm.death_index >= 0
    assert torch.isfinite(dgm.pairs[finite]).all() and (dgm.pairs[finite, 1] > 0).all()
    # Subnormal results (the 1e-41 and 1e-310 clouds) are exact only to the dtype's smallest step.
    step = torch.finfo(dtype).smallest_normal * torch.finfo(dtype).eps
    torch.testing.assert_close(dgm.pairs.double(), ref.pairs * scale, rtol=1e-6, atol=2 * step)
    assert math.isfinite(float(dgm.filtration_end[0]))


def test_a_list_of_clouds_promotes_dtypes_and_ignores_the_padding():
    """The clouds of a list are padded with points at the origin into one batch: the padding is no point of a cloud
    (here it would be the farthest one, and each cloud's longest edge), and the dtype is the promoted one."""
    rng = np.random.default_rng(16)
    clouds = [torch.from_numpy(10 + rng.random((n, 2))) for n in (5, 3, 2)]
    for fn in FNS:
        together = fn(clouds)
        for b, c in enumerate(clouds):
            alone = fn(c)
            assert together.filtration_end[b] == alone.filtration_end[0]
            assert torch.equal(together.pairs[together.batch == b], alone.pairs)
        for mixed in ([clouds[0].float(), clouds[1]], [clouds[0], clouds[1].float()]):
            assert fn(mixed).pairs.dtype == torch.float64


def test_clouds_of_different_magnitudes_in_one_list():
    """Each cloud of a list (padded into one batch) has its own scale: a huge cloud beside a tiny one."""
    rng = np.random.default_rng(12)
    clouds = [torch.from_numpy(rng.random((n, 2)) * s).float() for n, s in ((9, 1e25), (5, 1e-25), (0, 1.0),
                                                                            (7, 1.0))]
    for fn in FNS:
        together = fn(clouds)
        for b, c in enumerate(clouds):
            alone = fn(c)
            sel = together.batch == b
            assert torch.equal(together.pairs[sel], alone.pairs)
            assert torch.isfinite(alone.pairs[alone.death_index >= 0]).all()


@pytest.mark.parametrize("fn", FNS)
@pytest.mark.parametrize("scale", [1e150, 1e-150])
def test_gradcheck_through_the_scaling(fn, scale):
    x = (torch.from_numpy(np.random.default_rng(13).random((8, 2))) * scale).requires_grad_()
    assert torch.autograd.gradcheck(lambda x: fn(x).pairs[fn(x).death_index >= 0] / scale, (x,),
                                   eps=1e-6 * scale, atol=1e-5)


def test_delaunay_of_points_an_ulp_apart():
    """Scaling Qhull's input by the largest coordinate itself rounds and could merge points an ulp apart (then
    fail); a power of two keeps them apart."""
    q = np.array([[1.9504637, 3.39949353], [np.nextafter(1.9504637, 2), 3.39949353]])
    assert delaunay_edges(q).tolist() == [[0, 1]]
    one = np.nextafter(1.0, 2)
    q = np.array([[1.0, 1.0], [one, 1.0], [1.0, one], [np.nextafter(1.0, 0), 1.0]])
    assert _components(4, delaunay_edges(q)) == 1
    assert len(weak_alpha_persistence(torch.from_numpy(q)).essential()) == 1


def test_pairwise_distances_scaling_changes_no_bit():
    """Unscaled (inside the safe range) or scaled by a power of two (outside it, 1e-12 and 1e12 in float32, 1e-70
    and 1e70 in float64, where torch.cdist's own squares still neither overflow nor underflow): torch.cdist's bits."""
    from gpuph.point_cloud import _unit_scale

    rng = np.random.default_rng(8)
    for dtype, outside in ((torch.float32, (1e-12, 1e12)), (torch.float64, (1e-70, 1e70))):
        for scale in (1e-3, 0.7, 1.0, 3.0, 1e4, *outside):
            x = torch.from_numpy(rng.standard_normal((3, 20, 3)) * scale).to(dtype)
            ref = torch.cdist(x, x, compute_mode="donot_use_mm_for_euclid_dist")
            assert torch.equal(pairwise_distances(x), ref)
            assert (_unit_scale(x) is None) == (scale not in outside)


# ---------------------------------------------------------------------------------------------- H2
def _sphere(n: int, seed: int, noise: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    v = rng.standard_normal((n, 3))
    return v / np.linalg.norm(v, axis=1, keepdims=True) + noise * rng.standard_normal((n, 3))


@given(n=st.integers(0, 22), d=st.integers(1, 4), seed=st.integers(0, 2**31 - 1), quantile=st.sampled_from(
    [None, 0.3, 0.6]), grid=st.booleans())
def test_rips_h2_equals_gudhi(n, d, seed, quantile, grid):
    """H0-H2 with GUDHI's Rips complex of dimension 3, on generic clouds and on clouds snapped to a coarse grid
    (many equal lengths: the tie-breaking of tetrahedra), with and without a threshold (essential H2 classes)."""
    x = np.random.default_rng(seed).standard_normal((n, d))
    if grid:
        x = np.round(x * 2) / 2
    D = dist64(x)
    thr = math.inf if quantile is None or n < 2 else float(np.quantile(D[np.triu_indices(n, 1)], quantile))
    dgm = rips_persistence(torch.from_numpy(x), dims=(0, 1, 2), max_edge_length=thr)
    assert_same(ours(dgm, maxdim=2), gudhi_rips(D, thr, maxdim=2), f"n={n} d={d} thr={thr}")
    t = torch.from_numpy(D)
    check_critical_edges(dgm, lambda b, i, j: t[i, j])
    assert dgm.counts().shape == (1, 3) and dgm.ndim == 3


@pytest.mark.parametrize("name", ["cube", "sphere", "noisy_sphere", "uniform"])
def test_rips_h2_equals_ripser(name):
    """Larger clouds than GUDHI is quick on: the vertices of a cube (all ties), points on a sphere (one long H2
    class), the same with noise, uniform points in the unit cube; also with H2 alone and with a threshold."""
    x = {
        "cube": np.array(np.meshgrid(*[np.arange(3.0)] * 3, indexing="ij")).reshape(3, -1).T,
        "sphere": _sphere(70, 1),
        "noisy_sphere": _sphere(80, 2, 0.1),
        "uniform": np.random.default_rng(3).random((70, 3)),
    }[name]
    D = dist64(x)
    want = ripser_rips(D, maxdim=2)
    dgm = rips_persistence(torch.from_numpy(x), dims=(0, 1, 2))
    assert_same(ours(dgm, maxdim=2), want, name, rtol=1e-6)
    only = rips_persistence(torch.from_numpy(x), dims=2)
    assert set(only.dim.tolist()) <= {2} and len(only) == len(want[2])
    torch.testing.assert_close(only.pairs, dgm.in_dim(2).pairs)
    assert torch.equal(only.death_index, dgm.in_dim(2).death_index)
    thr = float(np.quantile(D[np.triu_indices(len(x), 1)], 0.4))
    cut = rips_persistence(torch.from_numpy(x), dims=(0, 1, 2), max_edge_length=thr)
    assert_same(ours(cut, maxdim=2), ripser_rips(D, thr, maxdim=2), f"{name} thr", rtol=1e-6)


def test_rips_h2_of_a_sphere_and_unchanged_h0_h1():
    """60 points on the unit sphere have one H2 class, living for about half the radius; asking for H2 leaves H0
    and H1 as they were."""
    x = torch.from_numpy(_sphere(60, 4))
    dgm = rips_persistence(x, dims=(0, 1, 2))
    lt = dgm.in_dim(2).lifetimes()
    assert len(lt) == 1 and float(lt.max()) > 0.4
    low = rips_persistence(x)
    assert low.ndim == 2 and low.counts().shape == (1, 2)
    for k in (0, 1):
        a, b = dgm.in_dim(k), low.in_dim(k)
        assert torch.equal(a.pairs, b.pairs) and torch.equal(a.birth_index, b.birth_index)


@given(n=st.integers(4, 40), seed=st.integers(0, 2**31 - 1))
def test_weak_alpha_h2_equals_gudhi_flag(n, seed):
    x = np.random.default_rng(seed).standard_normal((n, 3))
    dgm = weak_alpha_persistence(torch.from_numpy(x), dims=(0, 1, 2))
    edges = delaunay_edges(x)
    lengths = edge_lengths(x, edges)
    assert_same(ours(dgm, maxdim=2), gudhi_flag(n, edges, lengths, maxdim=2), f"n={n}")
    table = {(int(i), int(j)): v for (i, j), v in zip(edges.tolist(), lengths.tolist())}
    check_critical_edges(dgm, lambda b, i, j: table[(i, j)])


def test_rips_h2_batch_equals_one_by_one():
    clouds = [torch.from_numpy(_sphere(n, s, 0.05)) for n, s in ((30, 1), (18, 2), (25, 3))]
    batch = rips_persistence(clouds, dims=(0, 1, 2))
    assert batch.counts().shape == (3, 3)
    for b, c in enumerate(clouds):
        assert_same(ours(batch, b, maxdim=2), ours(rips_persistence(c, dims=(0, 1, 2)), maxdim=2), f"cloud {b}")


@pytest.mark.parametrize("filtration", ["rips", "weak_alpha", "delaunay"])
def test_h2_on_several_threads_equals_one_thread_and_the_oracle(filtration):
    """Clouds large enough that H2's column search runs in parallel chunks of edges: the same rows, critical edges
    included, on one thread and on several, and the oracle's diagrams (ripser; GUDHI's flag complex). Rips also
    without the bitsets (the scans that take over past 8192 points)."""
    n = 130 if filtration == "rips" else 400
    x = torch.from_numpy(np.random.default_rng(7).random((n, 3)))
    fn = {"rips": rips_persistence, "weak_alpha": weak_alpha_persistence, "delaunay": delaunay_alpha_persistence}[
        filtration]
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        runs = [fn(x, dims=(0, 1, 2))]
        torch.set_num_threads(max(2, before))
        runs.append(fn(x, dims=(0, 1, 2)))
        if filtration == "rips":
            with setting(torch.ops.gpuph._flag_bitset_vertices, 0):
                runs.append(fn(x, dims=(0, 1, 2)))
    finally:
        torch.set_num_threads(before)
    for run in runs[1:]:
        for f in ("pairs", "dim", "birth_index", "death_index"):
            assert torch.equal(getattr(runs[0], f), getattr(run, f)), f
    if filtration == "rips":
        want = ripser_rips(dist64(x.numpy()), maxdim=2)
    elif filtration == "delaunay":
        want = gudhi_delaunay(x.numpy(), maxdim=2)
    else:
        edges = delaunay_edges(x.numpy())
        want = gudhi_flag(n, edges, edge_lengths(x.numpy(), edges), maxdim=2)
    assert len(want[2]) >= 5
    assert_same(ours(runs[0], maxdim=2), want, filtration, rtol=1e-6)


def test_rips_h2_gradcheck():
    """A perturbed octahedron: its 12 sides close a sphere (H2 born at the longest side), which the longest
    diagonal fills."""
    rng = np.random.default_rng(5)
    x = torch.from_numpy(np.concatenate([np.eye(3), -np.eye(3)]) + 0.05 * rng.standard_normal((6, 3)))
    x.requires_grad_(True)
    assert len(rips_persistence(x, dims=2).finite()) == 1

    def f(p):
        return rips_persistence(p, dims=2).finite().pairs

    assert torch.autograd.gradcheck(f, (x,), eps=1e-7, atol=1e-6)


# ---------------------------------------------------------------------------------------------- gradients
def _generic_cloud(n, d, seed):
    return torch.from_numpy(np.random.default_rng(seed).random((n, d))).requires_grad_(True)


@pytest.mark.parametrize("fn", FNS)
def test_gradcheck(fn):
    x = _generic_cloud(18, 2, 4)

    def f(p):
        dgm = fn(p)
        fin = dgm.finite()
        return fin.pairs, dgm.filtration_end

    assert torch.autograd.gradcheck(f, (x,), eps=1e-7, atol=1e-6)


@pytest.mark.parametrize("fn", FNS)
def test_gradient_moves_the_endpoints_along_the_edge(fn):
    x = _generic_cloud(25, 3, 9)
    dgm = fn(x)
    r = int(torch.nonzero(dgm.death_index >= 0)[-1])
    dgm.pairs[r, 1].backward()
    i, j = divmod(int(dgm.death_index[r]), dgm.spatial_shape[0])
    u = (x[i] - x[j]).detach() / (x[i] - x[j]).detach().norm()
    expect = torch.zeros_like(x)
    expect[i], expect[j] = u, -u
    torch.testing.assert_close(x.grad, expect)


def test_gradients_are_finite_with_duplicates():
    x = torch.from_numpy(np.repeat(np.random.default_rng(1).random((10, 2)), 2, axis=0)).requires_grad_(True)
    for fn in FNS:
        x.grad = None
        dgm = fn(x)
        (dgm.finite().pairs.sum() + dgm.filtration_end.sum()).backward()
        assert torch.isfinite(x.grad).all()


def _flag_of_a_complex(p):
    return gpuph.flag_persistence(p, [[0, 1, 2, 3], [2, 3, 4, 5, 6], [6, 7, 8], [1, 5, 9, 10, 11]], dims=(0, 1, 2))


@pytest.mark.parametrize("fn", [*FNS, _flag_of_a_complex])
@pytest.mark.parametrize("scale", [1.0, 1e150], ids=["unit", "scaled"])
def test_second_order_gradients(fn, scale):
    """Double backward (gradient penalties, Hessian-vector products) and torch.func.hessian (forward-mode over
    reverse-mode) work for every filtration, through the scaling of extreme clouds too: checked against finite
    differences of the gradient, and the Hessian is symmetric."""
    x = (_generic_cloud(12, 2, 5).detach() * scale).requires_grad_()

    def loss(p):
        dgm = fn(p / 1.0)
        return (dgm.finite().lifetimes() / scale).pow(3).sum() + (dgm.filtration_end / scale).pow(2).sum()

    assert torch.autograd.gradgradcheck(loss, (x,), eps=1e-7 * scale, atol=1e-5)
    h = torch.func.hessian(loss)(x.detach()).reshape(24, 24)
    assert torch.allclose(h, torch.func.jacrev(torch.func.jacrev(loss))(x.detach()).reshape(24, 24))
    assert torch.allclose(h, h.T) and bool(h.abs().sum() > 0)


@pytest.mark.parametrize("fn", [*FNS, _flag_of_a_complex])
def test_torch_func_grad_equals_autograd(fn):
    # The triangulation reads the coordinates on the host, which torch.func's wrappers hide.
    x = _generic_cloud(15, 2, 6)

    def loss(p):
        dgm = fn(p)
        return dgm.finite().lifetimes().pow(2).sum() + dgm.filtration_end.sum()

    loss(x).backward()
    assert torch.equal(torch.func.grad(loss)(x.detach()), x.grad)
    with pytest.raises(RuntimeError, match="vmap"):
        torch.vmap(loss)(x.detach()[None].expand(2, 15, 2))


# ---------------------------------------------------------------------------------------------- batching, dtypes
def _same_rows(a: gpuph.Diagrams, b: gpuph.Diagrams, b_index: int) -> None:
    sel = a.batch == b_index
    Na, Nb = a.spatial_shape[0], b.spatial_shape[0]

    def decode(idx, N):  # (i, j) of edges, (v, v) of vertices, None for -1
        return [None if v < 0 else divmod(v, N) for v in idx.tolist()]

    assert torch.equal(a.pairs[sel].detach(), b.pairs.detach())
    assert torch.equal(a.dim[sel], b.dim)
    assert decode(a.birth_index[sel], Na) == decode(b.birth_index, Nb)
    assert decode(a.death_index[sel], Na) == decode(b.death_index, Nb)


@pytest.mark.parametrize("fn", FNS)
def test_batch_equals_one_by_one(fn):
    x = torch.rand(5, 30, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    dgm = fn(x)
    assert dgm.batch_size == 5 and dgm.batch_shape == (5,) and dgm.spatial_shape == (30, 30)
    for b in range(5):
        _same_rows(dgm, fn(x[b]), b)
    clouds = [x[0, :7], x[1], x[2, :1], x[3, :0], x[4, :19]]
    dl = fn(clouds)
    assert dl.batch_size == 5 and dl.spatial_shape == (30, 30)
    for b, c in enumerate(clouds):
        _same_rows(dl, fn(c), b)
    torch.testing.assert_close(dl.filtration_end[1], dgm.filtration_end[1])
    # more leading axes are flattened
    assert fn(x.reshape(5, 1, 30, 2)).batch_shape == (5, 1)


def test_filtration_end_is_longest_edge():
    x = torch.rand(3, 20, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    D = pairwise_distances(x)
    torch.testing.assert_close(rips_persistence(x).filtration_end, D.amax((1, 2)), rtol=0, atol=0)
    thr = 0.5
    assert torch.equal(rips_persistence(x, max_edge_length=thr).filtration_end,
                       D.masked_fill(D > thr, 0).amax((1, 2)))
    for b in range(3):
        e = delaunay_edges(x[b].numpy())
        assert float(weak_alpha_persistence(x).filtration_end[b]) == edge_lengths(x[b].numpy(), e).max()


def test_dims_and_dtypes():
    x = torch.rand(2, 25, 2, generator=torch.Generator().manual_seed(2))
    full = rips_persistence(x)
    h0, h1 = rips_persistence(x, dims=0), rips_persistence(x, dims=[1])
    assert set(h0.dim.tolist()) == {0} and set(h1.dim.tolist()) == {1}
    assert len(h0) + len(h1) == len(full)
    assert full.pairs.dtype == torch.float32
    half = rips_persistence(x.half())
    assert half.pairs.dtype == torch.float32
    assert_same(ours(half), ours(rips_persistence(x.half().float())), "half")
    before = x.clone()
    weak_alpha_persistence(x)
    assert torch.equal(x, before)
    empty = rips_persistence(torch.zeros(0, 10, 2))
    assert len(empty) == 0 and empty.batch_size == 0
    assert len(weak_alpha_persistence([])) == 0


@pytest.mark.parametrize("fn", FNS)
@pytest.mark.parametrize("shape", [(4, 0, 2), (0, 5, 2)], ids=["no points", "no clouds"])
def test_empty_input_keeps_the_graph(fn, shape):
    # A training loop whose batch happens to be empty still calls backward() on its loss.
    x = torch.zeros(shape, requires_grad=True)
    dgm = fn(x)
    assert dgm.pairs.requires_grad
    gpuph.losses.persistence_energy(dgm, 0, reduction="sum").backward()
    assert x.grad is not None and x.grad.shape == x.shape


def test_float32_threshold_is_compared_as_the_engine_compares_it():
    """The engine keeps an edge when its length, in float64, is at most the threshold; the comparisons made on the
    device (the longest edge for filtration_end, the spanning forest of the CUDA H0 path, run here on the CPU) must
    keep the same edges: float32(0.1) = 0.1000000015 is past a threshold of 0.1."""
    from gpuph.point_cloud import _rips_rows

    x = torch.tensor([[0.0, 0.0], [0.1, 0.0], [0.3, 0.0]])
    dist = pairwise_distances(x[None])
    d01 = float(dist[0, 0, 1])
    assert d01 > 0.1 and float(dist[0, 1, 2]) > d01
    for thr, kept in ((0.1, 0), (d01, 1)):
        dgm = rips_persistence(x, dims=0, max_edge_length=thr)
        assert int((dgm.death_index < 0).sum()) == 3 - kept
        assert dgm.filtration_end.item() == (d01 if kept else 0.0)
        sizes = torch.tensor([3])
        assert torch.equal(_rips_rows(dist, sizes, thr, 1, on_device=True),
                           _rips_rows(dist, sizes, thr, 1, on_device=False))


@pytest.mark.parametrize("fn", FNS)
def test_bad_input(fn):
    good = torch.rand(10, 2)
    bad_nan = good.clone()
    bad_nan[3, 1] = float("nan")
    bad_inf = good.clone()
    bad_inf[0, 0] = float("inf")
    with pytest.raises(ValueError, match="NaN"):
        fn(bad_nan)
    with pytest.raises(ValueError, match="infinite"):
        fn(bad_inf)
    with pytest.raises(ValueError, match="shape"):
        fn(torch.rand(10))
    with pytest.raises(ValueError, match="D = 0"):
        fn(torch.rand(10, 0))
    for ints in (torch.ones(10, 2, dtype=torch.int64), np.ones((10, 2), dtype=np.int32), np.ones((10, 2), dtype=bool)):
        with pytest.raises(TypeError, match="points must be float16, bfloat16, float32 or float64 coordinates"):
            fn(ints)
    with pytest.raises(ValueError, match="0, 1 and 2 only"):
        fn(good, dims=(0, 3))
    with pytest.raises(ValueError, match="share their dimension"):
        fn([torch.rand(4, 2), torch.rand(4, 3)])
    with pytest.raises(ValueError, match=r"\(N_i, D\)"):
        fn([torch.rand(4, 2, 1)])
    if fn is weak_alpha_persistence:
        with pytest.raises(ValueError, match='complex must be "flag" or "delaunay"'):
            fn(good, complex="alpha")
    if fn is rips_persistence:
        with pytest.raises(ValueError, match="max_edge_length"):
            fn(good, max_edge_length=-1.0)
        with pytest.raises(ValueError, match="max_edge_length"):
            fn(good, max_edge_length=float("nan"))
        for wrong in ("1.0", True, None):
            with pytest.raises(TypeError, match="max_edge_length must be a number"):
                fn(good, max_edge_length=wrong)


def test_flag_pairs_refuses_h2_past_its_keys():
    """The flag engine keys a tetrahedron in 64 bits ((R * n + p) * n + q): a graph whose edges x vertices^2 pass
    2^64 gets a clear error for H2 (before anything of size n is allocated), and H0 / H1 of a small one still work."""
    from gpuph._ext import ops

    edges = torch.tensor([[0, 1], [1, 2], [0, 2], [2, 3], [3, 4]])
    lengths = torch.arange(1.0, 6.0)
    offsets = torch.tensor([0, 5])
    n = 2**31 - 1  # 5 * n^2 > 2^64
    with pytest.raises(ValueError, match="64-bit tetrahedron keys"):
        ops.flag_pairs(edges, lengths, offsets, torch.tensor([n]), n, 0b100)
    rows = ops.flag_pairs(edges, lengths, offsets, torch.tensor([5]), 5, 0b111)
    assert rows.shape[1] == 6 and set(rows[:, 1].tolist()) == {0}  # the triangle fills its cycle at once
    assert len(rows) == 5  # H0: 4 deaths and 1 essential class
    for bad in (-2, 46341):
        with pytest.raises(ValueError, match="bitset limit"):
            ops._flag_bitset_vertices(bad)


@pytest.mark.parametrize("fn", FNS)
def test_under_torch_compile(fn):
    """torch.compile (graph breaks allowed) gives eager's values and gradients; the Delaunay code's bool cumsum
    failed when traced."""
    def loss(x):
        return fn(x).finite().lifetimes().sum()

    torch._dynamo.reset()
    x = torch.rand(2, 20, 2, dtype=torch.float64, requires_grad=True)
    got, want = torch.compile(loss, backend="eager")(x), loss(x)
    assert torch.equal(got, want)
    assert torch.equal(torch.autograd.grad(got, x)[0], torch.autograd.grad(want, x)[0])
