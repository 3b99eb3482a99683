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
    with pytest.raises(ValueError, match="p >= 8"):  # ramps of one value: 0 / 0
        reg.true_coefficients("sawtooth", 3, torch.Generator())
    assert torch.isfinite(reg.true_coefficients("sawtooth", 6, torch.Generator())).all()
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


def test_named_top_penalties_use_the_papers_ranks():
    # sorted values 0, .1, 1, 1.2, 3, 3.05, 7: gaps (longest first) 4, 1.8, .9, .2, .1, .05.
    # Top1 = E(1, 0, 2) leaves the longest gap (2 clusters) free: 1.8 + .9 + .2 + .1 + .05 = 3.05;
    # Top2 = E(1, 0, 4) leaves the 3 longest (4 clusters) free: .2 + .1 + .05 = .35.
    w = torch.tensor([[3.0, 0.0, 7.0, 1.2, 0.1, 3.05, 1.0]], dtype=torch.float64)
    np.testing.assert_allclose(reg.penalty("top1", w).numpy(), [3.05])
    np.testing.assert_allclose(reg.penalty("top2", w).numpy(), [0.35])
    np.testing.assert_allclose(reg.penalty("l2", w).numpy(), (w.numpy() ** 2).sum(-1))
    np.testing.assert_allclose(reg.penalty("smooth_tv", w).numpy(), reg.smooth_tv_penalty(w).numpy())


def test_sawtooth_ramps_run_from_0_to_1():
    # p = 9: period 3, three ramps 0, 1/2, 1
    saw = reg.true_coefficients("sawtooth", 9, torch.Generator())
    assert saw.tolist() == [0.0, 0.5, 1.0] * 3
    # Three local maxima (three H0 classes of the superlevel filtration of the line) for every accepted p.
    for p in (6, 8, 10, 11, 13, 100):
        saw = reg.true_coefficients("sawtooth", p, torch.Generator())
        assert len(saw) == p and float(saw[0]) == 0.0 and float(saw.max()) == 1.0
        assert len(gpuph.cubical_persistence(saw, spatial_dims=1, dims=0)) == 3, p
    for p in (1, 3, 4, 5, 7):  # the third ramp would hold one value or none
        with pytest.raises(ValueError, match="p = 6 or p >= 8"):
            reg.true_coefficients("sawtooth", p, torch.Generator())


def test_make_problems_noise_and_reproducibility():
    pr = reg.make_problems("pm1", [0, 1], n_max=400, p=5)
    assert pr.X.shape == (2, 400, 5) and pr.y.shape == (2, 400) and pr.beta.shape == (2, 5)
    resid = pr.y - (pr.X @ pr.beta[..., None])[..., 0]
    std = resid.std(-1)
    assert bool(((std > 0.04) & (std < 0.06)).all()), std  # default noise 0.05
    again = reg.make_problems("pm1", [1], n_max=400, p=5)
    assert torch.equal(again.X[0], pr.X[1]) and torch.equal(again.y[0], pr.y[1])


