"""gpuph.apps.regularization: penalties against their formulas (NumPy), the 1D weak-Alpha PD0 against a direct
computation and GUDHI, the Top penalties against GUDHI, and the batched solver against closed forms."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import gpuph
from gpuph.apps import regularization as reg


def rand_w(shape=(3, 4, 12), seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_penalties_match_formulas():
    w = rand_w()
    a = w.numpy()
    d = np.diff(a, axis=-1)
    np.testing.assert_allclose(reg.l1_penalty(w).numpy(), np.abs(a).sum(-1))
    np.testing.assert_allclose(reg.l2_penalty(w).numpy(), (a**2).sum(-1))
    np.testing.assert_allclose(reg.tv_penalty(w).numpy(), np.abs(d).sum(-1))
    np.testing.assert_allclose(reg.smooth_tv_penalty(w).numpy(), np.sqrt((d**2).sum(-1)))
    for name, fn in [("l1", reg.l1_penalty), ("tv", reg.tv_penalty)]:
        np.testing.assert_allclose(reg.penalty(name, w).numpy(), fn(w).numpy())


def test_smooth_tv_gradient_at_constant_is_zero():
    w = torch.full((2, 5), 3.0, requires_grad=True)
    reg.smooth_tv_penalty(w).sum().backward()
    assert torch.equal(w.grad, torch.zeros_like(w))


def direct_gaps(values: np.ndarray) -> np.ndarray:
    return np.sort(np.diff(np.sort(values)))[::-1]


def test_line_weak_alpha_pd0_is_the_sorted_gaps():
    w = rand_w((5, 9), seed=1)
    pd = reg.line_weak_alpha_pd0(w)
    assert pd.shape == (5, 8, 2)
    assert torch.equal(pd[..., 0], torch.zeros(5, 8, dtype=w.dtype))
    for b in range(5):
        np.testing.assert_allclose(pd[b, :, 1].numpy(), direct_gaps(w[b].numpy()))


def gudhi_line_pd0(values: np.ndarray) -> np.ndarray:
    """Finite PD0 of the flag complex of the 1D Delaunay graph (the path through the sorted values), edge length."""
    import gudhi

    st = gudhi.SimplexTree()
    order = np.argsort(values)
    for i in range(len(values)):
        st.insert([i], filtration=0.0)
    for a, b in zip(order[:-1], order[1:]):
        st.insert([int(a), int(b)], filtration=float(abs(values[b] - values[a])))
    pairs = [p for k, p in st.persistence(min_persistence=-1) if k == 0 and np.isfinite(p[1])]
    return np.sort(np.array([d for _, d in pairs]))[::-1]


@pytest.mark.parametrize("seed", range(4))
def test_line_weak_alpha_pd0_matches_gudhi(seed):
    rng = np.random.default_rng(seed)
    values = rng.choice(np.linspace(-1, 1, 7), size=15) + (rng.normal(size=15) if seed % 2 else 0)  # ties when even
    ours = reg.line_weak_alpha_pd0(torch.tensor(values))[:, 1].numpy()
    ref = gudhi_line_pd0(values)
    np.testing.assert_allclose(ours[ours > 0], ref[ref > 0])


def _weak_alpha():
    fn = getattr(gpuph, "weak_alpha_persistence", None)
    if fn is None:
        try:
            from gpuph.point_cloud import weak_alpha_persistence as fn
        except ImportError:
            pass
    return fn


@pytest.mark.skipif(_weak_alpha() is None, reason="gpuph.weak_alpha_persistence not merged yet")
def test_line_weak_alpha_pd0_matches_weak_alpha_persistence():
    w = rand_w((3, 11), seed=2)
    dgm = _weak_alpha()(w[..., None], dims=(0,))
    ours = reg.line_weak_alpha_pd0(w)
    for b in range(3):
        d = dgm.select(batch=b, dim=0)
        finite = d.pairs[d.death_index >= 0].detach().numpy()
        np.testing.assert_allclose(np.sort(finite[:, 1])[::-1], ours[b, :, 1].numpy())
        np.testing.assert_allclose(finite[:, 0], 0)


@pytest.mark.parametrize("i0", [1, 2, 4])
def test_top_cluster_penalty(i0):
    w = rand_w((2, 3, 10), seed=3)
    ours = reg.top_penalty(w, i0, "cluster").numpy()
    ref = np.array([[direct_gaps(w[a, b].numpy())[i0 - 1 :].sum() for b in range(3)] for a in range(2)])
    np.testing.assert_allclose(ours, ref)


@pytest.mark.parametrize("i0", [1, 2, 4])
def test_top_maxima_penalty_matches_gudhi(i0):
    import gudhi

    w = rand_w((4, 16), seed=4)
    ours = reg.top_penalty(w, i0, "maxima").numpy()
    for b in range(4):
        cc = gudhi.CubicalComplex(vertices=-w[b].numpy())  # superlevel of w = sublevel of -w
        lives = sorted((d - bb for k, (bb, d) in cc.persistence() if k == 0 and np.isfinite(d)), reverse=True)
        np.testing.assert_allclose(ours[b], sum(lives[i0 - 1 :]), atol=1e-12)


def test_top_penalties_gradcheck():
    w = rand_w((2, 7), seed=5).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda v: reg.top_penalty(v, 2, "cluster"), (w,))
    assert torch.autograd.gradcheck(lambda v: reg.top_penalty(v, 2, "maxima"), (w,))


def test_errors():
    w = rand_w((2, 5))
    with pytest.raises(ValueError, match="setting"):
        reg.top_penalty(w, 2, "clusters")
    with pytest.raises(ValueError, match="i0"):
        reg.top_penalty(w, 0)
    with pytest.raises(ValueError, match="penalty"):
        reg.penalty("l3", w)
    with pytest.raises(TypeError):
        reg.l1_penalty(torch.ones(3, dtype=torch.int64))
    with pytest.raises(ValueError, match="kind"):
        reg.true_coefficients("zigzag", 10, torch.Generator())
    with pytest.raises(ValueError, match="p >= 4"):  # ramps of one value: 0 / 0
        reg.true_coefficients("sawtooth", 3, torch.Generator())
    assert torch.isfinite(reg.true_coefficients("sawtooth", 4, torch.Generator())).all()
    # No coefficients, no bars: a penalty of 0 in both settings, still part of the graph.
    empty = torch.zeros(3, 0, requires_grad=True)
    for setting in ("cluster", "maxima"):
        out = reg.top_penalty(empty, 2, setting)
        assert out.shape == (3,) and torch.all(out == 0) and out.requires_grad


def test_fit_l2_matches_closed_form_ridge():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(2, 20, 5, generator=g, dtype=torch.float64)
    y = torch.randn(2, 20, generator=g, dtype=torch.float64)
    lam = torch.tensor([[0.01, 0.5], [0.1, 1.0]], dtype=torch.float64)
    m = torch.ones(2, 2, 20, dtype=torch.float64)
    m[:, 1, 15:] = 0  # the second problem of each group uses 15 rows
    res = reg.fit(X, y, m, lam, "l2", steps=1500, lr=0.05, dtype=torch.float64)
    for gi in range(2):
        for j in range(2):
            rows = m[gi, j].bool()
            Xs, ys, n = X[gi][rows], y[gi][rows], int(rows.sum())
            # minimiser of |y - Xw|^2 / n + lam |w|^2
            ref = torch.linalg.solve(Xs.T @ Xs / n + lam[gi, j] * torch.eye(5, dtype=X.dtype), Xs.T @ ys / n)
            torch.testing.assert_close(res.weights[gi, j], ref, atol=2e-4, rtol=0)


def test_run_experiment_none_is_least_squares():
    pr = reg.make_problems("pm1", [0, 1], n_max=30, p=8)
    out = reg.run_experiment(pr, [5, 30], "none")
    for s in range(2):
        ref = torch.linalg.lstsq(pr.X[s], pr.y[s]).solution
        torch.testing.assert_close(out["weights"][1, s], ref)
        assert torch.isclose(out["mse"][1, s], (ref - pr.beta[s]).square().mean())
        # underdetermined: the minimum-norm solution interpolates the data
        torch.testing.assert_close(pr.X[s, :5] @ out["weights"][0, s], pr.y[s, :5])


def test_run_experiment_shapes_and_cv():
    pr = reg.make_problems("sawtooth", [0], n_max=12, p=6)
    lambdas = torch.tensor([1e-3, 1e-1, 10.0], dtype=torch.float64)
    out = reg.run_experiment(pr, [6, 12], "top1", "maxima", lambdas=lambdas, folds=2, steps=5)
    assert out["mse"].shape == (2, 1) and out["weights"].shape == (2, 1, 6) and out["cv_error"].shape == (2, 1, 3)
    assert set(out["lam"].flatten().tolist()) <= set(lambdas.tolist())
    assert torch.equal(out["lam"][:, 0], lambdas[out["cv_error"][:, 0].argmin(-1)])


def test_true_coefficients():
    g = torch.Generator().manual_seed(0)
    assert set(reg.true_coefficients("pm1", 200, g).tolist()) == {-1.0, 0.0, 1.0}
    assert set(reg.true_coefficients("123", 200, g).tolist()) == {1.0, 2.0, 3.0}
    saw = reg.true_coefficients("sawtooth", 99, g)
    dgm = gpuph.cubical_persistence(saw, spatial_dims=1, superlevel=True)
    assert len(dgm) == 3  # three local maxima: the essential class and two finite bars


def test_example_script_small(tmp_path):
    import importlib.util
    import json
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "examples" / "topo_regression.py"
    spec = importlib.util.spec_from_file_location("topo_regression_example", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(["--out", str(tmp_path), "--seeds", "2", "--folds", "2", "--steps", "3", "--ns", "10,20",
                 "--n-lambdas", "2"])
    data = json.loads((tmp_path / "results.json").read_text())
    assert set(data["results"]) == {"pm1", "123", "sawtooth"}
    for per in data["results"].values():
        assert set(per) == set(reg.PENALTIES)
        assert all(len(r["mse_mean"]) == 2 for r in per.values())
    assert (tmp_path / "mse.png").stat().st_size > 0 and (tmp_path / "results.md").stat().st_size > 0
