"""gpuph.apps.directional: heights, hand-made digits with known bars (NumPy), batched vs per-image, gradients."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gpuph.apps.directional import directional_filtrations, directional_topk, sweep_heights

ALPHA = 0.1
CAP = 1 + ALPHA


def np_heights(h, w, d):
    r = math.hypot(h - 1, w - 1) / 2
    rows, cols = np.mgrid[0:h, 0:w]
    out = []
    for k in range(d):
        a = 2 * math.pi * k / d
        out.append((math.cos(a) * (cols - (w - 1) / 2) + math.sin(a) * (rows - (h - 1) / 2)) / r)
    return np.stack(out)


def test_sweep_heights_formula():
    h = sweep_heights(5, 7, 8, dtype=torch.float64)
    np.testing.assert_allclose(h.numpy(), np_heights(5, 7, 8), atol=1e-12)
    assert float(h.abs().max()) <= 1 + 1e-12


def blob_image(boxes, size=16, value=1.0):
    x = torch.zeros(size, size, dtype=torch.float64)
    for r0, r1, c0, c1 in boxes:
        x[r0:r1, c0:c1] = value
    return x


def test_filtration_values():
    x = blob_image([(3, 6, 4, 9)], value=0.8)
    f = directional_filtrations(x[None], 8, 0.5, ALPHA)[0]
    h = np_heights(16, 16, 8)
    on = x.numpy() > 0.5
    np.testing.assert_allclose(f.numpy()[:, on], h[:, on] + ALPHA * 0.2)
    assert np.isinf(f.numpy()[:, ~on]).all()


def test_two_blobs_h0_bars():
    boxes = [(2, 5, 2, 6), (9, 13, 8, 14)]
    x = blob_image(boxes)
    top = directional_topk(x[None], k=3, alpha=ALPHA)[0]  # (8, 2, 3, 2)
    h = np_heights(16, 16, 8)
    for k in range(8):
        births = sorted((h[k][r0:r1, c0:c1].min() for r0, r1, c0, c1 in boxes))
        lives = sorted((CAP - b for b in births), reverse=True)
        # two components that never merge inside the digit: both close at the cap
        np.testing.assert_allclose(top[k, 0, :2, 0].numpy(), lives, atol=1e-12)
        np.testing.assert_allclose(sorted(top[k, 0, :2, 1].numpy()), births, atol=1e-12)
        assert torch.equal(top[k, 0, 2], torch.zeros(2, dtype=x.dtype))
        assert torch.equal(top[k, 1], torch.zeros(3, 2, dtype=x.dtype))  # no holes


def test_ring_h1_bar():
    import gudhi

    x = blob_image([(3, 12, 4, 13)])
    x[5:10, 6:11] = 0  # a square ring, 2 pixels thick
    top = directional_topk(x[None], k=2, alpha=ALPHA)[0]
    h = np_heights(16, 16, 8)
    ring = x.numpy() > 0.5
    for k in range(8):
        f = np.where(ring, h[k], np.inf)
        cc = gudhi.CubicalComplex(top_dimensional_cells=f)
        holes = [(b, d) for dim, (b, d) in cc.persistence(homology_coeff_field=2) if dim == 1 and b < d]
        assert len(holes) == 1 and holes[0][1] == np.inf
        birth = holes[0][0]
        if k == 0:  # sweeping left to right, the hole closes with the inner column (11) of the right side
            assert birth == pytest.approx(h[0][0, 11])
        np.testing.assert_allclose(top[k, 1, 0].numpy(), [CAP - birth, birth], atol=1e-12)
        np.testing.assert_allclose(top[k, 0, 0].numpy(), [CAP - h[k][ring].min(), h[k][ring].min()], atol=1e-12)
        assert float(top[k, 0, 1, 0]) == 0 and float(top[k, 1, 1, 0]) == 0


def random_digits(n, size=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, size, size, generator=g, dtype=torch.float64)
    x = torch.nn.functional.avg_pool2d(x[:, None], 5, 1, 2)[:, 0]
    return (x - x.amin((1, 2), keepdim=True)) / (x.amax((1, 2), keepdim=True) - x.amin((1, 2), keepdim=True))


@pytest.mark.parametrize("construction", ["T", "V"])
def test_batched_equals_per_image(construction):
    x = random_digits(5)
    batched = directional_topk(x, k=4, construction=construction)
    singles = torch.cat([directional_topk(x[i : i + 1], k=4, construction=construction) for i in range(5)])
    assert batched.shape == (5, 8, 2, 4, 2)
    torch.testing.assert_close(batched, singles, rtol=0, atol=0)
    # (B, 1, H, W) is accepted too
    torch.testing.assert_close(directional_topk(x[:, None], k=4, construction=construction), batched)


def test_gradient_reaches_critical_digit_pixels():
    x = blob_image([(3, 6, 4, 9)], value=0.9).requires_grad_(True)
    top = directional_topk(x[None], k=1, alpha=ALPHA)[0]
    (g,) = torch.autograd.grad(top[0, 0, 0, 1], x, retain_graph=True)  # birth of the component in direction 0
    assert float(g.sum()) == pytest.approx(-ALPHA)
    assert int((g != 0).sum()) == 1 and bool(x[g != 0] > 0.5)
    (g,) = torch.autograd.grad(top[0, 0, 0, 0], x)  # its lifetime cap - birth
    assert float(g.sum()) == pytest.approx(ALPHA)


def test_pure_heights_have_no_gradient_and_empty_images_give_zeros():
    x = random_digits(2).requires_grad_(True)
    (g,) = torch.autograd.grad(directional_topk(x, alpha=0.0).sum(), x)
    assert torch.equal(g, torch.zeros_like(g))
    assert torch.equal(directional_topk(torch.zeros(3, 10, 10)), torch.zeros(3, 8, 2, 3, 2))


def test_errors():
    with pytest.raises(TypeError, match="floating"):
        directional_topk(torch.zeros(2, 8, 8, dtype=torch.uint8))
    with pytest.raises(ValueError, match="expected images"):
        directional_topk(torch.zeros(8, 8))
    with pytest.raises(ValueError, match="k must"):
        directional_topk(torch.zeros(1, 8, 8), k=0)


def test_pixels_at_the_threshold_are_off_the_digit():
    x = torch.tensor([[[0.5, 0.51], [0.2, 1.0]]], dtype=torch.float64)
    f = directional_filtrations(x, 4, threshold=0.5, alpha=ALPHA)[0]
    assert torch.isinf(f[:, 0, 0]).all() and torch.isinf(f[:, 1, 0]).all()
    assert torch.isfinite(f[:, 0, 1]).all() and torch.isfinite(f[:, 1, 1]).all()


def test_features_pass_the_construction_on():
    from gpuph.apps.directional import directional_features

    x = blob_image([(3, 6, 3, 6), (6, 9, 6, 9)])  # two squares meeting at a corner: one component for T, two for V
    for c in ("T", "V"):
        top = directional_topk(x[None], k=2, construction=c)
        torch.testing.assert_close(directional_features(x[None], k=2, construction=c), top.flatten(1), rtol=0, atol=0)
    assert float(directional_topk(x[None], k=2, construction="T")[0, 0, 0, 1, 0]) == 0
    assert float(directional_topk(x[None], k=2, construction="V")[0, 0, 0, 1, 0]) > 0


def test_more_errors():
    with pytest.raises(ValueError, match="directions"):
        sweep_heights(5, 5, 0)
    with pytest.raises(ValueError, match="expected images"):
        directional_topk(torch.zeros(2, 3, 8, 8))  # three channels are not one image each


def test_births_follow_their_bars_when_a_finite_bar_outlives_an_essential_one():
    """Direction 0 sweeps left to right. A "C" open to the left (arms from columns 1 and 2, joined at column 9) has
    one finite H0 bar: the second arm, born at column 2 and merged at column 9; a small square at columns 14-15 is a
    second component, never merged, born late: its capped lifetime is shorter than the finite bar's, though the
    diagram lists essential classes first."""
    x = blob_image([(2, 4, 1, 10), (6, 8, 2, 10), (2, 8, 9, 11), (12, 14, 14, 16)])
    top = directional_topk(x[None], k=3, alpha=ALPHA)[0, 0, 0]  # direction 0, H0: (3, 2) rows (lifetime, birth)
    h = np_heights(16, 16, 8)[0][0]  # heights of the columns
    births = [h[1], h[2], h[14]]
    lives = [CAP - h[1], h[9] - h[2], CAP - h[14]]
    assert lives[1] > lives[2]
    np.testing.assert_allclose(top.numpy(), np.array([lives, births]).T, atol=1e-12)