def test_fit_first_step_and_convergence_diagnostic():
    g = torch.Generator().manual_seed(1)
    X = torch.randn(1, 20, 4, generator=g, dtype=torch.float64)
    y = torch.randn(1, 20, generator=g, dtype=torch.float64)
    m = torch.ones(1, 1, 20, dtype=torch.float64)
    lam = torch.tensor([[0.1]], dtype=torch.float64)
    # One Adam step from w = 0 at the full learning rate (the cosine schedule starts at lr) moves every weight by lr
    # against the sign of its gradient, -2 X^T y / n (the ridge term has no gradient at 0).
    res = reg.fit(X, y, m, lam, "l2", steps=1, lr=0.05, dtype=torch.float64)
    torch.testing.assert_close(res.weights[0, 0], 0.05 * torch.sign(X[0].T @ y[0]), atol=1e-6, rtol=0)
    # With one step, the last 10% of the steps (one) made the whole decrease: rel_change is 1.
    torch.testing.assert_close(res.rel_change, torch.ones(1, 1, dtype=torch.float64))
    # The objective at the returned weights
    w = res.weights[0, 0]
    ref = ((y[0] - X[0] @ w) ** 2).mean() + 0.1 * (w**2).sum()
    torch.testing.assert_close(res.objective[0, 0], ref)
    # Two steps: the cosine schedule from lr to lr / 100 takes the second at lr * (0.01 + 0.99 * (1 + cos(pi / 2)) / 2)
    w = torch.zeros(4, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([w], lr=0.05)
    for step_lr in (0.05, 0.05 * 0.505):
        opt.param_groups[0]["lr"] = step_lr
        opt.zero_grad()
        (((y[0] - X[0] @ w) ** 2).mean() + 0.1 * (w**2).sum()).backward()
        opt.step()
    res = reg.fit(X, y, m, lam, "l2", steps=2, lr=0.05, dtype=torch.float64)
    torch.testing.assert_close(res.weights[0, 0], w.detach(), atol=1e-12, rtol=0)
    # Converged: the last 10% of the steps made a negligible share of the decrease.
    res = reg.fit(X, y, m, lam, "l2", steps=600, lr=0.05, dtype=torch.float64)
    assert float(res.rel_change.max()) < 1e-3


def test_fit_checks_shapes():
    X = torch.zeros(2, 10, 3)
    with pytest.raises(ValueError, match="row_weight"):
        reg.fit(X, torch.zeros(2, 10), torch.ones(2, 1, 11), torch.ones(2, 1), "l2", steps=1)
    with pytest.raises(ValueError, match="lam"):
        reg.fit(X, torch.zeros(2, 10), torch.ones(2, 1, 10), torch.ones(2, 2), "l2", steps=1)


def test_run_experiment_cross_validation_against_closed_form_ridge():
    """With the l2 penalty each fit is a ridge regression (closed form): the K-fold CV errors (rows of the first n
    assigned to folds round-robin, squared errors pooled over the held-out rows), the chosen lambda, the refit on all
    n rows and its coefficient MSE."""
    pr = reg.make_problems("123", [3], n_max=18, p=3, noise=0.5)
    lambdas = torch.tensor([0.1, 1.0, 10.0], dtype=torch.float64)
    folds, ns = 3, [12]  # n < n_max: rows past n are neither trained on nor validated on
    out = reg.run_experiment(pr, ns, "l2", lambdas=lambdas, folds=folds, steps=200, lr=0.3)
    X, y, beta = pr.X[0], pr.y[0], pr.beta[0]

    def ridge(rows, lam):
        Xs, ys = X[rows], y[rows]
        return torch.linalg.solve(Xs.T @ Xs / len(rows) + lam * torch.eye(3, dtype=X.dtype), Xs.T @ ys / len(rows))

    for i, n in enumerate(ns):
        cv = []
        for lam in lambdas:
            err = cnt = 0
            for k in range(folds):
                held = [r for r in range(n) if r % folds == k]
                w = ridge([r for r in range(n) if r % folds != k], lam)
                err += float(((y[held] - X[held] @ w) ** 2).sum())
                cnt += len(held)
            cv.append(err / cnt)
        np.testing.assert_allclose(out["cv_error"][i, 0].numpy(), cv, rtol=1e-3)
        best = int(np.argmin(cv))
        assert float(out["lam"][i, 0]) == float(lambdas[best])
        w = ridge(list(range(n)), lambdas[best])
        torch.testing.assert_close(out["weights"][i, 0], w, atol=5e-4, rtol=0)
        np.testing.assert_allclose(float(out["mse"][i, 0]), float((w - beta).square().mean()), rtol=1e-2)


def test_run_experiment_rel_change_is_the_largest_among_chosen_fits():
    pr = reg.make_problems("123", [3], n_max=18, p=3, noise=0.5)
    lambdas = torch.tensor([0.1, 1.0, 10.0], dtype=torch.float64)
    run = lambda ns: reg.run_experiment(pr, ns, "l2", lambdas=lambdas, folds=3, steps=40, lr=0.1)["rel_change"]
    a, b, both = run([12]), run([18]), run([12, 18])
    assert abs(a - b) > 0.1 * max(a, b)  # the two problems differ, so max and min differ
    assert both == pytest.approx(max(a, b), rel=0.02)  # float32 fits: the batch may round differently


def test_run_experiment_default_lambdas():
    # the default grid: 11 lambdas from 1e-4 to 10, half a decade apart
    pr = reg.make_problems("pm1", [0], n_max=10, p=4)
    out = reg.run_experiment(pr, [10], "l1", folds=2, steps=1)
    assert out["cv_error"].shape == (1, 1, 11)
