"""The MNIST GAN application (gpuph.apps): idx reader, topology loss and component counts against GUDHI, the loss
fixing a fixed generator's components, metrics against direct computations, checkpoints, the CLI (one process and
two DDP processes with gloo) and the demo."""

from __future__ import annotations

import gzip
import itertools
import json
import math
import os
import socket
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from fake_mnist import sample_digits, write_idx

import gpuph
from gpuph.apps import gan, gan_metrics
from gpuph.apps.classifier import load_classifier
from gpuph.apps.mnist import find_mnist_dir, load_mnist, read_idx

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "gpuph" / "data" / "mnist_sample.npz"


# ------------------------------------------------------------------------------------------------------------ reader
@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_round_trip(tmp_path, gz):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (5, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, 5, dtype=np.uint8)
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    write_idx(raw, "t10k", images, labels, gz)
    assert find_mnist_dir(tmp_path) == raw  # torchvision's layout under the root
    x, y = load_mnist(tmp_path, "test")
    assert x.dtype == np.uint8 and x.shape == (5, 28, 28)
    np.testing.assert_array_equal(x, images)
    np.testing.assert_array_equal(y, labels)
    np.testing.assert_array_equal(read_idx(raw / "t10k-images-idx3-ubyte", limit=2), images[:2])


def test_read_idx_errors(tmp_path):
    (tmp_path / "bad").write_bytes(struct.pack(">II", 1234, 0))
    with pytest.raises(ValueError, match="magic"):
        read_idx(tmp_path / "bad")
    (tmp_path / "short").write_bytes(struct.pack(">IIII", 2051, 3, 28, 28) + b"\0" * 100)
    with pytest.raises(ValueError, match="truncated"):
        read_idx(tmp_path / "short")
    with pytest.raises(FileNotFoundError):
        load_mnist(tmp_path / "nowhere", "train")
    with pytest.raises(ValueError, match="split"):
        load_mnist(tmp_path, "validation")
    # Cut or corrupt files (an interrupted download) name the file in a ValueError, whatever layer notices.
    (tmp_path / "header").write_bytes(struct.pack(">II", 2051, 2) + b"\0\0")
    with pytest.raises(ValueError, match="header.*truncated in its header"):
        read_idx(tmp_path / "header")
    whole = gzip.compress(struct.pack(">IIII", 2051, 2, 3, 3) + bytes(18))
    (tmp_path / "cut.gz").write_bytes(whole[:-10])
    (tmp_path / "plain.gz").write_bytes(struct.pack(">IIII", 2051, 2, 3, 3) + bytes(18))
    for name in ("cut.gz", "plain.gz"):
        with pytest.raises(ValueError, match="cannot be read"):
            read_idx(tmp_path / name)
    (tmp_path / "ok").write_bytes(struct.pack(">IIII", 2051, 2, 3, 3) + bytes(18))
    for limit in (-1, 1.5, True):
        with pytest.raises(ValueError, match="limit"):
            read_idx(tmp_path / "ok", limit=limit)
    # Image and label files swapped: not MNIST's shapes.
    rng = np.random.default_rng(1)
    swapped = tmp_path / "swapped"
    swapped.mkdir()
    write_idx(swapped, "t10k", rng.integers(0, 256, (4, 28, 28), dtype=np.uint8),
              rng.integers(0, 10, 4, dtype=np.uint8), False)
    (swapped / "t10k-images-idx3-ubyte").rename(swapped / "tmp")
    (swapped / "t10k-labels-idx1-ubyte").rename(swapped / "t10k-images-idx3-ubyte")
    (swapped / "tmp").rename(swapped / "t10k-labels-idx1-ubyte")
    with pytest.raises(ValueError, match="files swapped"):
        load_mnist(swapped, "test")


# ------------------------------------------------------------------------------------------------------------ loss
def gudhi_pd0(img: np.ndarray) -> np.ndarray:
    """Superlevel PD0 (V construction) of one image by GUDHI: (birth, death) rows, essential death -inf."""
    import gudhi

    cc = gudhi.CubicalComplex(vertices=-np.asarray(img, dtype=np.float64))
    pairs = [(-b, -d) for k, (b, d) in cc.persistence(homology_coeff_field=2) if k == 0]
    return np.array(pairs, dtype=np.float64).reshape(-1, 2)


