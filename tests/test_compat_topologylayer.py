"""gpuph.compat.topologylayer: TopologyLayer's API over gpuph. Layers against GUDHI SimplexTree on TopologyLayer's own
complexes (built here from its definitions), against gpuph's API, batching, gradients, output format, helpers."""

from __future__ import annotations

import itertools
import math
import sys

import numpy as np
import pytest
import torch
from conftest import sidon_values
from reference_simplicial import gudhi_lower_star, sorted_rows

import gpuph
import gpuph.compat.topologylayer as topologylayer
from gpuph.compat.topologylayer.nn import (
    AlphaLayer,
    BarcodePolyFeature,
    LevelSetLayer,
    LevelSetLayer1D,
    LevelSetLayer2D,
    PartialSumBarcodeLengths,
    RipsLayer,
    SumBarcodeLengths,
    TopKBarcodeLengths,
)
from gpuph.compat.topologylayer.util.process import remove_filler, remove_infinite_bars, remove_zero_bars


# ---------------------------------------------------------------------------------------------- TL's complexes
def tl_freudenthal(width: int, height: int) -> list[list[int]]:
    """TopologyLayer's init_freudenthal_2d, transcribed from its definition: row-major ids i * width + j; each
    square gets the diagonal (ind, ind + width + 1) and two triangles."""
    s = [[i * width + j] for i in range(height) for j in range(width)]
    s += [[i * width + j, i * width + j + 1] for i in range(height) for j in range(width - 1)]
    s += [[i * width + j, (i + 1) * width + j] for i in range(height - 1) for j in range(width)]
    for i in range(height - 1):
        for j in range(width - 1):
            ind = i * width + j
            s += [[ind, ind + width + 1], [ind, ind + 1, ind + width + 1], [ind, ind + width, ind + width + 1]]
    return s


def tl_grid(width: int, height: int) -> list[list[int]]:
    """TopologyLayer's init_grid_2d: Freudenthal plus the anti-diagonal and its two triangles in every square."""
    s = tl_freudenthal(width, height)
    for i in range(height - 1):
        for j in range(width - 1):
            ind = i * width + j
            s += [[ind + 1, ind + width], [ind + 1, ind + width, ind + width + 1], [ind, ind + 1, ind + width]]
    return s


def tl_delaunay(width: int, height: int) -> list[list[int]]:
    from scipy.spatial import Delaunay

    grid = np.transpose(np.array(np.meshgrid(np.arange(width), np.arange(height))), (1, 2, 0)).reshape(-1, 2)
    return Delaunay(grid).simplices.tolist()


def tl_dgms_vs_gudhi(dgms, f, simplices, maxdim: int, sublevel: bool) -> None:
    ref = gudhi_lower_star(f, simplices, maxdim, sublevel)
    assert len(dgms) == maxdim + 1
    for k in range(maxdim + 1):
        got = dgms[k]
        assert got.dim() == 2 and got.shape[1] == 2
        assert np.array_equal(sorted_rows(got.detach().double().numpy()), ref[k]), (k, got, ref[k])


def _image(seed: int, shape, ties: bool) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    if ties:
        return torch.randint(0, 3, shape, generator=g).float()
    return torch.rand(shape, generator=g)


# ---------------------------------------------------------------------------------------------- LevelSetLayer2D
@pytest.mark.parametrize("complex_", ["freudenthal", "grid", "delaunay"])
@pytest.mark.parametrize("sublevel", [True, False], ids=["sub", "super"])
@pytest.mark.parametrize("size", [(5, 4), (3, 6), (6, 6)], ids=str)
def test_levelset2d_vs_gudhi_on_topologylayers_complex(complex_, sublevel, size):
    width, height = size
    build = {"freudenthal": tl_freudenthal, "grid": tl_grid, "delaunay": tl_delaunay}[complex_]
    simplices = build(width, height)
    for maxdim in (0, 1):
        layer = LevelSetLayer2D(size=size, maxdim=maxdim, sublevel=sublevel, complex=complex_)
        for seed, ties in ((0, False), (1, True), (2, True)):
            x = _image(seed, (height, width), ties)
            dgms, issub = layer(x)
            assert issub is sublevel
            tl_dgms_vs_gudhi(dgms, x.numpy(), simplices, maxdim, sublevel)


