"""TopModel (a classifier on directional-sweep persistence features), an MLP and a CNN, and the targeted iterative
gradient attack (Goodfellow et al.'s fast gradient sign method, iterated towards a chosen class) of the TopologyLayer
paper's Figures 15-16.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .directional import directional_features

__all__ = ["CNN", "MLP", "TopModel", "accuracy", "random_targets", "targeted_attack", "train_classifier"]


class TopModel(nn.Module):
    """A small MLP on :func:`~gpuph.apps.directional.directional_features` of the image.

    ``forward`` takes images ``(B, 28, 28)`` or ``(B, 1, 28, 28)`` and returns logits ``(B, classes)``, differentiable
    in the image (see :mod:`gpuph.apps.directional` for what that gradient sees); ``head`` alone maps precomputed
    features (so training can compute the features of the training set once).
    """

    def __init__(self, k: int = 3, directions: int = 8, threshold: float = 0.5, alpha: float = 0.1,
                 hidden: int = 128, classes: int = 10) -> None:
        super().__init__()
        self.k, self.directions, self.threshold, self.alpha = k, directions, threshold, alpha
        n_features = directions * 2 * k * 2
        self.head = nn.Sequential(nn.Linear(n_features, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                  nn.Linear(hidden, classes))

    def features(self, x: Tensor) -> Tensor:
        """``(B, directions * 2 * k * 2)`` features of images ``x``."""
        return directional_features(x, self.k, self.directions, self.threshold, self.alpha)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


class MLP(nn.Module):
    """A two-hidden-layer perceptron on the raw pixels: ``(B, [1,] H, W) -> (B, classes)``."""

    def __init__(self, pixels: int = 784, hidden: int = 256, classes: int = 10) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(pixels, hidden), nn.ReLU(), nn.Linear(hidden, hidden),
                                 nn.ReLU(), nn.Linear(hidden, classes))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class CNN(nn.Module):
    """Two 3x3 convolutions with max pooling and a linear head: ``(B, [1,] 28, 28) -> (B, classes)``."""

    def __init__(self, width: int = 16, classes: int = 10) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(2 * width * 7 * 7, 128), nn.ReLU(), nn.Linear(128, classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 3:
            x = x[:, None]
        return self.net(x)


def train_classifier(model: nn.Module, inputs: Tensor, labels: Tensor, epochs: int = 3, batch_size: int = 128,
                     lr: float = 1e-3, seed: int = 0, progress: Callable[[int], object] | None = None) -> list[float]:
    """Train ``model`` (its ``forward`` on ``inputs``) with Adam and cross-entropy; returns the loss of each batch.

    For a :class:`TopModel`, pass ``model.head`` and precomputed features as ``inputs``.
    """
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(inputs), generator=g).to(inputs.device)
        for start in range(0, len(inputs), batch_size):
            idx = order[start : start + batch_size]
            loss = F.cross_entropy(model(inputs[idx]), labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
            if progress is not None:
                progress(1)
    model.eval()
    return losses


@torch.no_grad()
def accuracy(model: nn.Module, inputs: Tensor, labels: Tensor, batch_size: int = 512) -> float:
    """Fraction of ``inputs`` that ``model`` classifies as ``labels``."""
    correct = 0
    for start in range(0, len(inputs), batch_size):
        pred = model(inputs[start : start + batch_size]).argmax(1)
        correct += int((pred == labels[start : start + batch_size]).sum())
    return correct / max(len(inputs), 1)


def random_targets(labels: Tensor, classes: int = 10, seed: int = 0) -> Tensor:
    """A uniformly random class other than each label."""
    g = torch.Generator().manual_seed(seed)
    shift = torch.randint(1, classes, labels.shape, generator=g).to(labels.device)
    return (labels + shift) % classes


def targeted_attack(model: nn.Module, x: Tensor, target: Tensor, step: float = 0.01, steps: int = 100,
                    clamp: tuple[float, float] = (0.0, 1.0)) -> tuple[Tensor, Tensor, Tensor]:
    """Iterative targeted fast gradient sign attack: ``x <- clip(x - step * sign(grad_x CE(model(x), target)))``
    until ``model`` predicts ``target`` (each image stops at its first success) or ``steps`` steps have passed.

    Args:
        model: classifier returning logits.
        x: images (any shape ``model`` takes, batch first), not modified.
        target: ``(B,)`` int64 target classes.
        step: the L-infinity size of one step.
        steps: the most steps.
        clamp: the valid pixel range.

    Returns:
        ``(x_adv, success, n_steps)``: the attacked images, a ``(B,)`` bool tensor (predicted as ``target`` at the
        end) and ``(B,)`` int64 number of steps taken (``steps`` for failures).
    """
    if target.shape != x.shape[:1]:
        raise ValueError(f"gpuph: target must have shape ({x.shape[0]},), got {tuple(target.shape)}")
    model.eval()
    x_adv = x.detach().clone()
    n_steps = torch.full_like(target, steps)
    success = torch.zeros_like(target, dtype=torch.bool)
    for t in range(steps + 1):
        x_adv.requires_grad_(True)
        logits = model(x_adv)
        done = logits.argmax(1) == target
        newly = done & ~success
        n_steps[newly] = t
        success |= done
        if bool(success.all()) or t == steps:
            break
        grad = torch.autograd.grad(F.cross_entropy(logits, target, reduction="sum"), x_adv)[0]
        with torch.no_grad():
            move = (~success).to(x.dtype).reshape(-1, *([1] * (x.dim() - 1)))
            x_adv = (x_adv - step * grad.sign() * move).clamp(*clamp)
    return x_adv.detach(), success, n_steps