def test_topology_loss_and_component_counts_match_gudhi():
    rng = np.random.default_rng(1)
    from scipy.ndimage import gaussian_filter

    imgs = np.stack([gaussian_filter(rng.random((28, 28)), 1.5) for _ in range(6)]).astype(np.float32)
    x = torch.from_numpy(imgs)[:, None]
    loss = gan.topology_loss(x, reduction="none")
    for t in (0.0, 0.01, 0.03):
        counts = gan.component_counts(x, threshold=t)
        for b in range(len(imgs)):
            ref = gudhi_pd0(imgs[b])
            life = np.abs(ref[:, 0] - ref[:, 1])
            assert counts[b] == int((life > t).sum())
    for b in range(len(imgs)):
        ref = gudhi_pd0(imgs[b])
        finite = np.isfinite(ref[:, 1])
        # E(1,0,2; PD0): all lifetimes but the longest, which is the essential class's (infinite).
        assert loss[b].item() == pytest.approx(np.abs(ref[finite, 0] - ref[finite, 1]).sum(), rel=1e-6, abs=1e-7)
    assert gan.topology_loss(x).item() == pytest.approx(loss.mean().item(), rel=1e-6)


def test_topology_loss_gradient_is_on_critical_pixels():
    x = torch.rand(3, 1, 28, 28, requires_grad=True)
    gan.topology_loss(x, reduction="sum").backward()
    dgm = gan_metrics.pd0_diagrams(x).finite()
    g = x.grad.reshape(3, -1)
    expected = torch.zeros_like(g)
    expected.index_put_((dgm.batch, dgm.birth_index), torch.ones(len(dgm)), accumulate=True)
    expected.index_put_((dgm.batch, dgm.death_index), -torch.ones(len(dgm)), accumulate=True)
    torch.testing.assert_close(g, expected)  # superlevel, b > d: d|d - b|/dx is +1 at births, -1 at deaths


def test_topology_loss_reduces_components_of_a_fixed_generator():
    """The embedded generator, fine-tuned with the topology loss alone for a few steps: its images of fixed latent
    vectors have fewer components (and a lower loss); the discriminator-free run isolates the loss's effect."""
    gan.seed_everything(0)
    g, _, _ = gan.load_pretrained_gan()
    z = gan.latent_vectors(128, g.nz, seed=7)
    before = gan.generate(g, z)
    e0 = gan.topology_loss(before).item()
    c0 = gan.component_counts(before, 0.1).double().mean().item()
    g, _ = gan.clone_for_training(g, None)
    hist = gan.finetune_topology(g, None, steps=8, batch_size=64, topo_weight=1.0, lr=1e-3, progress=False)
    assert len(hist) == 8 and all(np.isfinite(h["topo"]) for h in hist)
    after = gan.generate(g, z)
    e1 = gan.topology_loss(after).item()
    c1 = gan.component_counts(after, 0.1).double().mean().item()
    assert c0 > 1.05, "the embedded generator should start with spurious components"
    assert e1 < 0.6 * e0, (e0, e1)
    assert c1 < c0 - 0.5, (c0, c1)
    assert (after.min() >= 0) and (after.max() <= 1)


def test_finetune_validation():
    g, d = gan.build_models(gan.GANConfig(8, 4, 4))
    with pytest.raises(ValueError, match="topo_weight"):
        gan.finetune_topology(g, d, steps=1, topo_weight=-1.0)
    with pytest.raises(ValueError, match="latent"):
        g(torch.zeros(2, 9))
    with pytest.raises(ValueError, match="GANConfig"):
        gan.GANConfig(nz=0)