def test_grid_complex_h2_with_maxdim_2():
    # TopologyLayer's "grid" complex has four triangles per square (a hollow tetrahedron): one H2 class each.
    x = _image(3, (4, 5), False)
    dgms, _ = LevelSetLayer2D(size=(5, 4), maxdim=2, complex="grid")(x)
    tl_dgms_vs_gudhi(dgms, x.numpy(), tl_grid(5, 4), 2, True)
    assert len(dgms[2]) == 4 * 3 and torch.all(dgms[2][:, 1] == math.inf)


def test_readme_example_and_output_format():
    layer = LevelSetLayer2D(size=(3, 3), maxdim=1, sublevel=False)
    x = torch.tensor([[2, 1, 1], [1, 0.5, 1], [1, 1, 1]], dtype=torch.float)
    dgms, issublevelset = layer(x)
    assert isinstance(dgms, tuple) and issublevelset is False
    assert dgms[0].tolist() == [[2.0, -math.inf]]
    assert dgms[1].tolist() == [[1.0, 0.5]]
    assert dgms[0].dtype == torch.float32
    dgms, issub = LevelSetLayer2D(size=(3, 3), maxdim=3)(x)
    assert issub is True and len(dgms) == 4 and dgms[2].shape == (0, 2) and dgms[3].shape == (0, 2)
    assert dgms[0][0].tolist() == [0.5, math.inf]


def test_any_shape_with_the_right_number_of_values_is_one_image():
    # TopologyLayer reads f.view(-1): a flat vector of width * height values is one image, row-major.
    x = _image(4, (4, 7), False)
    layer = LevelSetLayer2D(size=(7, 4), sublevel=False)
    a, _ = layer(x)
    b, _ = layer(x.reshape(-1))
    c, _ = layer(x.reshape(1, 1, 4, 7))
    for k in (0, 1):
        assert torch.equal(a[k], b[k]) and torch.equal(a[k], c[k])


@pytest.mark.parametrize("complex_", ["freudenthal", "grid"])
def test_levelset2d_equals_gpuph_api(complex_):
    x = _image(5, (3, 6, 5), True)
    construction = "freudenthal" if complex_ == "freudenthal" else "T"
    layer = LevelSetLayer2D(size=(5, 6), sublevel=False, complex=complex_)
    batched = layer(x)
    ref = gpuph.cubical_persistence(x, construction=construction, superlevel=True)
    assert isinstance(batched, gpuph.Diagrams)
    for f in ("pairs", "dim", "batch", "birth_index", "death_index"):
        assert torch.equal(getattr(batched, f), getattr(ref, f))
    for b in range(3):
        dgms, _ = layer(x[b])
        for k in (0, 1):
            assert torch.equal(dgms[k], ref.pairs[(ref.batch == b) & (ref.dim == k)])


def test_batch_features_equal_single_image_features():
    x = _image(6, (4, 6, 6), True) + _image(7, (4, 6, 6), False) / 10
    layer = LevelSetLayer2D(size=(6, 6), sublevel=False)
    batched = layer(x)
    features = [SumBarcodeLengths(0), SumBarcodeLengths(1), TopKBarcodeLengths(1, 3),
                PartialSumBarcodeLengths(0, 1), BarcodePolyFeature(0, 2, 1)]
    for feat in features:
        out = feat(batched)
        for b in range(4):
            assert torch.allclose(out[b], feat(layer(x[b])), rtol=1e-6, atol=0), feat
    one = layer.diagrams(x[0])  # always a Diagrams, here a batch of one
    assert isinstance(one, gpuph.Diagrams) and one.batch_size == 1
    assert torch.equal(one.pairs, torch.cat(layer(x[0])[0]))


def test_feature_layers_are_gpuphs_and_follow_topologylayers_definitions():
    import gpuph.barcode_features as bf

    for name in ("BarcodePolyFeature", "PartialSumBarcodeLengths", "SumBarcodeLengths", "TopKBarcodeLengths"):
        assert getattr(topologylayer.nn, name) is getattr(bf, name), name
    # TopologyLayer's formulas on one image's tuple (finite bars; lengths 3, 1, 2 in H0 and one H1 bar of 0.5).
    dgms = ([torch.tensor([[0.0, 3.0], [1.0, 2.0], [2.0, 4.0]]), torch.tensor([[1.0, 1.5]])], True)
    assert torch.equal(TopKBarcodeLengths(0, 4)(dgms), torch.tensor([3.0, 2.0, 1.0, 0.0]))
    assert SumBarcodeLengths(0)(dgms).item() == 6.0 and SumBarcodeLengths(1)(dgms).item() == 0.5
    assert PartialSumBarcodeLengths(0, 1)(dgms).item() == 3.0  # all but the longest
    assert BarcodePolyFeature(0, 2, 1)(dgms).item() == 3.0**2 * 1.5 + 1.0 * 1.5 + 2.0**2 * 3.0  # length^p * mid^q


