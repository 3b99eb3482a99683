"""What a result depends on: library versions, the machine, the device; and the default output folder's name."""

from __future__ import annotations

import datetime as _dt
import importlib
import os
import platform
import re
import socket
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

# distribution name -> module to import when the distribution has no metadata (a source checkout)
VERSIONED = {
    "numpy": "numpy",
    "scipy": "scipy",
    "gudhi": "gudhi",
    "cripser": "cripser",
    "torch-topological": "torch_topological",
    "topologylayer": "topologylayer",
    "giotto-ph": "gph",
    "matplotlib": "matplotlib",
    "tqdm": "tqdm",
}
THREAD_VARIABLES = ("OMP_", "MKL_", "GOMP_", "KMP_", "CUDA_")
REPO = Path(__file__).resolve().parents[2]


def version(dist: str, module: str | None = None) -> str | None:
    """Installed version of ``dist`` (from its metadata, else its module's ``__version__``), None if absent."""
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        pass
    try:
        mod = importlib.import_module(module or dist)
    except Exception:  # noqa: BLE001 - a broken install counts as absent
        return None
    return str(getattr(mod, "__version__", "unknown"))


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def slug(text: str) -> str:
    """``"NVIDIA H100 80GB HBM3"`` -> ``"nvidia-h100-80gb-hbm3"``."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "device"


def device_tag(cuda: bool) -> str:
    """``cpu-<n>core``, or the GPU's name as a slug when the run includes CUDA."""
    if cuda:
        return slug(torch.cuda.get_device_name())
    return f"cpu-{usable_cores()}core"


def default_out_dir(cuda: bool, suffix: str = "") -> Path:
    """``bench/results/<device>-<date><suffix>/`` of the repository (the working directory when gpuph is
    installed)."""
    root = REPO if (REPO / "bench").is_dir() else Path.cwd()
    return root / "bench" / "results" / f"{device_tag(cuda)}-{_dt.date.today().isoformat()}{suffix}"


def _git() -> dict[str, Any]:
    def git(*args: str) -> str | None:
        try:
            res = subprocess.run(["git", "-C", str(REPO), *args], check=False, capture_output=True, text=True,
                                 timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return res.stdout.strip() if res.returncode == 0 else None

    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": git("rev-parse", "HEAD"), "dirty": bool(status) if status is not None else None}


def collect(cuda: bool) -> dict[str, Any]:
    """The ``meta`` object of ``results.json`` (without the run's own settings, which the suite adds)."""
    import gpuph

    versions = {"python": platform.python_version(), "torch": torch.__version__, "gpuph": gpuph.__version__}
    versions.update({dist: version(dist, mod) for dist, mod in VERSIONED.items()})
    meta: dict[str, Any] = {
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "versions": versions,
        "cuda": torch.version.cuda,
        "gpu": torch.cuda.get_device_name() if cuda else None,
        "machine": {
            "cpu": cpu_model(),
            "cpu_count": usable_cores(),
            "logical_cpus": os.cpu_count(),
            "platform": platform.platform(),
            "hostname": socket.gethostname(),
        },
        "torch_threads": torch.get_num_threads(),
        "gpuph_git": _git(),
        # thread settings change CPU timings a lot on a loaded machine (OpenMP threads spin while they wait)
        "env": {k: v for k, v in sorted(os.environ.items()) if k.startswith(THREAD_VARIABLES)},
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
    if cuda:
        props = torch.cuda.get_device_properties(torch.cuda.current_device())
        meta["gpu_memory_gib"] = round(props.total_memory / 2**30, 1)
        meta["cudnn"] = torch.backends.cudnn.version()
    return meta
