"""TopologyLayer's barcode features (gpuph.barcode_features) against direct NumPy implementations of its formulas, on
batched Diagrams and on (dgms, issublevel) tuples: batch vs per image, empty diagrams, essential-only images, ties,
edge exponents, gradients, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import sidon_values

import gpuph
from gpuph.barcode_features import (
    BarcodePolyFeature,
    PartialSumBarcodeLengths,
    SumBarcodeLengths,
    TopKBarcodeLengths,
    barcode_poly_feature,
    partial_sum_barcode_lengths,
    sum_barcode_lengths,
    top_k_barcode_lengths,
)


# ---------------------------------------------------------------------------------------------- NumPy formulas
def np_lengths_means(pairs: np.ndarray, sublevel: bool) -> tuple[np.ndarray, np.ndarray]:
    """TopologyLayer: start/end = (birth, death) sublevel, (death, birth) superlevel; length = end - start,
    mean = (start + end) / 2; both zeroed where the length is +inf or NaN."""
    pairs = np.asarray(pairs, dtype=np.float64).reshape(-1, 2)
    start, end = (pairs[:, 0], pairs[:, 1]) if sublevel else (pairs[:, 1], pairs[:, 0])
    with np.errstate(invalid="ignore"):
        lengths = end - start
        means = (end + start) / 2
    bad = (lengths == np.inf) | np.isnan(lengths)
    lengths[bad] = 0
    means[bad] = 0
    return lengths, means


def np_sum(pairs, sublevel):
    return np_lengths_means(pairs, sublevel)[0].sum()


def np_top_k(pairs, sublevel, k):
    lengths = np.sort(np_lengths_means(pairs, sublevel)[0])[::-1][:k]
    return np.concatenate([lengths, np.zeros(k - len(lengths))])


def np_partial_sum(pairs, sublevel, skip):
    return np.sort(np_lengths_means(pairs, sublevel)[0])[::-1][skip:].sum()


def np_poly(pairs, sublevel, p, q, remove_zero=True):
    pairs = np.asarray(pairs, dtype=np.float64).reshape(-1, 2)
    if remove_zero:
        pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    lengths, means = np_lengths_means(pairs, sublevel)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (np.power(lengths, p) * np.power(means, q)).sum()


FEATURES = {
    "sum": (lambda d, k: SumBarcodeLengths(k)(d), lambda a, s: np_sum(a, s)),
    "top3": (lambda d, k: TopKBarcodeLengths(k, 3)(d), lambda a, s: np_top_k(a, s, 3)),
    "top40": (lambda d, k: TopKBarcodeLengths(k, 40)(d), lambda a, s: np_top_k(a, s, 40)),
    "top0": (lambda d, k: TopKBarcodeLengths(k, 0)(d), lambda a, s: np_top_k(a, s, 0)),
    "partial1": (lambda d, k: PartialSumBarcodeLengths(k, 1)(d), lambda a, s: np_partial_sum(a, s, 1)),
    "partial50": (lambda d, k: PartialSumBarcodeLengths(k, 50)(d), lambda a, s: np_partial_sum(a, s, 50)),
    "poly21": (lambda d, k: BarcodePolyFeature(k, 2, 1)(d), lambda a, s: np_poly(a, s, 2, 1)),
    "poly10": (lambda d, k: BarcodePolyFeature(k, 1, 0)(d), lambda a, s: np_poly(a, s, 1, 0)),
    "poly00": (lambda d, k: BarcodePolyFeature(k, 0, 0)(d), lambda a, s: np_poly(a, s, 0, 0)),
    "poly0.5,2": (lambda d, k: BarcodePolyFeature(k, 0.5, 2)(d), lambda a, s: np_poly(a, s, 0.5, 2)),
}


def _batch(seed: int) -> torch.Tensor:
    """Random images with ties, plus a constant image (only the essential class) and an all-equal-but-one image."""
    g = torch.Generator().manual_seed(seed)
    x = torch.cat([torch.rand(3, 7, 8, generator=g, dtype=torch.float64),
                   torch.randint(0, 3, (2, 7, 8), generator=g).double(),
                   torch.full((1, 7, 8), 0.25, dtype=torch.float64)])
    x[5, 3, 3] = 1.0
    return x


# ---------------------------------------------------------------------------------------------- values
@pytest.mark.parametrize("name", list(FEATURES))
@pytest.mark.parametrize("superlevel", [True, False], ids=["super", "sub"])
@pytest.mark.parametrize("construction", ["V", "freudenthal"])
def test_features_on_diagrams_equal_numpy(name, superlevel, construction):
    feature, formula = FEATURES[name]
    x = _batch(int(superlevel))
    dgm = gpuph.cubical_persistence(x, superlevel=superlevel, construction=construction)
    per_image = dgm.to_numpy()
    for k in (0, 1):
        out = feature(dgm, k)
        assert out.shape[0] == dgm.batch_size and out.dtype == x.dtype
        for b in range(dgm.batch_size):
            expected = formula(per_image[b][k], not superlevel)
            np.testing.assert_allclose(out[b].numpy(), expected, rtol=1e-12, atol=0)


@pytest.mark.parametrize("name", list(FEATURES))
def test_batched_equals_per_image(name):
    feature, _ = FEATURES[name]
    dgm = gpuph.cubical_persistence(_batch(3), construction="T")
    for k in (0, 1):
        out = feature(dgm, k)
        for b in range(dgm.batch_size):
            assert torch.equal(out[b], feature(dgm.image(b), k)[0])


@pytest.mark.parametrize("name", list(FEATURES))
@pytest.mark.parametrize("sublevel", [True, False])
def test_features_on_tuples_equal_numpy(name, sublevel):
    feature, formula = FEATURES[name]
    rng = np.random.default_rng(int(sublevel))
    inf = np.inf if sublevel else -np.inf
    # TopologyLayer-style rows: finite bars, zero-length bars, an essential class, a bar born and dying at +-inf.
    births = rng.integers(0, 4, 12).astype(np.float64)
    deaths = births + rng.integers(0, 3, 12) * (1 if sublevel else -1)
    rows = np.stack([births, deaths], 1)
    rows = np.concatenate([rows, [[1.0, inf], [inf, inf], [-inf, -inf]]])
    for dgms in ((torch.from_numpy(rows), torch.from_numpy(rows[:4])), (torch.zeros(0, 2), torch.zeros(0, 2))):
        for k in (0, 1):
            out = feature((dgms, sublevel), k)
            expected = formula(dgms[k].numpy(), sublevel)
            np.testing.assert_allclose(out.numpy(), expected, rtol=1e-12, atol=0)
            assert out.shape == np.shape(expected)


@pytest.mark.parametrize("name", list(FEATURES))
def test_rows_in_any_order(name):
    """The features mask rows and rank bars by sorting, so they do not rely on the diagrams' row order."""
    from dataclasses import replace

    feature, _ = FEATURES[name]
    dgm = gpuph.cubical_persistence(_batch(5))
    perm = torch.randperm(len(dgm), generator=torch.Generator().manual_seed(1))
    fields = ("pairs", "dim", "batch", "birth_index", "death_index")
    shuffled = replace(dgm, **{f: getattr(dgm, f)[perm] for f in fields})
    for k in (0, 1):
        torch.testing.assert_close(feature(shuffled, k), feature(dgm, k), rtol=1e-14, atol=0)


