"""Tiny MNIST folders in the raw idx layout, for the tests of the apps and examples (CI has no MNIST download)."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

SAMPLE = Path(__file__).resolve().parents[1] / "gpuph" / "data" / "mnist_sample.npz"


def sample_digits(n: int = 64) -> np.ndarray:
    """The first ``n`` of the 64 MNIST test digits embedded in gpuph, ``(n, 28, 28)`` uint8."""
    with np.load(SAMPLE) as f:
        return f["images"][:n]


def write_idx(folder: Path, prefix: str, images: np.ndarray, labels: np.ndarray, gz: bool = True) -> None:
    """``<prefix>-images-idx3-ubyte[.gz]`` and ``<prefix>-labels-idx1-ubyte[.gz]`` in ``folder``."""
    opener = gzip.open if gz else open
    ext = ".gz" if gz else ""
    with opener(folder / f"{prefix}-images-idx3-ubyte{ext}", "wb") as f:
        f.write(struct.pack(">IIII", 2051, len(images), 28, 28) + images.astype(np.uint8).tobytes())
    with opener(folder / f"{prefix}-labels-idx1-ubyte{ext}", "wb") as f:
        f.write(struct.pack(">II", 2049, len(labels)) + labels.astype(np.uint8).tobytes())


def write_sample_mnist(folder: Path) -> Path:
    """The 64 embedded test digits (labels ``i % 10``) as the test split, 4 times over as the training split."""
    digits = sample_digits()
    labels = np.arange(64) % 10
    write_idx(folder, "train", np.concatenate([digits] * 4), np.concatenate([labels] * 4))
    write_idx(folder, "t10k", digits, labels)
    return folder


def write_bar_mnist(folder: Path, n_train: int, n_test: int, seed: int = 0, gz: bool = True) -> Path:
    """An easy 10-class set: digit ``c`` (label ``i % 10``) is a vertical bar of height ``4 + 2c`` at a random
    column, so that small models learn it in an epoch."""
    g = np.random.default_rng(seed)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = np.arange(n) % 10
        images = np.zeros((n, 28, 28), np.uint8)
        for i, c in enumerate(labels):
            col = g.integers(4, 20)
            images[i, 4 : 8 + 2 * c, col : col + 3] = 255
        write_idx(folder, prefix, images, labels, gz)
    return folder
