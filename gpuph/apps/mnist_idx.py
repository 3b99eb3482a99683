"""A small reader for MNIST's raw idx files (``train-images-idx3-ubyte[.gz]`` and friends)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch

__all__ = ["load_mnist", "read_idx"]

SPLITS = {"train": "train", "test": "t10k"}


def read_idx(path: str | Path) -> np.ndarray:
    """The array stored in one idx file (gzip or not): ``uint8`` data of the shape in its header.

    Raises:
        FileNotFoundError: neither ``path`` nor ``path.gz`` exists.
        ValueError: the header is not an unsigned-byte idx header, or the data is shorter than the header says.
    """
    path = Path(path)
    if not path.exists() and Path(str(path) + ".gz").exists():
        path = Path(str(path) + ".gz")
    if not path.exists():
        raise FileNotFoundError(f"gpuph: no idx file {path} (nor {path}.gz)")
    with (gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")) as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError(f"gpuph: {path} is not an idx file of unsigned bytes")
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    offset = 4 + 4 * ndim
    count = int(np.prod(shape)) if shape else 1
    if len(raw) - offset < count:
        raise ValueError(f"gpuph: {path} holds {len(raw) - offset} bytes of data, its header says {count}")
    return np.frombuffer(raw, dtype=np.uint8, count=count, offset=offset).reshape(shape)


def load_mnist(directory: str | Path, split: str = "train", n: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """MNIST images ``(N, 28, 28)`` float32 in [0, 1] and labels ``(N,)`` int64 of one split (``"train"`` or
    ``"test"``), the first ``n`` if given."""
    if split not in SPLITS:
        raise ValueError(f"gpuph: split must be 'train' or 'test', got {split!r}")
    directory = Path(directory)
    images = read_idx(directory / f"{SPLITS[split]}-images-idx3-ubyte")
    labels = read_idx(directory / f"{SPLITS[split]}-labels-idx1-ubyte")
    if n is not None:
        images, labels = images[:n], labels[:n]
    return torch.from_numpy(images.astype(np.float32) / 255.0), torch.from_numpy(labels.astype(np.int64))