def test_numpy_digits_as_load_mnist_returns_them():
    # load_mnist gives numpy uint8 arrays: the functions that take real digits take them as they come.
    x = np.random.default_rng(3).integers(0, 256, (8, 28, 28), dtype=np.uint8)
    t = torch.from_numpy(x)
    assert torch.equal(gan.component_counts(x / 255.0), gan.component_counts(t / 255.0))
    assert torch.equal(next(gan.real_batches(x, 4, seed=1)), next(gan.real_batches(t, 4, seed=1)))
    g, d = gan.build_models(gan.GANConfig(8, 4, 4))
    gan.finetune_topology(g, d, steps=1, batch_size=4, images=x, progress=False)


def test_train_classifier_refuses_what_it_cannot_train_on():
    from gpuph.apps.classifier import train_classifier

    x = np.zeros((10, 28, 28), dtype=np.uint8)
    y = np.zeros(10, dtype=np.int64)
    for kwargs, match in ((dict(batch_size=128), "batch_size must be an integer in 1..10"),
                          (dict(epochs=0), "epochs must be"), (dict(batch_size=0), "batch_size")):
        with pytest.raises(ValueError, match=match):
            train_classifier(x, y, progress=False, **kwargs)


# ------------------------------------------------------------------------------------------------------------ metrics
def test_mmd_and_coverage_match_loops():
    rng = np.random.default_rng(2)
    for ng, nr in [(7, 5), (3, 9), (1, 1)]:
        dist = rng.random((ng, nr))
        dist[0, -1] = dist[0].min()  # a tie: the first reference wins
        mmd = np.mean([min(dist[i, j] for i in range(ng)) for j in range(nr)])
        matched = {min(range(nr), key=lambda j, i=i: (dist[i, j], j)) for i in range(ng)}
        assert gan_metrics.minimum_matching_distance(torch.from_numpy(dist)) == pytest.approx(mmd, rel=1e-12)
        assert gan_metrics.coverage(torch.from_numpy(dist)) == pytest.approx(len(matched) / nr)
    with pytest.raises(ValueError, match="non-empty"):
        gan_metrics.coverage(torch.zeros(0, 3))
    with pytest.raises(ValueError, match="NaN"):
        gan_metrics.minimum_matching_distance(torch.tensor([[float("nan")]]))


def test_l2_distance_matrix_matches_numpy():
    rng = np.random.default_rng(3)
    a, b = rng.random((4, 1, 28, 28)), rng.random((6, 1, 28, 28))
    d = gan_metrics.l2_distance_matrix(torch.from_numpy(a), torch.from_numpy(b)).numpy()
    ref = np.array([[np.sqrt(((x - y) ** 2).sum()) for y in b] for x in a])
    np.testing.assert_allclose(d, ref, rtol=1e-12)
    assert gan_metrics.l2_distance_matrix(torch.from_numpy(a), torch.from_numpy(a)).diagonal().abs().max() == 0
    # Past 25 rows torch's cdist would expand |x|^2 - 2 x.y + |y|^2 (no exact zeros far from the origin).
    far = torch.rand(30, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) + 1e6
    assert (gan_metrics.l2_distance_matrix(far, far).diagonal() == 0).all()


def test_metric_inputs_are_checked_and_thresholds_are_strict():
    with pytest.raises(ValueError):
        gan_metrics.inception_score(torch.full((4, 2), 0.5), splits=5)
    with pytest.raises(ValueError):
        gan_metrics.inception_score(torch.tensor([[1.5, -0.5]]))
    # Components living exactly the threshold are not counted: strictly above it.
    assert gan_metrics.mean_component_count(torch.tensor([[[[1.0, 0.0, 0.5]]]]), 0.5) == 1.0


@pytest.mark.parametrize("splits", [1, 3])
def test_inception_score_matches_formula(splits):
    rng = np.random.default_rng(4)
    logits = rng.normal(size=(30, 10)) * 3
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    probs[0] = np.eye(10)[3]  # exact zeros: 0 log 0 = 0
    scores = []
    n = len(probs) // splits
    for s in range(splits):
        part = probs[s * n:(s + 1) * n]
        py = part.mean(0)
        kl = [sum(p * np.log(p / q) for p, q in zip(row, py) if p > 0) for row in part]
        scores.append(np.exp(np.mean(kl)))
    mean, std = gan_metrics.inception_score(torch.from_numpy(probs), splits=splits)
    assert mean == pytest.approx(np.mean(scores), rel=1e-10)
    assert std == pytest.approx(np.std(scores), abs=1e-10)
    # one-hot, all classes equally often: the maximum, the number of classes
    assert gan_metrics.inception_score(torch.eye(10).repeat(3, 1))[0] == pytest.approx(10.0)
    assert gan_metrics.inception_score(torch.full((5, 10), 0.1))[0] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="probability"):
        gan_metrics.inception_score(torch.ones(4, 10))


