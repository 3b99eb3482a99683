"""Reader of MNIST's raw idx files (``train-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, ... gzip or not).

The files are looked for in a folder given by the caller, else in ``$GPUPH_MNIST_DIR``, else in
``../shared/data/mnist`` relative to the project root; a folder in torchvision's layout (``MNIST/raw/``) works too.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path

import numpy as np

__all__ = ["default_mnist_dir", "find_mnist_dir", "load_mnist", "missing_files", "read_idx"]

# idx magic numbers: 0x08 = unsigned byte, then the number of dimensions.
_IMAGES_MAGIC = 2051
_LABELS_MAGIC = 2049
_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
          "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def default_mnist_dir() -> Path:
    """``$GPUPH_MNIST_DIR`` when set, else ``<project root>/../shared/data/mnist`` (the path may not exist)."""
    env = os.environ.get("GPUPH_MNIST_DIR")
    return Path(env) if env else PROJECT_ROOT.parent / "shared" / "data" / "mnist"


def _candidates(directory: Path) -> list[Path]:
    return [directory, directory / "MNIST" / "raw", directory / "raw"]


def find_mnist_dir(directory: str | os.PathLike | None = None) -> Path | None:
    """The folder holding MNIST's idx files (``directory``, or the default), or ``None`` when there is none."""
    base = Path(directory) if directory is not None else default_mnist_dir()
    for d in _candidates(base):
        if _present(d, _FILES["test"][0]) or _present(d, _FILES["train"][0]):
            return d
    return None


def _present(directory: Path, name: str) -> bool:
    """Whether the idx file ``name`` is in ``directory``, plain or gzipped."""
    return any((directory / (name + ext)).exists() for ext in ("", ".gz"))


def missing_files(directory: str | os.PathLike, splits: tuple[str, ...] = ("train", "test")) -> list[str]:
    """The idx files of ``splits`` that the folder ``directory`` (as :func:`find_mnist_dir` returns it) lacks, in
    neither plain nor gzip form: ``[]`` when every split can be loaded."""
    return [name for split in splits for name in _FILES[split] if not _present(Path(directory), name)]


def _open(path: Path):
    for candidate in (path, path.with_name(path.name + ".gz")):
        if candidate.exists():
            return gzip.open(candidate, "rb") if candidate.suffix == ".gz" else open(candidate, "rb")
    raise FileNotFoundError(f"gpuph: neither {path} nor {path}.gz exists")


def read_idx(path: str | os.PathLike, limit: int | None = None) -> np.ndarray:
    """One idx file of unsigned bytes (MNIST's images or labels) as a uint8 array.

    Args:
        path: the file, with or without its ``.gz`` suffix (the gzip file is used when the plain one is missing).
        limit: read only the first ``limit`` records.

    Returns:
        ``(N, rows, cols)`` for an image file (magic 2051), ``(N,)`` for a label file (magic 2049).

    Raises:
        FileNotFoundError: no such file. ValueError: not an idx file of unsigned bytes, or a truncated one.
    """
    path = Path(path)
    if path.suffix == ".gz":
        path = path.with_suffix("")
    if limit is not None and (isinstance(limit, bool) or int(limit) != limit or limit < 0):
        raise ValueError(f"gpuph: limit must be an integer >= 0, got {limit!r}")
    try:
        with _open(path) as f:
            head = f.read(8)
            if len(head) < 8:
                raise ValueError(f"gpuph: {path} is too short to be an idx file")
            magic, count = struct.unpack(">II", head)
            if magic == _IMAGES_MAGIC:
                dims = f.read(8)
                if len(dims) < 8:
                    raise ValueError(f"gpuph: {path} is truncated in its header")
                shape = struct.unpack(">II", dims)
            elif magic == _LABELS_MAGIC:
                shape = ()
            else:
                raise ValueError(f"gpuph: {path} has magic number {magic}, not an MNIST idx file (2051 or 2049)")
            n = count if limit is None else min(int(limit), count)
            size = n * int(np.prod(shape, dtype=np.int64))
            data = f.read(size)
    except FileNotFoundError:
        raise
    except (EOFError, OSError, zlib.error) as e:  # a cut or corrupt .gz (gzip.BadGzipFile is an OSError)
        raise ValueError(f"gpuph: {path} (or its .gz) cannot be read: {e}") from e
    if len(data) != size:
        raise ValueError(f"gpuph: {path} is truncated ({len(data)} of {size} bytes)")
    return np.frombuffer(data, dtype=np.uint8).reshape((n, *shape))


def load_mnist(directory: str | os.PathLike | None = None, split: str = "train",
               limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """MNIST's images and labels of one split.

    Args:
        directory: folder with the raw idx files (or torchvision's root holding ``MNIST/raw/``); default
            :func:`default_mnist_dir`.
        split: ``"train"`` (60,000 digits) or ``"test"`` (10,000).
        limit: keep only the first ``limit`` digits.

    Returns:
        ``(images, labels)``: uint8 arrays of shapes ``(N, 28, 28)`` (values 0..255) and ``(N,)`` (0..9).

    Raises:
        ValueError: an unknown split or a malformed file. FileNotFoundError: no MNIST files in the folder.
    """
    if split not in _FILES:
        raise ValueError(f"gpuph: split must be 'train' or 'test', got {split!r}")
    found = find_mnist_dir(directory)
    if found is None:
        where = directory if directory is not None else default_mnist_dir()
        raise FileNotFoundError(
            f"gpuph: no MNIST idx files in {where} (expected {_FILES[split][0]}[.gz]; set $GPUPH_MNIST_DIR or pass "
            "the folder)"
        )
    img_name, lab_name = _FILES[split]
    images = read_idx(found / img_name, limit)
    labels = read_idx(found / lab_name, limit)
    if images.shape[1:] != (28, 28) or labels.ndim != 1:
        raise ValueError(f"gpuph: {found} holds images of shape {images.shape[1:]} and labels of shape "
                         f"{labels.shape[1:]}, not MNIST's 28x28 digits and scalar labels (files swapped?)")
    if len(images) != len(labels):
        raise ValueError(f"gpuph: {len(images)} images but {len(labels)} labels in {found}")
    return images, labels
