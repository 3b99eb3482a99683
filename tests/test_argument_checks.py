"""Arguments of unusual type or value across the public API: gpuph's own errors (not an AttributeError, an
OverflowError or torch's internals), raised where the docstrings say, and unusual but valid forms taken."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch

import gpuph
from gpuph.barcode_features import sum_barcode_lengths, top_k_barcode_lengths
from gpuph.compat.topologylayer.nn import AlphaLayer, LevelSetLayer2D, RipsLayer
from gpuph.compat.topologylayer.util.process import remove_infinite_bars, remove_zero_bars
from gpuph.distances import wasserstein_distance
from gpuph.losses import betti_loss, closed_pairs, persistence_energy, rank_in_image
from gpuph.nn import BettiLoss, CubicalPersistence, TopologyLoss


@pytest.fixture
def dgm():
    return gpuph.cubical_persistence(torch.rand(3, 6, 6, dtype=torch.float64))


def test_losses_refuse_what_is_no_diagrams():
    x = torch.rand(2, 5, 5)
    for fn in (lambda: persistence_energy(x, 0), lambda: betti_loss(x, 0, 1), lambda: rank_in_image(x),
               lambda: closed_pairs(x)):
        with pytest.raises(TypeError, match="take a gpuph.Diagrams, got Tensor"):
            fn()


@pytest.mark.parametrize("bad", [math.inf, -math.inf, math.nan, None, "2", 1.5, -1])
def test_ranks_counts_and_dimensions_refuse_non_integers(dgm, bad):
    """inf (int() overflows), NaN, None and strings get the same message as a negative or fractional value."""
    with pytest.raises(ValueError, match="i0 is a 1-based rank"):
        persistence_energy(dgm, 0, i0=bad)
    with pytest.raises(ValueError, match="k is a number of classes"):
        betti_loss(dgm, 0, k=bad)
    with pytest.raises(ValueError, match="dim must be a homology dimension"):
        persistence_energy(dgm, bad)
    if bad is not None:  # select's dim=None: every dimension
        with pytest.raises(ValueError, match="dim must be a homology dimension"):
            dgm.select(dim=bad)
    with pytest.raises(ValueError, match="i0 is a 1-based rank"):
        TopologyLoss(i0=bad)
    with pytest.raises(ValueError, match="k is a number of classes"):
        BettiLoss(k=bad)


@pytest.mark.parametrize("bad", ["2", b"2", True, torch.ones(2), [2.0], math.inf, math.nan])
def test_exponents_and_weights_must_be_finite_numbers(dgm, bad):
    """float() would read the string "2": a number is asked for. NumPy and one-element tensor numbers are taken."""
    for name in ("p", "q"):
        with pytest.raises(ValueError, match=f"{name} must be a finite number"):
            persistence_energy(dgm, 0, **{name: bad})
        with pytest.raises(ValueError, match=f"{name} must be a finite number"):
            TopologyLoss(**{name: bad})
    with pytest.raises(ValueError, match="weight must be a finite number"):
        TopologyLoss(weight=bad)
    want = persistence_energy(dgm, 0, p=2, q=1)
    for p, q in ((np.float32(2), np.int64(1)), (torch.tensor(2.0), torch.tensor([1])), (2, 1)):
        assert torch.equal(persistence_energy(dgm, 0, p=p, q=q), want)


def test_polynomial_feature_exponents_must_be_finite_numbers(dgm):
    from gpuph.barcode_features import BarcodePolyFeature, barcode_poly_feature

    for bad in ("2", None, math.nan, torch.ones(2)):
        with pytest.raises(ValueError, match="must be a finite number"):
            barcode_poly_feature(dgm, 0, bad, 1)
        with pytest.raises(ValueError, match="must be a finite number"):
            BarcodePolyFeature(0, 1, bad)
    assert torch.equal(BarcodePolyFeature(1.0, np.int64(2), 1)(dgm), barcode_poly_feature(dgm, 1, 2, 1))


def test_wasserstein_orders_must_be_numbers(dgm):
    for kw in ({"p": "2"}, {"internal_p": "inf"}, {"p": True}):
        with pytest.raises(ValueError, match="must be a number, got"):
            wasserstein_distance(dgm, dgm, 0, **kw)


def test_image_index_out_of_range_names_the_index_given(dgm):
    for bad in (-4, 3, 10):
        with pytest.raises(IndexError, match=f"^gpuph: image {bad} out of range for a batch of 3$"):
            dgm.select(batch=bad)
    assert torch.equal(dgm.select(batch=-3).pairs, dgm.select(batch=0).pairs)


def test_diagrams_compare_by_identity(dgm):
    """The dataclass's generated == compared tensors (an ambiguous truth value): equality is identity, and
    Diagrams hash, as modules and tensors do."""
    other = gpuph.cubical_persistence(torch.rand(3, 6, 6, dtype=torch.float64))
    assert dgm == dgm and dgm != other and len({dgm, other, dgm}) == 2
    complex_dgm = gpuph.lower_star_persistence(torch.rand(4), [[0, 1, 2], [2, 3]])
    assert complex_dgm == complex_dgm and complex_dgm != gpuph.lower_star_persistence(torch.rand(4), [[0, 1]])


def test_no_dimensions_computed_reads_none():
    d = gpuph.cubical_persistence(torch.rand(2, 5, 5), dims=[])
    assert "pairs: none," in repr(d) and d.computed_dims == ()
    with pytest.raises(ValueError, match="hold only dimension\\(s\\) none, those computed"):
        persistence_energy(d, 0)


def test_dims_and_spatial_dims_take_numpy_and_tensor_integers():
    x = torch.rand(2, 5, 5)
    want = gpuph.cubical_persistence(x, dims=1)
    for dims in (np.array(1), np.array([1]), torch.tensor(1), np.int64(1)):
        assert torch.equal(gpuph.cubical_persistence(x, dims=dims).pairs, want.pairs)
    for sd in (np.int64(2), torch.tensor(2)):
        assert torch.equal(gpuph.cubical_persistence(x, spatial_dims=sd).pairs, gpuph.cubical_persistence(x).pairs)
        assert CubicalPersistence(spatial_dims=sd)(x).spatial_shape == (5, 5)
    for bad in (2.0, torch.tensor(2.0), True, "2", 4, 0):
        with pytest.raises(ValueError, match=re.escape(f"spatial_dims must be 1, 2 or 3, got {bad!r}")):
            gpuph.cubical_persistence(x, spatial_dims=bad)
        with pytest.raises(ValueError, match="spatial_dims must be 1, 2 or 3"):
            CubicalPersistence(spatial_dims=bad)


def test_cubical_module_refuses_at_construction_what_every_input_would():
    """Without spatial_dims the grids' dimension is unknown, but dims of the wrong type or past 2 (3D grids' top)
    would fail on any input."""
    for dims, error in (("01", TypeError), (0.0, TypeError), ([0, 3], ValueError), (-1, ValueError)):
        with pytest.raises(error):
            CubicalPersistence(dims=dims)
    with pytest.raises(ValueError, match="out of range 0..1 for 2D grids"):
        CubicalPersistence(dims=2, spatial_dims=2)
    assert CubicalPersistence(dims=np.array([0, 2])).dims == (0, 2)


def test_barcode_features_take_dimensions_as_the_losses_do(dgm):
    for dim in (1, 1.0, np.int64(1), torch.tensor(1)):
        assert torch.equal(sum_barcode_lengths(dgm, dim), sum_barcode_lengths(dgm, 1))
    with pytest.raises(ValueError, match="dim must be a homology dimension"):
        sum_barcode_lengths(dgm, 1.5)
    dgms = tuple(dgm.image(0).select(dim=k).pairs for k in (0, 1))
    for issublevel in (torch.tensor(True), 1, None):
        with pytest.raises(TypeError, match="issublevel, the second item .* must be a bool, got"):
            top_k_barcode_lengths((dgms, issublevel), 0, 2)


def test_compat_layers_check_their_settings_when_built():
    for size in (3, (3, 3, 3), None):
        with pytest.raises(ValueError, match="size must be a \\(width, height\\) pair"):
            LevelSetLayer2D(size=size)
    for layer in (lambda: RipsLayer(5, maxdim=3), lambda: AlphaLayer(maxdim=3)):
        with pytest.raises(ValueError, match="homology dimensions 0, 1 and 2 only, got maxdim=3"):
            layer()


@pytest.mark.parametrize("complex_name", ["freudenthal", "grid"])
def test_level_set_layer_counts_every_dimension_it_holds(complex_name):
    """maxdim 2 on a 2D grid holds an (empty, for the grid's cubical complexes) H2, and counts it: counts() and
    to_numpy() have maxdim + 1 dimensions, as computed_dims says."""
    layer = LevelSetLayer2D(size=(4, 5), maxdim=2, complex=complex_name)
    d = layer(torch.rand(3, 5, 4))
    assert d.computed_dims == (0, 1, 2) and d.counts().shape == (3, 3)
    assert [len(per_image) for per_image in d.to_numpy()] == [3, 3, 3]
    assert d.counts().sum(0).tolist()[:2] == [int((d.dim == k).sum()) for k in (0, 1)]


def test_processing_helpers_refuse_what_is_no_rows():
    for bad in (torch.tensor([0.0, 1.0]), [[0.0, 1.0]], torch.zeros(2, 3)):
        with pytest.raises(ValueError, match="an \\(n, 2\\) tensor of \\[birth, death\\] rows"):
            remove_zero_bars(bad)
        with pytest.raises(ValueError, match="an \\(n, 2\\) tensor of \\[birth, death\\] rows"):
            remove_infinite_bars(bad, True)
    rows = np.array([[0.0, 1.0], [1.0, 1.0], [2.0, np.inf]])
    assert remove_zero_bars(rows).tolist() == [[0.0, 1.0], [2.0, np.inf]]
    assert remove_infinite_bars(torch.from_numpy(rows), True).tolist() == [[0.0, 1.0], [1.0, 1.0]]