def w1_direct(x: np.ndarray, y: np.ndarray) -> float:
    """1-Wasserstein distance (L-infinity ground metric) between superlevel diagrams by an explicit assignment: each
    point matched to a point of the other diagram or to the diagonal; essential classes matched among themselves by
    their births."""
    from scipy.optimize import linear_sum_assignment

    ex, ey = ~np.isfinite(x[:, 1]), ~np.isfinite(y[:, 1])
    assert ex.sum() == ey.sum()
    cost = np.abs(np.sort(x[ex, 0]) - np.sort(y[ey, 0])).sum()
    fx, fy = x[~ex], y[~ey]
    n, m = len(fx), len(fy)
    big = np.zeros((n + m, n + m))
    big[:n, :m] = np.maximum(np.abs(fx[:, None, 0] - fy[None, :, 0]), np.abs(fx[:, None, 1] - fy[None, :, 1]))
    big[:n, m:] = (np.abs(fx[:, 0] - fx[:, 1]) / 2)[:, None]  # to the diagonal (L-infinity)
    big[n:, :m] = (np.abs(fy[:, 0] - fy[:, 1]) / 2)[None, :]
    r, c = linear_sum_assignment(big)
    return float(cost + big[r, c].sum())


def test_wasserstein_matrix_matches_direct_assignment():
    pytest.importorskip("ot")
    rng = np.random.default_rng(5)
    from scipy.ndimage import gaussian_filter

    imgs = torch.from_numpy(np.stack([gaussian_filter(rng.random((12, 12)), 1.0) for _ in range(5)]))[:, None]
    a, b = gan_metrics.pd0_diagrams(imgs[:3]), gan_metrics.pd0_diagrams(imgs[2:])
    got = gan_metrics.wasserstein_distance_matrix(a, b, backend="gudhi").numpy()
    na, nb = [d[0] for d in a.to_numpy()], [d[0] for d in b.to_numpy()]
    ref = np.array([[w1_direct(x, y) for y in nb] for x in na])
    np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-12)
    assert got[2, 0] == 0  # the same image
    if gan_metrics.wasserstein_backend() == "gpuph":
        np.testing.assert_allclose(gan_metrics.wasserstein_distance_matrix(a, b, backend="gpuph").numpy(), ref,
                                   rtol=1e-6, atol=1e-9)
    with pytest.raises(ValueError, match="backend"):
        gan_metrics.wasserstein_distance_matrix(a, b, backend="nope")
    # Both backends refuse what gpuph.distances refuses, rather than the fallback returning numbers.
    sub = gpuph.cubical_persistence(imgs[:2, 0], superlevel=False, dims=0)
    for backend in ("gudhi", "gpuph"):
        for kwargs, match in ((dict(dim=1), "no diagram of dimension 1"), (dict(p=0.5), "order p"),
                              (dict(p=math.inf), "order p")):
            with pytest.raises(ValueError, match=match):
                gan_metrics.wasserstein_distance_matrix(a, b, backend=backend, **kwargs)
        with pytest.raises(ValueError, match="superlevel with a sublevel"):
            gan_metrics.wasserstein_distance_matrix(a, sub, backend=backend)
    # one bump each: no finite pairs, only the essential classes, born at the peaks
    yy, xx = np.mgrid[:12, :12]
    bumps = torch.from_numpy(np.stack([h * np.exp(-((yy - 5) ** 2 + (xx - 6) ** 2) / 8.0) for h in (1.0, 0.7)]))
    e = gan_metrics.pd0_diagrams(bumps[:, None])
    assert len(e.finite()) == 0
    np.testing.assert_allclose(gan_metrics.wasserstein_distance_matrix(e, e, backend="gudhi").numpy(),
                               [[0.0, 0.3], [0.3, 0.0]], atol=1e-12)


