"""Shared helpers for the benchmarks: timing, machine and version info, result files (JSON, markdown, plot)."""

from __future__ import annotations

import datetime as _dt
import gc
import importlib
import json
import math
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


def import_gpuph():
    """``import gpuph``, falling back to the working tree this script lives in when gpuph is not installed."""
    try:
        return importlib.import_module("gpuph")
    except ImportError:
        sys.path.insert(0, str(ROOT))
        return importlib.import_module("gpuph")


# -------------------------------------------------------------------------------------------------- timing
def time_once(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Milliseconds of one call of ``fn`` (garbage collector paused, as ``timeit`` does) and its result."""
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        t0 = time.perf_counter_ns()
        out = fn()
        t1 = time.perf_counter_ns()
    finally:
        if gc_was_enabled:
            gc.enable()
    return (t1 - t0) / 1e6, out


def measure(
    fn: Callable[[], Any], max_repeats: int, min_repeats: int = 2, budget_s: float = 10.0
) -> tuple[list[float], Any]:
    """Time ``fn``: one untimed warm-up call (whose result is returned, for correctness checks), then repeats.

    The number of timed repeats is ``max_repeats`` unless that would take longer than ``budget_s`` judging by the
    warm-up; slow libraries then get fewer, but never fewer than ``min_repeats``. Returns the times in ms.
    """
    gc.collect()
    warm_ms, out = time_once(fn)
    fits = int(budget_s * 1e3 / max(warm_ms, 1e-3))
    repeats = max(min_repeats, min(max_repeats, fits))
    times = []
    for _ in range(repeats):
        gc.collect()
        ms, _ = time_once(fn)
        times.append(ms)
    return times, out


def summarize(times: list[float]) -> dict[str, float | int]:
    return {
        "median_ms": round(statistics.median(times), 4),
        "min_ms": round(min(times), 4),
        "max_ms": round(max(times), 4),
        "repeats": len(times),
    }


# -------------------------------------------------------------------------------------------------- machine info
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


def module_version(name: str) -> str | None:
    try:
        mod = importlib.import_module(name)
    except ImportError:
        return None
    version = getattr(mod, "__version__", None)
    if version is None:
        try:
            from importlib.metadata import version as dist_version

            version = dist_version(name)
        except Exception:  # noqa: BLE001 - metadata lookups fail in many harmless ways
            version = "unknown"
    return str(version)


def git_commit() -> dict[str, Any]:
    def git(*args: str) -> str | None:
        try:
            res = subprocess.run(["git", "-C", str(ROOT), *args], check=False, capture_output=True, text=True,
                                 timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return res.stdout.strip() if res.returncode == 0 else None

    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": git("rev-parse", "HEAD"), "dirty": bool(status) if status is not None else None}


def host_tag() -> str:
    """``ci`` on CI (the ``CI`` environment variable is set), else the hostname made file-name safe."""
    if os.environ.get("CI"):
        return "ci"
    return re.sub(r"[^A-Za-z0-9._-]+", "-", socket.gethostname()) or "host"


def machine_meta(extra_modules: tuple[str, ...] = ()) -> dict[str, Any]:
    import numpy as np
    import torch

    gpuph = import_gpuph()
    meta = {
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": {
            "cpu": cpu_model(),
            "cores": usable_cores(),
            "logical_cpus": os.cpu_count(),
            "platform": platform.platform(),
            "hostname": socket.gethostname(),
        },
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "numpy": np.__version__,
        "gpuph": {"version": getattr(gpuph, "__version__", None), **git_commit()},
        # thread settings change the numbers a lot on a loaded machine (OpenMP threads spin while waiting)
        "env": {k: os.environ[k] for k in sorted(os.environ) if k.startswith(("OMP_", "MKL_", "GOMP_", "KMP_"))},
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
    for name in extra_modules:
        meta[name.replace("-", "_")] = module_version(name)
    return meta


def default_out_dir(prefix: str) -> Path:
    return RESULTS / f"{prefix}-{host_tag()}-{_dt.date.today().isoformat()}"


# -------------------------------------------------------------------------------------------------- results
def write_json(path: Path, obj: Any) -> None:
    def clean(v):  # JSON has no inf/nan
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        return v

    path.write_text(json.dumps(clean(obj), indent=2) + "\n")


def fmt_ms(ms: float | None) -> str:
    if ms is None:
        return "-"
    if ms >= 1000:
        return f"{ms / 1000:.2f} s"
    if ms >= 100:
        return f"{ms:.0f}"
    if ms >= 10:
        return f"{ms:.1f}"
    return f"{ms:.2f}"


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def plot_times(path: Path, series: dict[str, list[tuple[int, float, str, int]]], title: str) -> bool:
    """Log-log plots of median time against pixels in the batch, one panel per grid dimension (2D, 3D).

    ``series[label] = [(pixels, ms, field, ndim), ...]``; one colour per label, one line style per field.
    Returns False when matplotlib is missing.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    styles = {"noise": ("-", "o"), "smooth": ("--", "s")}
    ndims = sorted({pt[3] for pts in series.values() for pt in pts}) or [2]
    fig, axes = plt.subplots(1, len(ndims), figsize=(6.5 * len(ndims), 5.5), squeeze=False)
    colors = {label: f"C{i % 10}" for i, label in enumerate(sorted(series))}
    for ax, nd in zip(axes[0], ndims):
        for label, pts in sorted(series.items()):
            for field in sorted({f for _, _, f, d in pts if d == nd}):
                xy = sorted((p, t) for p, t, f, d in pts if f == field and d == nd)
                ls, marker = styles.get(field, (":", "^"))
                ax.plot([p for p, _ in xy], [t for _, t in xy], ls, marker=marker, color=colors[label],
                        label=f"{label} ({field})")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("pixels in the batch")
        ax.set_ylabel("median time (ms)")
        ax.set_title(f"{title}: {nd}D grids")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True