@pytest.mark.parametrize("name", list(FEATURES))
@pytest.mark.parametrize("superlevel", [True, False], ids=["super", "sub"])
def test_other_rows_with_infinite_values_leave_no_nan(name, superlevel):
    """Rows of the other dimension with infinite values (pixels at +-inf entering first: infinite H0 bars) change
    neither the value nor the gradient of a feature of H1, which equal those of the H1 rows alone."""
    feature, _ = FEATURES[name]
    x = _batch(6)[:4].clone()
    x[0, 2, 3] = x[1, 5, 5] = x[3, 1, 1] = np.inf if superlevel else -np.inf
    x.requires_grad_()
    grads = []
    for only_h1 in (False, True):
        x.grad = None
        dgm = gpuph.cubical_persistence(x, superlevel=superlevel)
        value = feature(dgm.select(dim=1) if only_h1 else dgm, 1)
        value.sum().backward()
        grads.append((value.detach(), x.grad.clone()))
    (v, g), (v1, g1) = grads
    assert torch.isfinite(v).all() and torch.equal(v, v1)
    assert torch.isfinite(g).all() and torch.equal(g, g1)


def test_empty_batches_and_dimensions():
    dgm = gpuph.cubical_persistence(torch.rand(0, 5, 5))
    assert SumBarcodeLengths(0)(dgm).shape == (0,)
    assert TopKBarcodeLengths(1, 4)(dgm).shape == (0, 4)
    assert PartialSumBarcodeLengths(0, 1)(dgm).shape == (0,)
    assert BarcodePolyFeature(1, 1, 1)(dgm).shape == (0,)
    dgm = gpuph.cubical_persistence(torch.full((3, 5, 5), 2.0))  # only the essential class in each image
    for out in (SumBarcodeLengths(0)(dgm), SumBarcodeLengths(1)(dgm), PartialSumBarcodeLengths(0, 0)(dgm),
                BarcodePolyFeature(0, 1, 0)(dgm)):
        assert torch.equal(out, torch.zeros(3, dtype=out.dtype))
    # A dimension these diagrams cannot have (2D grids: H0 and H1) is an error, as for TopologyLayer's tuples.
    with pytest.raises(ValueError, match="no diagram of dimension 2"):
        SumBarcodeLengths(2)(dgm)
    assert torch.equal(TopKBarcodeLengths(0, 2)(dgm), torch.zeros(3, 2))
    # 0**0 * 0**0 = 1 per infinite bar, as torch.pow (and TopologyLayer) define it.
    assert torch.equal(BarcodePolyFeature(0, 0, 0)(dgm), torch.ones(3))


