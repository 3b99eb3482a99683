"""Reading the apps' torch files with one error for files that are not torch files."""

from __future__ import annotations

import os
import pickle
from typing import Any

import torch

__all__ = ["load_torch_file"]


def load_torch_file(path: str | os.PathLike, what: str, **load_kwargs: Any) -> Any:
    """``torch.load(path, **load_kwargs)``.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a torch file (text, JSON, truncated, ...), naming ``what`` was expected; torch itself raises
            KeyError, an unpickling error, EOFError or RuntimeError depending on the bytes.
    """
    try:
        return torch.load(path, **load_kwargs)
    except (pickle.UnpicklingError, EOFError, RuntimeError, ValueError, KeyError) as err:
        raise ValueError(f"gpuph: {path} is not {what} ({type(err).__name__}: {err})") from err