def test_mean_component_count_and_evaluate_samples():
    pytest.importorskip("ot")
    ref = torch.from_numpy(sample_digits(24).astype(np.float32) / 255.0)[:, None]
    counts = [int((np.abs(p[:, 0] - p[:, 1]) > 0.2).sum()) for p in (gudhi_pd0(r[0].numpy()) for r in ref)]
    assert gan_metrics.mean_component_count(ref, 0.2) == pytest.approx(np.mean(counts))
    from gpuph.apps.classifier import load_pretrained_classifier

    clf, _ = load_pretrained_classifier()
    m = gan_metrics.evaluate_samples(ref, ref, clf, thresholds=(0.2,), is_splits=2, backend="gudhi")
    assert m["MMD-L2"] == 0 and m["COV-L2"] == 1 and m["MMD-Wass"] == 0 and m["COV-Wass"] == 1
    assert m["components>0.2"] == pytest.approx(np.mean(counts))
    assert 1 <= m["IS"] <= 10
    # 24 samples make one split, whatever is_splits asks (10 splits of 2 scored at most 2): the single-split score.
    from gpuph.apps.classifier import predict_proba

    probs = predict_proba(clf, ref)
    m10 = gan_metrics.evaluate_samples(ref, ref, clf, thresholds=(0.2,), is_splits=10, backend="gudhi")
    assert m10["IS-splits"] == 1 and m10["IS"] == pytest.approx(gan_metrics.inception_score(probs)[0])
    assert m10["IS"] > 3  # real digits of several classes
    with pytest.raises(ValueError, match="wasserstein_samples"):
        gan_metrics.evaluate_samples(ref, ref, clf, wasserstein_samples=0, backend="gudhi")


def test_evaluate_samples_with_fewer_samples_than_references():
    """wasserstein_samples caps samples and references separately: 12 samples against the first 16 of 20 real
    digits, four of which (12..15) are copies of samples, so the Wasserstein metrics see those copies."""
    pytest.importorskip("ot")
    digits = torch.from_numpy(sample_digits(28).astype(np.float32) / 255.0)[:, None]
    samples = digits[:12]
    reference = torch.cat([digits[12:24], samples[:4], digits[24:28]])
    m = gan_metrics.evaluate_samples(samples, reference, None, thresholds=(), wasserstein_samples=16, backend="gudhi")
    dw = gan_metrics.wasserstein_distance_matrix(gan_metrics.pd0_diagrams(samples),
                                                 gan_metrics.pd0_diagrams(reference[:16]), backend="gudhi")
    assert dw.shape == (12, 16) and bool((dw[:4, 12:16].diagonal() == 0).all())
    assert m["MMD-Wass"] == gan_metrics.minimum_matching_distance(dw)
    assert m["COV-Wass"] == gan_metrics.coverage(dw)
    capped = gan_metrics.wasserstein_distance_matrix(gan_metrics.pd0_diagrams(samples),
                                                     gan_metrics.pd0_diagrams(reference[:12]), backend="gudhi")
    assert m["MMD-Wass"] < gan_metrics.minimum_matching_distance(capped)  # the copies count
    dl2 = gan_metrics.l2_distance_matrix(samples, reference)  # L2 metrics use all 20 references
    assert dl2.shape == (12, 20) and m["MMD-L2"] == gan_metrics.minimum_matching_distance(dl2)


def test_is_splits_hold_at_least_the_minimum():
    from gpuph.apps.classifier import load_pretrained_classifier

    clf, _ = load_pretrained_classifier()
    ref = torch.from_numpy(sample_digits(64).astype(np.float32) / 255.0)[:, None]
    many = ref.repeat(4, 1, 1, 1)  # 256 samples: 5 splits of 51 (>= IS_MIN_SPLIT), not 10 of 25
    m = gan_metrics.evaluate_samples(many, ref, clf, thresholds=(), is_splits=10, backend="gudhi")
    assert m["IS-splits"] == 256 // gan_metrics.IS_MIN_SPLIT == 5


