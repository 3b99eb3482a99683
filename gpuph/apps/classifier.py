"""A small MNIST CNN that gpuph trains itself, for Inception-style scores of generated digits.

``python -m gpuph.apps.classifier --epochs 3 --seed 0 --export gpuph/data/mnist_classifier.pt`` trains it on MNIST's
training split, reports its test accuracy and writes the embedded file (float16 weights, about 0.2 MB).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .checkpoints import load_torch_file, save_torch_file
from .gan import plain_metadata

__all__ = ["MnistClassifier", "PRETRAINED_CLASSIFIER", "accuracy", "load_classifier", "load_pretrained_classifier",
           "predict_proba", "save_classifier", "train_classifier"]

PRETRAINED_CLASSIFIER = Path(__file__).resolve().parents[1] / "data" / "mnist_classifier.pt"
CLASSIFIER_FORMAT = "gpuph-mnist-classifier"
_MEAN, _STD = 0.1307, 0.3081  # MNIST's training-set pixel mean and standard deviation (in [0, 1] units)


class MnistClassifier(nn.Module):
    """Two 3x3 convolutions (16 and 32 channels, ReLU, 2x2 max pooling) and two linear layers (64 hidden units).

    Input: ``(B, 1, 28, 28)`` images in ``[0, 1]`` (normalised inside); output: ``(B, 10)`` logits.
    """

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(32 * 7 * 7, 64), nn.ReLU(inplace=True), nn.Dropout(0.25),
                                  nn.Linear(64, 10))

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or tuple(x.shape[1:]) != (1, 28, 28):
            raise ValueError(f"gpuph: the classifier expects images of shape (B, 1, 28, 28), got {tuple(x.shape)}")
        return self.head(self.features((x - _MEAN) / _STD))


def _as_images(x: Tensor | np.ndarray) -> Tensor:
    """uint8 (0..255) or floating ([0, 1]) ``(N, 28, 28)`` / ``(N, 1, 28, 28)`` -> float32 ``(N, 1, 28, 28)``."""
    x = torch.as_tensor(x)
    x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
    return x.unsqueeze(1) if x.dim() == 3 else x


@torch.no_grad()
def predict_proba(model: nn.Module, images: Tensor | np.ndarray, batch_size: int = 1000) -> Tensor:
    """``(N, 10)`` class probabilities (softmax of the logits) of ``images`` in eval mode, on the model's device."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    x = _as_images(images)
    try:
        out = [F.softmax(model(x[i:i + batch_size].to(device)), dim=1) for i in range(0, len(x), batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(out) if out else torch.zeros(0, 10, device=device)


def accuracy(model: nn.Module, images: Tensor | np.ndarray, labels: Tensor | np.ndarray) -> float:
    """Fraction of ``images`` whose most probable class is ``labels``."""
    pred = predict_proba(model, images).argmax(1).cpu()
    return float((pred == torch.as_tensor(labels).long().cpu()).float().mean())


def train_classifier(
    images: Tensor | np.ndarray,
    labels: Tensor | np.ndarray,
    epochs: int = 3,
    batch_size: int = 128,
    lr: float = 1e-3,
    seed: int = 0,
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> MnistClassifier:
    """Trains a :class:`MnistClassifier` with Adam and cross-entropy, one-cycle learning-rate schedule.

    Args:
        images: ``(N, 28, 28)`` uint8 or floats in ``[0, 1]``; labels: ``(N,)`` ints 0..9.

    Raises:
        ValueError: different numbers of images and labels, ``epochs < 1``, or fewer images than one batch (the last
            partial batch of an epoch is dropped).
    """
    torch.manual_seed(seed)
    x, y = _as_images(images), torch.as_tensor(labels).long()
    if len(x) != len(y):
        raise ValueError(f"gpuph: {len(x)} images but {len(y)} labels")
    if isinstance(epochs, bool) or int(epochs) != epochs or epochs < 1:
        raise ValueError(f"gpuph: epochs must be an integer >= 1, got {epochs!r}")
    if isinstance(batch_size, bool) or int(batch_size) != batch_size or not 1 <= batch_size <= len(x):
        raise ValueError(f"gpuph: batch_size must be an integer in 1..{len(x)} (the number of images), "
                         f"got {batch_size!r}")
    model = MnistClassifier().to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    steps_per_epoch = len(x) // batch_size
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps_per_epoch)
    g = torch.Generator().manual_seed(seed)
    try:
        from tqdm.auto import tqdm
    except ImportError:
        tqdm = None
    model.train()
    for epoch in range(epochs):
        perm = torch.randperm(len(x), generator=g)
        batches = range(steps_per_epoch)
        if tqdm is not None:
            batches = tqdm(batches, desc=f"classifier epoch {epoch + 1}/{epochs}", disable=not progress,
                           mininterval=1.0, dynamic_ncols=True)
        for i in batches:
            idx = perm[i * batch_size:(i + 1) * batch_size]
            loss = F.cross_entropy(model(x[idx].to(device)), y[idx].to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    return model.eval()


def save_classifier(path: str | os.PathLike, model: nn.Module, extra: dict[str, Any] | None = None,
                    half: bool = True) -> None:
    """Writes the weights (float16 when ``half``) and ``extra`` metadata; :func:`load_classifier` reads them."""
    state = {k: (v.detach().cpu().half() if half and v.is_floating_point() else v.detach().cpu())
             for k, v in model.state_dict().items()}
    save_torch_file({"format": CLASSIFIER_FORMAT, "version": 1, "state": state, "extra": plain_metadata(extra)}, path)


def load_classifier(path: str | os.PathLike, device: torch.device | str = "cpu") -> tuple[MnistClassifier, dict]:
    """The classifier (float32, eval mode, on ``device``) and its metadata.

    Raises:
        FileNotFoundError: no such file. ValueError: the file is not a gpuph MNIST classifier.
    """
    payload = load_torch_file(path, "a gpuph MNIST classifier", map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != CLASSIFIER_FORMAT:
        raise ValueError(f"gpuph: {path} is not a gpuph MNIST classifier (written by save_classifier)")
    model = MnistClassifier()
    try:  # the format tag is right but the contents may not be: a damaged or hand-edited file
        model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in payload["state"].items()})
    except (KeyError, TypeError, AttributeError, RuntimeError) as err:
        raise ValueError(f"gpuph: {path} is a damaged gpuph MNIST classifier ({type(err).__name__}: {err})") from err
    return model.to(device).eval(), payload.get("extra", {})


def load_pretrained_classifier(device: torch.device | str = "cpu") -> tuple[MnistClassifier, dict]:
    """The classifier embedded in the package (``gpuph/data/mnist_classifier.pt``) and its metadata (among them its
    ``test_accuracy`` on MNIST's 10,000 test digits)."""
    if not PRETRAINED_CLASSIFIER.exists():
        raise FileNotFoundError(f"gpuph: the embedded classifier {PRETRAINED_CLASSIFIER} is missing")
    return load_classifier(PRETRAINED_CLASSIFIER, device)


def main(argv: list[str] | None = None) -> int:
    from . import cli_args
    from .mnist import find_mnist_dir, load_mnist, missing_files

    p = argparse.ArgumentParser(prog="python -m gpuph.apps.classifier", description=__doc__.split("\n\n")[0])
    p.add_argument("--mnist-dir", default=None, help="folder with MNIST's raw idx files (default: $GPUPH_MNIST_DIR "
                   "or ../shared/data/mnist)")
    p.add_argument("--epochs", type=cli_args.positive_int, default=3)
    p.add_argument("--batch-size", type=cli_args.positive_int, default=128)
    p.add_argument("--lr", type=cli_args.positive_float, default=3e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", type=cli_args.device, default="cpu")
    p.add_argument("--export", default=None, help="write the trained classifier here (float16 weights)")
    argv = sys.argv[1:] if argv is None else list(argv)
    args = p.parse_args(argv)
    found = find_mnist_dir(args.mnist_dir)
    if found is None:
        p.error(f"--mnist-dir {args.mnist_dir or '(default)'}: no MNIST idx files found")
    missing = missing_files(found)
    if missing:  # it trains on one split and tests on the other
        p.error(f"--mnist-dir {args.mnist_dir or '(default)'}: {', '.join(missing)} missing in {found}")
    x_train, y_train = load_mnist(args.mnist_dir, "train")
    x_test, y_test = load_mnist(args.mnist_dir, "test")
    t0 = time.perf_counter()
    model = train_classifier(x_train, y_train, args.epochs, args.batch_size, args.lr, args.seed, args.device)
    seconds = time.perf_counter() - t0
    acc = accuracy(model, x_test, y_test)
    print(f"test accuracy {acc:.4f} on {len(x_test)} digits after {args.epochs} epochs ({seconds:.0f} s)")
    if args.export:
        half_model = MnistClassifier()
        half_model.load_state_dict({k: v.half().float() if v.is_floating_point() else v
                                    for k, v in model.state_dict().items()})
        acc16 = accuracy(half_model.to(args.device), x_test, y_test)
        save_classifier(args.export, model, extra={
            "test_accuracy": round(acc16, 4), "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr,
            "seed": args.seed, "train_seconds": round(seconds, 1), "torch": torch.__version__,
            "command": "python -m gpuph.apps.classifier " + " ".join(argv),
        })
        print(f"wrote {args.export} ({os.path.getsize(args.export) / 1e3:.0f} kB; test accuracy with float16 "
              f"weights {acc16:.4f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