def test_essential_class_is_not_skipped_by_partial_sum():
    x = torch.tensor([[0.0, 3.0, 0.0, 2.0, 0.0, 1.0, 0.0]])
    dgm = gpuph.cubical_persistence(x)  # superlevel H0: essential (3, -inf), finite (2, 0) and (1, 0)
    assert PartialSumBarcodeLengths(0, 1)(dgm).item() == 1.0
    assert TopKBarcodeLengths(0, 4)(dgm).tolist() == [[2.0, 1.0, 0.0, 0.0]]
    assert SumBarcodeLengths(0)(dgm).item() == 3.0


def test_functional_forms_equal_modules():
    dgm = gpuph.cubical_persistence(_batch(4))
    assert torch.equal(sum_barcode_lengths(dgm, 1), SumBarcodeLengths(1)(dgm))
    assert torch.equal(top_k_barcode_lengths(dgm, 0, 5), TopKBarcodeLengths(0, 5)(dgm))
    assert torch.equal(partial_sum_barcode_lengths(dgm, 0, 2), PartialSumBarcodeLengths(0, 2)(dgm))
    assert torch.equal(barcode_poly_feature(dgm, 0, 1, 2), BarcodePolyFeature(0, 1, 2)(dgm))
    assert "k=5" in repr(TopKBarcodeLengths(0, 5)) and "skip=2" in repr(PartialSumBarcodeLengths(0, 2))


def test_remove_zero_only_matters_for_tuples():
    rows = torch.tensor([[0.0, 1.0], [2.0, 2.0], [3.0, 3.0]])
    assert BarcodePolyFeature(0, 0, 1)(((rows,), True)).item() == 0.5
    assert BarcodePolyFeature(0, 0, 1, remove_zero=False)(((rows,), True)).item() == 5.5
    dgm = gpuph.cubical_persistence(_batch(5))
    assert torch.equal(BarcodePolyFeature(0, 0, 1)(dgm), BarcodePolyFeature(0, 0, 1, remove_zero=False)(dgm))


def test_caller_tensors_not_modified():
    rows = torch.tensor([[0.0, np.inf], [1.0, 2.0]])
    keep = rows.clone()
    SumBarcodeLengths(0)(((rows,), True))
    BarcodePolyFeature(0, 1, 1)(((rows,), True))
    assert torch.equal(rows, keep)