# ------------------------------------------------------------------------------------------------------------ files
def test_checkpoint_metadata_keeps_tensors_as_the_voxel_gan_does(tmp_path):
    """extra (optimizer states, logs) keeps tensors, numbers and tuples; other objects come back as text."""
    g, d = gan.build_models(gan.GANConfig(16, 8, 8))
    extra = {"counts": torch.tensor([3, 4]), "shape": (2, 3), "out": tmp_path, "lr": np.float32(0.5), 7: "seven"}
    gan.save_checkpoint(tmp_path / "ck.pt", g, d, extra=extra)
    got = gan.load_checkpoint(tmp_path / "ck.pt")[2]["extra"]
    assert torch.equal(got.pop("counts"), torch.tensor([3, 4]))
    assert got == {"shape": (2, 3), "out": str(tmp_path), "lr": 0.5, 7: "seven"}


@pytest.mark.parametrize("half", [False, True])
def test_checkpoint_round_trip(tmp_path, half):
    g, d = gan.build_models(gan.GANConfig(16, 8, 8))
    with torch.no_grad():
        for p in list(g.parameters()) + list(d.parameters()):
            p.add_(torch.randn_like(p) * 0.05)
        g.project[1].running_mean.normal_()  # buffers travel too
    path = tmp_path / "ck.pt"
    gan.save_checkpoint(path, g, d, extra={"note": "x", "steps": 3}, half=half)
    g2, d2, info = gan.load_checkpoint(path)
    assert info["config"] == gan.GANConfig(16, 8, 8) and info["extra"] == {"note": "x", "steps": 3}
    assert [f.name for f in tmp_path.iterdir()] == ["ck.pt"]  # written through a temporary file, renamed
    z = gan.latent_vectors(5, 16, seed=1)
    g.eval()
    for a, b in [(g(z), g2(z)), (d(g(z)), d2(g(z)))]:
        if half:
            torch.testing.assert_close(a, b, rtol=2e-2, atol=2e-2)
        else:
            assert torch.equal(a, b)
    for p in g2.parameters():
        assert p.dtype == torch.float32
    gan.save_checkpoint(path, g, None)
    assert gan.load_checkpoint(path)[1] is None
    torch.save({"something": 1}, tmp_path / "other.pt")
    (tmp_path / "text.pt").write_text("not a checkpoint")
    (tmp_path / "empty.pt").write_bytes(b"")
    whole = path.read_bytes()
    (tmp_path / "cut.pt").write_bytes(whole[: len(whole) - 10])  # a zip cut short: torch raises an OSError
    (tmp_path / "half.pt").write_bytes(whole[: len(whole) // 2])
    for name in ("other.pt", "text.pt", "empty.pt", "cut.pt", "half.pt"):
        with pytest.raises(ValueError, match="checkpoint"):
            gan.load_checkpoint(tmp_path / name)
        with pytest.raises(ValueError, match="classifier"):
            load_classifier(tmp_path / name)
    with pytest.raises(FileNotFoundError):
        gan.load_checkpoint(tmp_path / "missing.pt")
    with pytest.raises(FileNotFoundError):
        load_classifier(tmp_path / "missing.pt")


def test_checkpoint_with_the_right_tag_but_damaged_contents_is_a_value_error(tmp_path):
    """A file tagged as a gpuph MNIST GAN checkpoint whose config or weights are missing or do not fit: the
    documented ValueError, naming the file, not a KeyError, a TypeError or load_state_dict's RuntimeError."""
    g, d = gan.build_models(gan.GANConfig(8, 4, 4))
    gan.save_checkpoint(tmp_path / "ck.pt", g, d)
    payload = torch.load(tmp_path / "ck.pt", weights_only=True)
    damaged = {
        "no_generator": {k: v for k, v in payload.items() if k != "generator"},
        "unknown_config_key": {**payload, "config": {**payload["config"], "ngz": 3}},
        "config_not_the_weights": {**payload, "config": {**payload["config"], "nz": 9}},
    }
    for name, bad in damaged.items():
        torch.save(bad, tmp_path / f"{name}.pt")
        with pytest.raises(ValueError, match=f"{name}.pt is a damaged gpuph MNIST GAN checkpoint"):
            gan.load_checkpoint(tmp_path / f"{name}.pt")
    from gpuph.apps.classifier import CLASSIFIER_FORMAT

    torch.save({"format": CLASSIFIER_FORMAT, "version": 1, "extra": {}}, tmp_path / "no_state.pt")
    torch.save({"format": CLASSIFIER_FORMAT, "version": 1, "state": {"head.4.bias": torch.zeros(3)}, "extra": {}},
               tmp_path / "wrong_state.pt")
    for name in ("no_state", "wrong_state"):
        with pytest.raises(ValueError, match=f"{name}.pt is a damaged gpuph MNIST classifier"):
            load_classifier(tmp_path / f"{name}.pt")


@pytest.mark.parametrize("argv, option", [
    (["--epochs", "0"], "--epochs"), (["--batch-size", "0"], "--batch-size"), (["--lr", "-1"], "--lr"),
    (["--device", "foo"], "--device"), (["--mnist-dir", "/nonexistent/mnist"], "--mnist-dir"),
])
def test_classifier_command_line_errors(argv, option, capsys, tmp_path):
    """python -m gpuph.apps.classifier: a bad value is a usage error, before MNIST is read or anything trained."""
    from gpuph.apps import classifier

    with pytest.raises(SystemExit) as exit_:
        classifier.main([*argv, "--export", str(tmp_path / "c.pt")])
    assert exit_.value.code == 2 and option in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_embedded_models_are_small_and_load():
    from gpuph.apps.classifier import PRETRAINED_CLASSIFIER, load_pretrained_classifier

    for path in (gan.PRETRAINED_GAN, PRETRAINED_CLASSIFIER):
        assert path.stat().st_size < 1_000_000, path
    g, d, info = gan.load_pretrained_gan()
    x = gan.generate(g, gan.latent_vectors(8, g.nz, 0))
    assert x.shape == (8, 1, 28, 28) and x.min() >= 0 and x.max() <= 1
    assert d(x).shape == (8,)
    clf, cinfo = load_pretrained_classifier()
    assert cinfo["test_accuracy"] > 0.97
    digits = sample_digits()
    with np.load(SAMPLE) as f:
        labels = f["labels"]
    from gpuph.apps.classifier import accuracy

    assert accuracy(clf, digits, labels) > 0.9


def test_interpolate_latents():
    z0, z1 = torch.zeros(2, 3), torch.ones(2, 3)
    zi = gan.interpolate_latents(z0, z1, 5)
    assert zi.shape == (2, 5, 3)
    torch.testing.assert_close(zi[:, :, 0], torch.linspace(0, 1, 5).expand(2, 5))
    with pytest.raises(ValueError):
        gan.interpolate_latents(z0, z1, 1)


# ------------------------------------------------------------------------------------------------------------ CLI
def _env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("WORLD_SIZE", None)
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_cli_single_process_with_report(fake_mnist, tmp_path):
    pytest.importorskip("matplotlib")
    pytest.importorskip("ot")
    out = tmp_path / "out"
    cmd = [sys.executable, str(REPO / "examples" / "gan_mnist.py"), "--mnist-dir", str(fake_mnist), "--steps", "4",
           "--finetune-steps", "3", "--batch-size", "16", "--n-eval", "24", "--wasserstein-samples", "8",
           "--out", str(out), "--no-progress", "--device", "cpu"]
    res = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    for name in ("baseline.pt", "topology.pt", "control.pt", "metrics.json", "metrics.md", "summary.json",
                 "grid_before_after.png", "interpolation_before_after.png"):
        assert (out / name).exists(), name
    metrics = json.loads((out / "metrics.json").read_text())["metrics"]
    assert list(metrics) == ["baseline", "control (+3 GAN steps)", "topology (+3 steps with E)",
                             "real digits (held out)"]
    for row in metrics.values():
        assert {"MMD-L2", "COV-L2", "MMD-Wass", "COV-Wass", "IS", "components>0.1"} <= set(row)
    g, _, _ = gan.load_checkpoint(out / "topology.pt")
    assert g.nz == 64


def test_cli_ddp_two_gloo_processes(fake_mnist, tmp_path):
    """torchrun with 2 CPU processes (gloo): baseline steps and topology fine-tuning under DistributedDataParallel,
    each rank scoring its half of the batch; rank 0 writes finite checkpoints and losses."""
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--nnodes=1",
           f"--master_port={_free_port()}", str(REPO / "examples" / "gan_mnist.py"), "--mnist-dir", str(fake_mnist),
           "--steps", "3", "--finetune-steps", "3", "--batch-size", "16", "--no-control", "--no-report",
           "--out", str(out), "--no-progress", "--device", "cpu"]
    res = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=120)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "world size 2" in res.stdout
    hist = json.loads((out / "history_topology.json").read_text())
    assert len(hist) == 3 and all(np.isfinite(h["topo"]) and np.isfinite(h["d_loss"]) for h in hist)
    g, d, _ = gan.load_checkpoint(out / "topology.pt")
    assert d is not None and all(torch.isfinite(p).all() for p in itertools.chain(g.parameters(), d.parameters()))


