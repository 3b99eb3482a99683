"""The apps' torch files: payloads that ``torch.load(weights_only=True)`` reads back, and one error for files that are
not torch files."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["load_torch_file", "save_torch_file", "unwrap_model", "weights_only_payload"]

_PLAIN = (type(None), bool, int, float, complex, str, bytes)


def weights_only_payload(obj: Any) -> Any:
    """``obj`` with only what ``torch.load(weights_only=True)`` reads back, so that loading never has to unpickle
    arbitrary objects: tensors (detached, on the CPU), numpy arrays and scalars (as tensors and Python numbers;
    arrays of strings or objects, which no tensor holds, as nested lists of their converted items), plain Python
    values, and dicts, lists and tuples of these; anything else (a ``Path``, an ``argparse`` value object, a
    ``TorchVersion``) becomes its ``str``. Dict keys that are not plain values become their ``str`` too."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind not in "biufc":  # strings, objects, dates: no tensor dtype
            return weights_only_payload(obj.tolist())
        return torch.from_numpy(np.array(obj, dtype=obj.dtype.newbyteorder("="), copy=True))
    if isinstance(obj, np.generic):
        return obj.item()
    if type(obj) in _PLAIN:  # exact types: a str subclass such as TorchVersion is not one
        return obj
    if isinstance(obj, dict):
        return {(k if type(k) in _PLAIN else str(k)): weights_only_payload(v) for k, v in obj.items()}
    if type(obj) in (list, tuple, torch.Size):
        return (list if type(obj) is list else tuple)(weights_only_payload(v) for v in obj)
    return str(obj)


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """The model inside a ``DistributedDataParallel`` (or any wrapper holding it as ``.module``), else ``model``:
    its state dict has no ``module.`` prefix."""
    return model.module if hasattr(model, "module") else model


def save_torch_file(payload: Any, path: str | os.PathLike) -> None:
    """``torch.save(weights_only_payload(payload), path)``, creating the folder, through a temporary file renamed
    into place: an interrupted save never leaves a half-written file under ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(weights_only_payload(payload), tmp)
    os.replace(tmp, path)


def load_torch_file(path: str | os.PathLike, what: str, **load_kwargs: Any) -> Any:
    """``torch.load(path, **load_kwargs)``.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a torch file (text, JSON, truncated, ...), naming ``what`` was expected; torch itself raises
            KeyError, an unpickling error, EOFError, OSError or RuntimeError depending on the bytes.
    """
    try:
        return torch.load(path, **load_kwargs)
    except FileNotFoundError:
        raise
    except (pickle.UnpicklingError, EOFError, RuntimeError, ValueError, KeyError, OSError) as err:
        # OSError: a zip archive cut short (torch reads its directory at the end, and seeks past the bytes left)
        raise ValueError(f"gpuph: {path} is not {what} ({type(err).__name__}: {err})") from err