# ---------------------------------------------------------------------------------------------- gradients
@pytest.mark.parametrize("name", ["sum", "top3", "partial1", "poly21"])
@pytest.mark.parametrize("superlevel", [True, False], ids=["super", "sub"])
def test_gradcheck(name, superlevel):
    feature, _ = FEATURES[name]
    x = sidon_values((2, 4, 5), 7).requires_grad_()

    def f(inp):
        dgm = gpuph.cubical_persistence(inp, superlevel=superlevel, construction="freudenthal")
        return feature(dgm, 0), feature(dgm, 1)

    assert torch.autograd.gradcheck(f, (x,), eps=1e-6, atol=1e-7)


def test_sum_gradient_is_plus_minus_one_at_critical_pixels():
    x = sidon_values((2, 6, 6), 2).requires_grad_()
    dgm = gpuph.cubical_persistence(x)
    SumBarcodeLengths(1)(dgm).sum().backward()
    fin = dgm.finite().in_dim(1)
    expected = torch.zeros(2 * 36, dtype=torch.float64)
    expected.index_add_(0, fin.batch * 36 + fin.birth_index, torch.ones(len(fin), dtype=torch.float64))
    expected.index_add_(0, fin.batch * 36 + fin.death_index, -torch.ones(len(fin), dtype=torch.float64))
    assert torch.equal(x.grad, expected.view(2, 6, 6))


# ---------------------------------------------------------------------------------------------- errors
def test_errors():
    dgm = gpuph.cubical_persistence(torch.rand(2, 4, 4))
    with pytest.raises(TypeError, match="Diagrams"):
        SumBarcodeLengths(0)(torch.zeros(3, 2))
    with pytest.raises(TypeError, match="tuple"):
        SumBarcodeLengths(0)((torch.zeros(3, 2), True))
    with pytest.raises(ValueError, match="no diagram of dimension 2"):
        SumBarcodeLengths(2)(((torch.zeros(1, 2), torch.zeros(1, 2)), True))
    with pytest.raises(ValueError, match=r"shape \(n, 2\)"):
        SumBarcodeLengths(0)(((torch.zeros(3),), True))
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="dim"):
            SumBarcodeLengths(bad)
    with pytest.raises(ValueError, match="k"):
        TopKBarcodeLengths(0, -2)
    with pytest.raises(ValueError, match="skip"):
        PartialSumBarcodeLengths(0, -1)
    with pytest.raises(ValueError, match="dim"):
        sum_barcode_lengths(dgm, -1)


def test_remove_zero_must_be_a_bool():
    dgm = gpuph.cubical_persistence(torch.rand(2, 5, 5))
    with pytest.raises(TypeError, match="remove_zero must be a bool"):
        BarcodePolyFeature(0, 1, 1, remove_zero="no")
    with pytest.raises(TypeError, match="remove_zero must be a bool"):
        barcode_poly_feature(dgm, 0, 1.0, 1.0, remove_zero=1)


@pytest.mark.parametrize("name", list(FEATURES))
@pytest.mark.parametrize("superlevel", [True, False], ids=["super", "sub"])
def test_features_of_an_all_infinite_image_drop_its_zero_length_essential_bar(name, superlevel):
    """A grid that is entirely +inf (sublevel) or -inf (superlevel) has one essential class born and dying at that
    infinity: the one zero-length bar a gpuph diagram can hold. ``remove_zero`` drops it from a ``Diagrams`` as from
    a tuple (else ``0 ** 0 * 0 ** 0`` would count it)."""
    feature, formula = FEATURES[name]
    x = torch.rand(3, 5, 6, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    x[1] = -torch.inf if superlevel else torch.inf
    dgm = gpuph.cubical_persistence(x, superlevel=superlevel)
    per_image = dgm.to_numpy()
    assert len(per_image[1][0]) == 1 and per_image[1][0][0, 0] == per_image[1][0][0, 1]
    for k in (0, 1):
        out = feature(dgm, k)
        for b in range(dgm.batch_size):
            np.testing.assert_allclose(out[b].numpy(), formula(per_image[b][k], not superlevel), rtol=1e-12, atol=0)
    for remove_zero in (True, False):
        got = barcode_poly_feature(dgm, 0, 0, 0, remove_zero=remove_zero)
        want = [np_poly(per_image[b][0], not superlevel, 0, 0, remove_zero) for b in range(3)]
        np.testing.assert_array_equal(got.numpy(), want)