@pytest.mark.parametrize("argv, option", [
    (["--topo-weight", "-1"], "--topo-weight"), (["--topo-weight", "nan"], "--topo-weight"),
    (["--device", "foo"], "--device"), (["--batch-size", "1"], "--batch-size"), (["--steps", "-1"], "--steps"),
    (["--wasserstein-samples", "0"], "--wasserstein-samples"), (["--threads", "0"], "--threads"),
    (["--mnist-dir", "/nonexistent/mnist"], "--mnist-dir"),
] + ([] if torch.cuda.is_available() else [(["--device", "cuda"], "--device")]))
def test_demo_argument_errors(argv, option, capsys, tmp_path):
    from gpuph import demo

    with pytest.raises(SystemExit) as exit_:
        demo.main([*argv, "--out", str(tmp_path)])
    assert exit_.value.code == 2 and option in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # refused before any work


@pytest.mark.parametrize("split, missing", [("t10k", "train-images-idx3-ubyte"), ("train", "t10k-images-idx3-ubyte")])
def test_demo_with_one_split_of_mnist(split, missing, tmp_path, capsys, monkeypatch):
    """A folder holding one split only: --mnist-dir naming it is a usage error that names the missing file (the
    folder passed the check, then load_mnist raised FileNotFoundError), and as the default folder it is skipped for
    the embedded digits."""
    from gpuph import demo

    mnist = tmp_path / "mnist"
    mnist.mkdir()
    write_idx(mnist, split, sample_digits(16), np.arange(16) % 10)
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_:
        demo.main(["--mnist-dir", str(mnist), "--out", str(out), "--steps", "1", "--n-eval", "8"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "--mnist-dir" in err and missing in err and not out.exists()
    pytest.importorskip("matplotlib")
    pytest.importorskip("ot")
    monkeypatch.setenv("GPUPH_MNIST_DIR", str(mnist))
    assert demo.main(["--out", str(out), "--steps", "1", "--batch-size", "4", "--n-eval", "8",
                      "--wasserstein-samples", "4", "--no-progress"]) == 0
    assert "embedded" in json.loads((out / "metrics.json").read_text())["meta"]["reference"]


def test_demo_main(tmp_path, fake_mnist, monkeypatch):
    pytest.importorskip("matplotlib")
    pytest.importorskip("ot")
    from gpuph import demo

    monkeypatch.setenv("GPUPH_MNIST_DIR", str(tmp_path / "missing"))  # the embedded-digits path
    assert demo.main(["--out", str(tmp_path), "--steps", "2", "--n-eval", "16", "--wasserstein-samples", "8",
                      "--no-progress"]) == 0
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert set(m["metrics"]) == {"before", "after"}
    assert "embedded" in m["meta"]["reference"]
    assert (tmp_path / "grid_before_after.png").exists()
    assert demo.main(["--out", str(tmp_path / "b"), "--steps", "2", "--n-eval", "16", "--wasserstein-samples", "8",
                      "--no-progress", "--mnist-dir", str(fake_mnist)]) == 0
