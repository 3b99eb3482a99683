"""argparse ``type=`` converters shared by the command lines (``python -m gpuph``, ``examples/``, ``gpuph.bench``):
a bad value ends in argparse's usage message naming the option, not in a traceback from deep in the run."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

__all__ = ["device", "device_or_auto", "existing_file", "finite_float", "int_at_least", "non_negative_float",
           "non_negative_int", "output_folder", "positive_float", "positive_int"]


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None


def _float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be finite, got {text!r}")
    return value


def _bounded(parse: Callable[[str], float], low: float, strict: bool, name: str, doc: str) -> Callable[[str], Any]:
    """A converter: ``parse(text)``, then ``> low`` (strict) or ``>= low``."""

    def convert(text: str):
        value = parse(text)
        if value < low or (strict and value == low):
            raise argparse.ArgumentTypeError(f"must be {'>' if strict else '>='} {low}, got {value}")
        return value

    convert.__name__, convert.__doc__ = name, doc  # argparse names the type in some messages
    return convert


def int_at_least(low: int) -> Callable[[str], int]:
    """A converter of ints >= ``low`` (e.g. 2 for batch norms or cross-validation folds)."""
    return _bounded(_int, low, False, f"int_at_least_{low}", f"An int >= {low}.")


positive_int = int_at_least(1)
positive_int.__name__, positive_int.__doc__ = "positive_int", "An int >= 1."
non_negative_int = _bounded(_int, 0, False, "non_negative_int", "An int >= 0.")
finite_float = _bounded(_float, -math.inf, False, "finite_float", "A finite float (not nan nor +-inf).")
positive_float = _bounded(_float, 0, True, "positive_float", "A finite float > 0.")
non_negative_float = _bounded(_float, 0, False, "non_negative_float", "A finite float >= 0.")


def device(text: str) -> str:
    """A torch device string that this torch can use (``cpu``, ``cuda``, ``cuda:1``, ...), returned as given."""
    try:
        dev = torch.device(text)
    except RuntimeError:
        raise argparse.ArgumentTypeError(f"not a torch device: {text!r} (cpu, cuda, cuda:1, ...)") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise argparse.ArgumentTypeError(f"{text!r}: this torch has no usable CUDA device")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise argparse.ArgumentTypeError(f"{text!r}: there are {torch.cuda.device_count()} CUDA devices")
    return text


def device_or_auto(text: str) -> str:
    """``auto`` (the caller picks: CUDA when available), or a :func:`device`."""
    return text if text == "auto" else device(text)


def output_folder(text: str) -> Path:
    """A folder to write into, as a ``Path``: absent (it is created later) or a folder, not a file (nor below one)."""
    path = Path(text)
    for p in (path, *path.parents):
        if p.exists():
            if not p.is_dir():
                what = "is a file" if p == path else f"is below the file {str(p)!r}"
                raise argparse.ArgumentTypeError(f"{text!r} {what}, not a folder")
            break
    return path


def existing_file(text: str) -> Path:
    """A file to read, as a ``Path``: it must exist and not be a folder (checked before any work, not when the run
    reaches it)."""
    path = Path(text)
    if not path.exists():
        raise argparse.ArgumentTypeError(f"{text!r}: no such file")
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is a folder, not a file")
    return path