@pytest.mark.parametrize("complex_name", ["freudenthal", "grid"])
@pytest.mark.parametrize("maxdim", [0, 1, 2])
def test_batch_and_single_image_agree_on_the_dimensions_held(complex_name, maxdim):
    """A batch holds the dimensions 0..maxdim that one image's tuple holds: a feature of a dimension past maxdim is
    an error both ways (not zeros for the batch), one up to maxdim a value both ways (H2 of a 2D grid: 0)."""
    x = _image(3, (2, 4, 5), True)
    x[:, :3, 1:4] = 0.0
    x[:, 1, 2] = 5.0  # a hole: H1 rows, which maxdim 0 must leave out
    layer = LevelSetLayer2D(size=(5, 4), maxdim=maxdim, complex=complex_name)
    batched = layer(x)
    tuples = topologylayer.util.diagrams_to_tuples(batched)
    for dim in range(4):
        feat = SumBarcodeLengths(dim)
        if dim <= maxdim:
            want = torch.stack([feat(layer(x[b])) for b in range(2)])
            assert torch.equal(feat(batched), want) and torch.equal(torch.stack([feat(t) for t in tuples]), want)
        else:
            for arg in (batched, layer(x[0]), tuples[0]):
                with pytest.raises(ValueError, match=f"no diagram of dimension {dim}"):
                    feat(arg)
    assert all(len(dgms) == maxdim + 1 == len(layer(x[0])[0]) for dgms, _ in tuples)
    # No rows past maxdim either (they would count in Diagrams-level reductions): one image's rows, batched.
    assert bool((batched.dim <= maxdim).all()) and bool((batched.dim == 1).any()) == (maxdim >= 1)
    assert len(batched) == sum(sum(len(d) for d in layer(x[b])[0]) for b in range(2))


# ---------------------------------------------------------------------------------------------- other layers
@pytest.mark.parametrize("sublevel", [True, False], ids=["sub", "super"])
def test_levelset1d_vs_gudhi(sublevel):
    layer = LevelSetLayer1D(size=12, sublevel=sublevel)
    path = [[i, i + 1] for i in range(11)]
    for seed, ties in ((0, False), (1, True)):
        y = _image(seed, (12,), ties)
        dgms, issub = layer(y)
        assert issub is sublevel and len(dgms) == 1
        tl_dgms_vs_gudhi(dgms, y.numpy(), path, 0, sublevel)
    batched = layer(_image(2, (3, 12), True))
    assert isinstance(batched, gpuph.Diagrams) and batched.batch_size == 3


def test_levelset_layer_on_a_simplicial_complex():
    # TopologyLayer README: a star graph.
    cpx = topologylayer.SimplicialComplex()
    cpx.append([0])
    for i in range(1, 5):
        cpx.append([i])
        cpx.append([0, i])
    layer = LevelSetLayer(cpx, maxdim=0, sublevel=True)
    y = torch.tensor([1, 0, 0, 0, 0], dtype=torch.float).requires_grad_(True)
    dgms, issublevel = layer(y)
    assert issublevel is True
    assert sorted(map(tuple, dgms[0].tolist())) == [(0.0, 1.0)] * 3 + [(0.0, math.inf)]
    # A cone over a 4-cycle (TopologyLayer's C++ test) with maxdim 1, and a random complex, against GUDHI.
    cone = [[0, 1, 2], [0, 1, 3], [0, 2, 4], [0, 3, 4], [1, 2], [1, 3], [4, 2], [4, 3]]
    for f in (torch.tensor([2.0, 0, 0, 0, 0]), torch.randn(5, generator=torch.Generator().manual_seed(0))):
        for sublevel in (True, False):
            dgms, _ = LevelSetLayer(cone, maxdim=2, sublevel=sublevel)(f)
            tl_dgms_vs_gudhi(dgms, f.numpy(), cone, 2, sublevel)


def test_levelset_layer_counts_vertices_up_to_the_largest_id_anywhere():
    # The largest id is in the first simplex: the layer still takes one value per id 0..4.
    layer = LevelSetLayer([[0, 4], [1, 2], [2, 3]], maxdim=0)
    assert layer.shape == (5,)
    f = torch.tensor([0.0, 1.0, 2.0, 3.0, 0.5])
    tl_dgms_vs_gudhi(layer(f)[0], f.numpy(), [[0, 4], [1, 2], [2, 3]], 0, True)
    with pytest.raises(ValueError):
        layer(torch.rand(4))


