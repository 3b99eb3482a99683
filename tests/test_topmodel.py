"""gpuph.apps.topmodel: the targeted attack on toy models, TopModel's gradient path, the example end to end."""

from __future__ import annotations

import torch
from fake_mnist import write_bar_mnist
from torch import nn

from gpuph.apps.topmodel import CNN, MLP, TopModel, accuracy, random_targets, targeted_attack, train_classifier


def toy_linear():
    """Class c scores x . e_c: the prediction is the argmax coordinate."""
    model = nn.Linear(3, 3, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.eye(3))
    return model


def test_attack_step_changes_prediction_on_toy_model():
    model = toy_linear()
    x = torch.tensor([[0.6, 0.5, 0.1], [0.2, 0.9, 0.3]])
    x0 = x.clone()
    target = torch.tensor([1, 2])
    # one step of 0.1: the first input crosses over (0.5, 0.6) -> class 1; the second needs more steps
    adv, ok, n = targeted_attack(model, x, target, step=0.1, steps=1)
    assert torch.equal(x, x0)  # the caller's tensor is untouched
    assert ok.tolist() == [True, False] and n.tolist() == [1, 1]
    assert model(adv).argmax(1)[0] == 1
    assert float((adv - x).abs().max()) <= 0.1 + 1e-6
    adv, ok, n = targeted_attack(model, x, target, step=0.1, steps=10)
    assert ok.all() and (model(adv).argmax(1) == target).all()
    assert n.tolist()[0] == 1 and n.tolist()[1] > 1
    assert float(adv.min()) >= 0 and float(adv.max()) <= 1


def test_attack_already_successful_is_untouched():
    model = toy_linear()
    x = torch.tensor([[0.1, 0.9, 0.0]])
    adv, ok, n = targeted_attack(model, x, torch.tensor([1]), step=0.1, steps=5)
    assert ok.all() and n.tolist() == [0] and torch.equal(adv, x)


def test_random_targets_differ_from_labels():
    labels = torch.randint(0, 10, (500,), generator=torch.Generator().manual_seed(0))
    t = random_targets(labels, seed=1)
    assert (t != labels).all() and t.min() >= 0 and t.max() <= 9
    assert len(set(t.tolist())) == 10


def test_models_shapes_and_topmodel_gradient():
    x = torch.zeros(4, 28, 28)
    x[:, 8:20, 10:18] = 0.9
    x[1, 12:16, 12:16] = 0  # a hole
    for model in (TopModel(k=2), MLP(), CNN()):
        x_ = x.clone().requires_grad_(True)
        out = model(x_)
        assert out.shape == (4, 10)
        (g,) = torch.autograd.grad(out[:, 3].sum(), x_)
        assert g.abs().sum() > 0
    # TopModel's gradient only reaches digit pixels (the background is excluded from the filtrations)
    x_ = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(TopModel(k=2)(x_)[:, 0].sum(), x_)
    assert (g[x <= 0.5] == 0).all()


def test_train_classifier_learns_a_separable_problem():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 5, generator=g)
    y = (x[:, 0] > 0).long()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Linear(16, 2))
    losses = train_classifier(model, x, y, epochs=20, batch_size=64, lr=1e-2)
    assert losses[-1] < losses[0]
    assert accuracy(model, x, y) > 0.95


def test_example_script_small(tmp_path):
    """examples/topmodel_attacks.py end to end on a tiny synthetic idx data set (no MNIST download in CI)."""
    import importlib.util
    import json
    from pathlib import Path

    write_bar_mnist(tmp_path, 60, 30, gz=False)
    path = Path(__file__).resolve().parents[1] / "examples" / "topmodel_attacks.py"
    spec = importlib.util.spec_from_file_location("topmodel_attacks_example", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "out"
    module.main(["--out", str(out), "--mnist", str(tmp_path), "--epochs", "1", "--top-epochs", "1",
                 "--n-attack", "8", "--steps", "2", "--k", "2"])
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["models"]) == {"topmodel", "mlp", "cnn"}
    for m in metrics["models"].values():
        assert 0 <= m["test_accuracy"] <= 1 and 0 <= m["attack_success"] <= 1 and m["attacked"] == 8
    for name in ("grid_topmodel.png", "grid_mlp.png", "grid_cnn.png", "example.png", "metrics.md"):
        assert (out / name).stat().st_size > 0


def test_attack_stops_moving_an_image_once_it_succeeds():
    model = toy_linear()
    x = torch.tensor([[0.6, 0.5, 0.1], [0.2, 0.9, 0.3]])
    target = torch.tensor([1, 2])
    adv, ok, n = targeted_attack(model, x, target, step=0.1, steps=10)
    # the first image succeeds after one step, -0.1 * sign(softmax - onehot(1)) = (-0.1, +0.1, -0.1), clamped at 0
    assert n.tolist()[0] == 1
    torch.testing.assert_close(adv[0], torch.tensor([0.5, 0.6, 0.0]))


def test_attack_checks_the_target_shape():
    import pytest

    with pytest.raises(ValueError, match="target"):
        targeted_attack(toy_linear(), torch.zeros(2, 3), torch.tensor([1]))


def test_accuracy_over_several_batches():
    model = toy_linear()
    x = torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0], [1.0, 0, 0], [0, 1.0, 0]])
    labels = torch.tensor([0, 1, 2, 1, 1])  # 4 of 5 right
    assert accuracy(model, x, labels, batch_size=2) == 0.8
    assert accuracy(model, x[:0], labels[:0]) == 0.0


def test_train_classifier_seed_and_eval_mode():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 5, generator=g)
    y = (x[:, 0] > 0).long()

    def run(seed):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(5, 8), nn.Dropout(0.0), nn.Linear(8, 2))
        losses = train_classifier(model, x, y, epochs=2, batch_size=16, seed=seed)
        assert not model.training  # left in eval mode
        return losses

    assert run(0) == run(0)
    assert run(0) != run(1)  # the seed draws the batch order


def test_topmodel_features_use_its_settings():
    from gpuph.apps.directional import directional_features

    x = torch.zeros(2, 28, 28)
    x[:, 8:20, 10:18] = 0.7
    x[1, 12:16, 12:16] = 0.45
    model = TopModel(k=2, directions=4, threshold=0.4, alpha=0.3)
    torch.testing.assert_close(model.features(x), directional_features(x, 2, 4, 0.4, 0.3), rtol=0, atol=0)
    assert model.features(x).shape == (2, 4 * 2 * 2 * 2)