def test_torus_is_not_acyclic():
    # TopologyLayer's layers assume an acyclic complex; gpuph's return the essential classes of any complex.
    a, b = 4, 5
    ids = np.arange(a * b).reshape(a, b)
    cpx = topologylayer.SimplicialComplex()
    for i in range(a):
        for j in range(b):
            p, q, r, s = ids[i, j], ids[i, (j + 1) % b], ids[(i + 1) % a, j], ids[(i + 1) % a, (j + 1) % b]
            cpx.append([p, q, s])
            cpx.append([p, r, s])
    f = torch.randn(a * b, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    dgms, _ = LevelSetLayer(cpx, maxdim=2)(f)
    tl_dgms_vs_gudhi(dgms, f.numpy(), cpx.cells, 2, True)
    assert [int(torch.isinf(d[:, 1]).sum()) for d in dgms] == [1, 2, 1]


# ---------------------------------------------------------------------------------------------- gradients
@pytest.mark.parametrize("sublevel", [True, False], ids=["sub", "super"])
def test_gradcheck_through_layers_and_features(sublevel):
    x = sidon_values((5, 4), 11).requires_grad_()
    layer2d = LevelSetLayer2D(size=(4, 5), sublevel=sublevel)
    cpx = topologylayer.nn.levelset.init_freudenthal_2d(4, 5)
    layer = LevelSetLayer(cpx, maxdim=1, sublevel=sublevel)

    def f(inp):
        a, b = layer2d(inp), layer(inp)
        return (SumBarcodeLengths(0)(a), TopKBarcodeLengths(1, 2)(a), PartialSumBarcodeLengths(0, 1)(b),
                BarcodePolyFeature(1, 2, 1)(b), remove_infinite_bars(a[0][0], sublevel))

    assert torch.autograd.gradcheck(f, (x,), eps=1e-6, atol=1e-7)


def test_gradient_equals_gpuph_api():
    x = sidon_values((6, 6), 12).requires_grad_()
    y = x.detach().clone().requires_grad_()
    SumBarcodeLengths(1)(LevelSetLayer2D(size=(6, 6), sublevel=False)(x)).backward()
    dgm = gpuph.cubical_persistence(y, construction="freudenthal", spatial_dims=2)
    dgm.finite().in_dim(1).lifetimes().sum().backward()
    assert torch.equal(x.grad, y.grad)


def test_several_forwards_share_one_backward():
    # TopologyLayer keeps the complex's state in the layer, so a second forward corrupts the first one's backward.
    layer = LevelSetLayer2D(size=(5, 5), sublevel=False)
    x1 = sidon_values((5, 5), 1).requires_grad_()
    x2 = sidon_values((5, 5), 2).requires_grad_()
    loss = SumBarcodeLengths(0)(layer(x1)) + SumBarcodeLengths(0)(layer(x2))
    loss.backward()
    for x in (x1, x2):
        ref = x.detach().clone().requires_grad_()
        SumBarcodeLengths(0)(layer(ref)).backward()
        assert torch.equal(x.grad, ref.grad)


# ---------------------------------------------------------------------------------------------- util, functional
def test_process_helpers_follow_topologylayer():
    d = torch.tensor([[0.0, 1.0], [2.0, 2.0], [np.inf, 3.0], [1.0, np.inf], [4.0, -np.inf]])
    assert remove_zero_bars(d).tolist() == [[0.0, 1.0], [np.inf, 3.0], [1.0, np.inf], [4.0, -np.inf]]
    assert remove_filler(d).tolist() == [[0.0, 1.0], [2.0, 2.0], [1.0, np.inf], [4.0, -np.inf]]
    assert remove_filler(d, 2.0).shape == (4, 2)
    assert remove_infinite_bars(d, True).tolist() == [[0.0, 1.0], [2.0, 2.0], [np.inf, 3.0], [4.0, -np.inf]]
    assert remove_infinite_bars(d, False).shape == (4, 2)
    dgm = gpuph.cubical_persistence(torch.rand(2, 5, 5))
    assert torch.equal(remove_infinite_bars(dgm, False).pairs, dgm.finite().pairs)
    assert len(remove_zero_bars(dgm)) == len(dgm) and len(remove_filler(dgm)) == len(dgm)
    # The Diagrams branches filter the same columns as the tensor ones: essential rows die at +inf (sublevel) or
    # -inf (superlevel); a sublevel class born at +inf (an all-+inf image) is both filler and a zero bar.
    sub = gpuph.cubical_persistence(torch.tensor([[[0.0, 1.0, 0.0]], [[math.inf] * 3]]), superlevel=False)
    assert sub.pairs[:, 1].eq(math.inf).sum() == 2 and sub.pairs[:, 0].eq(math.inf).sum() == 1
    for filtered in (remove_filler(sub), remove_zero_bars(sub)):
        assert isinstance(filtered, gpuph.Diagrams)
        assert torch.equal(filtered.pairs, sub.pairs[sub.pairs[:, 0] != math.inf])
    assert torch.equal(remove_infinite_bars(sub, True).pairs, sub.finite().pairs)
    assert len(remove_infinite_bars(sub, False)) == len(sub)  # only -inf deaths go
    assert len(remove_infinite_bars(dgm, True)) == len(dgm)  # only +inf deaths go
    for helper in (remove_filler, remove_zero_bars, lambda d: remove_infinite_bars(d, True)):
        want = helper(torch.cat([dgm.pairs, sub.pairs]))
        got = torch.cat([helper(dgm).pairs, helper(sub).pairs])
        assert torch.equal(got, want)


def test_functional_persistence_and_sublevel_diagram():
    s = topologylayer.functional.persistence.SimplicialComplex()
    for c in ([0], [1], [2], [3], [4], [0, 1], [0, 2], [0, 3], [0, 4], [1, 2], [1, 3], [4, 2], [4, 3],
              [0, 1, 2], [0, 1, 3], [0, 2, 4], [0, 3, 4]):
        s.append(c)
    s.initialize()
    s.extendFloat(torch.tensor([2.0, 0.0, 0.0, 0.0, 0.0]))
    for forward in (topologylayer.functional.persistenceForwardCohom, topologylayer.functional.persistenceForwardHom):
        ret = forward(s, 1)
        assert ret[0].tolist() == [[0.0, math.inf]] and ret[1].tolist() == [[0.0, 2.0]]
    dgms = topologylayer.functional.SubLevelSetDiagram.apply(s, torch.tensor([2.0, 0, 0, 0, 0]), 1, "cohom")
    assert dgms[1].tolist() == [[0.0, 2.0]]
    assert s.dim(16) == 2 and len(s) == 17 and s.n_vertices == 5


def test_flag_filtration_of_a_simplicial_complex():
    """extendFlag / FlagDiagram: a cone (apex 0 at height 3) over a square of side sqrt 2 (vertices 1, 2, 4, 3 in
    cyclic order): the square's loop is born at sqrt 2 and filled at sqrt 10, when the apex joins."""
    s = topologylayer.functional.persistence.SimplicialComplex()
    for c in ([0, 1, 2], [0, 1, 3], [0, 2, 4], [0, 3, 4]):
        s.append(c)
    y = torch.tensor([[0.0, 0, 3], [1, 0, 0], [0, 1, 0], [0, -1, 0], [-1, 0, 0]], dtype=torch.float64,
                     requires_grad=True)
    s.extendFlag(y)
    r2, r10 = math.sqrt(2), math.sqrt(10)
    for forward in (topologylayer.functional.persistenceForwardCohom, topologylayer.functional.persistenceForwardHom):
        ret = forward(s, 1)
        assert sorted_rows(ret[0].detach().numpy()).tolist() == [[0.0, r2]] * 3 + [[0.0, r10], [0.0, math.inf]]
        assert torch.allclose(ret[1], torch.tensor([[r2, r10]], dtype=torch.float64))
    dgms = topologylayer.functional.FlagDiagram.apply(s, y, 1, "hom")
    (dgms[1][0, 1] - dgms[1][0, 0]).backward()
    # The death's critical edge (the apex and a square vertex: ties pick one) grows as the apex rises; the gradient
    # of a length sums to zero over its two ends.
    assert float(y.grad[0, 2]) == pytest.approx(3 / r10) and float(y.grad.sum(0).abs().max()) < 1e-12
    s.extendFloat(torch.tensor([2.0, 0.0, 0.0, 0.0, 0.0]))  # the last extend* call picks the filtration
    assert forward(s, 1)[1].tolist() == [[0.0, 2.0]]


def test_construction_helpers():
    from gpuph.compat.topologylayer.util.construction import clique_complex, unique_simplices

    cpx = clique_complex(5, 2)
    assert np.bincount([len(c) for c in cpx.cells]).tolist() == [0, 5, 10, 10]
    cpx = unique_simplices(np.array([[0, 1, 2], [2, 1, 3]]), 1)
    assert sorted(map(tuple, cpx.cells)) == [(0,), (0, 1), (0, 2), (1,), (1, 2), (1, 3), (2,), (2, 3), (3,)]
    for name in ("init_freudenthal_2d", "init_grid_2d", "init_tri_complex"):
        built = getattr(topologylayer.nn.levelset, name)(4, 3)
        ref = {"init_freudenthal_2d": tl_freudenthal, "init_grid_2d": tl_grid, "init_tri_complex": tl_delaunay}[name]
        assert {tuple(c) for c in built.cells} >= {tuple(sorted(c)) for c in ref(4, 3)}
        # Closed under faces, as TopologyLayer's complexes (init_tri_complex listed no edges).
        cells = {tuple(sorted(c)) for c in built.cells}
        assert all(f in cells for c in cells if len(c) > 1 for f in itertools.combinations(c, len(c) - 1)), name
    assert len(topologylayer.nn.levelset.init_line_complex(4).cells) == 7


def test_diagrams_to_tuples():
    x = _image(8, (3, 5, 5), True).requires_grad_()
    dgm = LevelSetLayer2D(size=(5, 5))(x)
    tuples = topologylayer.util.diagrams_to_tuples(dgm)
    assert len(tuples) == 3
    for b, (dgms, issub) in enumerate(tuples):
        single, issub1 = LevelSetLayer2D(size=(5, 5))(x[b])
        assert issub == issub1 and all(torch.equal(a, c) for a, c in zip(dgms, single))
        assert all(torch.equal(dgms[k], dgm.pairs[(dgm.batch == b) & (dgm.dim == k)]) for k in range(2))
    # Dimensions past the grid's are empty; the slices stay differentiable.
    wide = topologylayer.util.diagrams_to_tuples(dgm, maxdim=3)
    assert all(len(dgms) == 4 and dgms[3].shape == (0, 2) and dgms[2].shape == (0, 2) for dgms, _ in wide)
    sum(dgms[0][:, 0].sum() for dgms, _ in wide).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_install_shim():
    saved = {k: v for k, v in sys.modules.items() if k == "topologylayer" or k.startswith("topologylayer.")}
    assert not saved, "a module named topologylayer is already imported"
    try:
        topologylayer.install_shim()
        import topologylayer as tl  # noqa: F401 - resolved through the shim
        from topologylayer.nn import LevelSetLayer2D as Shimmed
        from topologylayer.util.process import remove_zero_bars as shimmed_remove

        assert tl is topologylayer and Shimmed is LevelSetLayer2D and shimmed_remove is remove_zero_bars
        topologylayer.install_shim()  # idempotent
    finally:
        for k in [k for k in sys.modules if k == "topologylayer" or k.startswith("topologylayer.")]:
            del sys.modules[k]


# ---------------------------------------------------------------------------------------------- errors
def test_errors():
    with pytest.raises(ValueError, match="alg"):
        LevelSetLayer2D(size=(3, 3), alg="fast")
    with pytest.raises(ValueError, match="complex"):
        LevelSetLayer2D(size=(3, 3), complex="cubical")
    with pytest.raises(ValueError, match="width"):
        LevelSetLayer2D(size=(0, 3))
    with pytest.raises(ValueError, match="maxdim"):
        LevelSetLayer2D(size=(3, 3), maxdim=-1)
    with pytest.raises(ValueError, match="size"):
        LevelSetLayer1D(size=0)
    with pytest.raises(ValueError, match=r"expects one function with 9 values"):
        LevelSetLayer2D(size=(3, 3))(torch.rand(4, 4))
    with pytest.raises(ValueError, match="out of range"):
        LevelSetLayer([[0, -1]])
    with pytest.raises(ValueError, match="repeats a vertex"):
        LevelSetLayer([[0, 1, 1]])
    with pytest.raises(ValueError, match="NaN"):
        LevelSetLayer2D(size=(3, 3))(torch.full((3, 3), math.nan))
    for alg in ("hom", "hom2", "cohom"):
        assert LevelSetLayer1D(size=3, sublevel=False, alg=alg)(torch.tensor([1.0, 0.0, 1.0]))[0][0].tolist() == \
            [[1.0, -math.inf], [1.0, 0.0]]


# ---------------------------------------------------------------------------------------------- point clouds
class _Recorder:
    """Stands in for gpuph's point-cloud functions: records the call and returns a fixed one-image Diagrams."""

    def __init__(self):
        self.calls = []

    def __call__(self, x, **kwargs):
        self.calls.append((x, kwargs))
        pairs = torch.stack([x[0, 0] * 0 + torch.tensor([0.0, 1.0]), torch.tensor([0.0, math.inf]),
                             torch.tensor([1.0, 2.0])])
        return gpuph.Diagrams(pairs=pairs, dim=torch.tensor([0, 0, 1]), batch=torch.zeros(3, dtype=torch.int64),
                              birth_index=torch.zeros(3, dtype=torch.int64), death_index=torch.tensor([1, -1, 2]),
                              batch_size=1, spatial_shape=(2, 2), superlevel=False, construction="rips")


def test_point_cloud_layers_call_gpuph(monkeypatch):
    rips, alpha = _Recorder(), _Recorder()
    monkeypatch.setattr(gpuph, "rips_persistence", rips, raising=False)
    monkeypatch.setattr(gpuph, "weak_alpha_persistence", alpha, raising=False)
    x = torch.rand(4, 2)
    dgms, issub = RipsLayer(4, maxdim=1, alg="cohom")(x)
    assert issub is True and dgms[0].tolist() == [[0.0, 1.0], [0.0, math.inf]] and dgms[1].tolist() == [[1.0, 2.0]]
    assert rips.calls[0][1] == {"dims": (0, 1), "max_edge_length": math.inf}
    dgms, issub = AlphaLayer(maxdim=0)(x)
    assert issub is True and len(dgms) == 1 and alpha.calls[0][1] == {"dims": (0,), "complex": "delaunay"}
    assert isinstance(RipsLayer(4)(torch.rand(3, 4, 2)), gpuph.Diagrams)
    with pytest.raises(ValueError, match="points"):
        RipsLayer(5)(x)


@pytest.mark.skipif(not hasattr(gpuph, "rips_persistence"), reason="gpuph.rips_persistence not in this build")
def test_rips_layer_topologylayer_example():
    layer = RipsLayer(4, maxdim=1)
    x = torch.tensor([[1, 1], [1, -1], [-1, -1], [-1, 1]], dtype=torch.float).requires_grad_(True)
    dgms, issub = layer(x)
    assert issub is True
    assert remove_infinite_bars(remove_zero_bars(dgms[0]), issub).tolist() == [[0.0, 2.0]] * 3
    assert torch.allclose(remove_zero_bars(dgms[1]), torch.tensor([[2.0, math.sqrt(8)]]))


@pytest.mark.skipif(not hasattr(gpuph, "weak_alpha_persistence"), reason="gpuph.weak_alpha_persistence not in build")
def test_alpha_layer_topologylayer_example():
    layer = AlphaLayer(maxdim=1)
    x = torch.tensor([[1, 1], [1, -1], [-1, -1], [-1, 1]], dtype=torch.float).requires_grad_(True)
    dgms, issub = layer(x)
    assert issub is True
    assert remove_infinite_bars(remove_zero_bars(dgms[0]), issub).tolist() == [[0.0, 2.0]] * 3
    assert torch.allclose(remove_zero_bars(dgms[1]), torch.tensor([[2.0, math.sqrt(8)]]))


def _delaunay_faces_diagrams(x: np.ndarray, maxdim: int) -> list[np.ndarray]:
    """TopologyLayer's AlphaLayer complex (the faces, up to dimension maxdim + 1, of scipy's Delaunay simplices,
    each at its longest edge) in GUDHI's SimplexTree: the non-zero bars per dimension, sorted."""
    gudhi = pytest.importorskip("gudhi")
    from scipy.spatial import Delaunay

    st = gudhi.SimplexTree()
    for s in Delaunay(x).simplices:
        for k in range(1, min(len(s), maxdim + 2) + 1):
            for f in itertools.combinations(sorted(s.tolist()), k):
                st.insert(list(f), max((float(np.linalg.norm(x[a] - x[b])) for a, b in itertools.combinations(f, 2)),
                                       default=0.0))
    st.compute_persistence(persistence_dim_max=True)
    out = []
    for k in range(maxdim + 1):
        bars = st.persistence_intervals_in_dimension(k).reshape(-1, 2)
        out.append(sorted_rows(bars[bars[:, 0] != bars[:, 1]]))
    return out


@pytest.mark.parametrize("d", [2, 3])
def test_alpha_layer_is_topologylayers_complex(d):
    """AlphaLayer's complex is TopologyLayer's (the faces of scipy's Delaunay simplices, each at its longest edge):
    its bars equal GUDHI's on that complex in every dimension up to maxdim, on uniform and near-grid (almost
    cocircular) clouds."""
    rng = np.random.default_rng(12 + d)
    for t in range(30):
        x = rng.random((int(rng.integers(5, 40)), d))
        if t % 2:
            x = np.round(x * 4) / 4 + rng.random(x.shape) * 1e-3
        maxdim = t % 3
        dgms, _ = AlphaLayer(maxdim=maxdim)(torch.from_numpy(x))
        ref = _delaunay_faces_diagrams(x, maxdim)
        assert len(dgms) == maxdim + 1
        for k in range(maxdim + 1):
            got = sorted_rows(remove_zero_bars(dgms[k]).detach().numpy())
            np.testing.assert_allclose(got, ref[k], rtol=1e-12, atol=1e-12)


def test_rips_layer_maxdim_2_of_an_octahedron():
    """TopologyLayer's RipsLayer takes maxdim=2: the octahedron's 12 sides (length sqrt 2) close a sphere, which its
    3 diagonals (length 2) fill: one H2 bar [sqrt 2, 2], and no H1 bar; gradients reach the points."""
    x = torch.cat([torch.eye(3), -torch.eye(3)]).double().requires_grad_(True)
    dgms, issub = RipsLayer(6, maxdim=2)(x)
    assert issub is True and len(dgms) == 3 and len(remove_zero_bars(dgms[1])) == 0
    torch.testing.assert_close(remove_zero_bars(dgms[2]), torch.tensor([[math.sqrt(2), 2.0]], dtype=torch.float64))
    dgms[2][:, 1].sum().backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0


def test_point_cloud_layer_defaults_and_input_shapes():
    # TopologyLayer's defaults: RipsLayer(n, maxdim=1), AlphaLayer(maxdim=0)
    x = torch.tensor([[1, 1], [1, -1], [-1, -1], [-1, 1]], dtype=torch.float64)
    assert RipsLayer(4).maxdim == 1 and AlphaLayer().maxdim == 0
    assert len(RipsLayer(4)(x)[0]) == 2 and len(AlphaLayer()(x)[0]) == 1
    for layer in (RipsLayer(4), AlphaLayer()):
        with pytest.raises(ValueError, match=r"points of shape \(n, d\)"):
            layer(x[None, None])  # (1, 1, n, d): not a batch of clouds


def test_simplicial_complex_sees_simplices_appended_after_a_forward():
    """The closure is cached per maxdim until the next append: a path 0-1-2 has one component; closing it into a
    triangle's boundary adds a loop [1, 2] (values 0, 1, 2: the edge [0, 2] enters at 2); filling it kills the loop."""
    s = topologylayer.functional.persistence.SimplicialComplex()
    for c in ([0, 1], [1, 2]):
        s.append(c)
    s.extendFloat(torch.tensor([0.0, 1.0, 2.0]))
    forward = topologylayer.functional.persistenceForwardHom
    assert forward(s, 1)[1].shape == (0, 2)
    s.append([0, 2])
    assert forward(s, 1)[1].tolist() == [[2.0, math.inf]]
    s.append([0, 1, 2])
    assert forward(s, 1)[1].shape == (0, 2)


def test_simplicial_complex_append_and_forward_errors():
    s = topologylayer.functional.persistence.SimplicialComplex()
    s.append(np.array([2, 0, 1]))
    assert s.cells == [[0, 1, 2]]  # stored sorted, as TopologyLayer does
    with pytest.raises(ValueError, match="empty simplex"):
        s.append([])
    with pytest.raises(TypeError, match="SimplicialComplex"):
        topologylayer.functional.persistenceForwardHom([[0, 1]], 1)
    with pytest.raises(ValueError, match="extendFloat"):
        topologylayer.functional.persistenceForwardHom(s, 1)


def test_flag_diagram_takes_a_plain_list_of_simplices():
    y = torch.tensor([[0.0, 0.0], [3.0, 0.0], [0.0, 4.0]], dtype=torch.float64)
    s = topologylayer.functional.persistence.SimplicialComplex()
    cells = [[0, 1], [1, 2], [0, 2]]  # a triangle's boundary: a loop born at 5 (the longest edge), never filled
    for c in cells:
        s.append(c)
    from_list = topologylayer.functional.FlagDiagram.apply(cells, y, 1)
    from_complex = topologylayer.functional.FlagDiagram.apply(s, y, 1)
    assert from_list[1].tolist() == from_complex[1].tolist() == [[5.0, math.inf]]
    np.testing.assert_array_equal(sorted_rows(from_list[0].numpy()), sorted_rows(from_complex[0].numpy()))
