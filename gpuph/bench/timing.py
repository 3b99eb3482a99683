"""Timing: warm-up, then repeats adapted to the call's duration; CUDA events on the GPU, a wall clock on the CPU."""

from __future__ import annotations

import contextlib
import gc
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch


class Deadline:
    """A run's time limit: once ``limit_s`` seconds have passed since it was made, the run starts no new rows (or only
    those it cannot do without) and writes what it has. For machines lent by the call, where a command past its limit
    is killed and loses whatever it had not written. ``None``: no limit."""

    def __init__(self, limit_s: float | None = None):
        if limit_s is not None and limit_s <= 0:
            raise ValueError("the time limit must be positive")
        self.limit_s, self.start = limit_s, time.monotonic()

    def passed(self) -> bool:
        return self.limit_s is not None and time.monotonic() - self.start > self.limit_s

    PREFIX = "not run: the run's time limit"  # how the notes of the rows it stopped begin

    @property
    def note(self) -> str:
        return f"{self.PREFIX} of {self.limit_s:g} s was reached"


@dataclass
class Budget:
    """How long to time one cell (one library, case, field and mode).

    ``max_repeats`` timed calls after the warm-up, fewer when they would not fit in ``budget_s`` seconds judging by
    the warm-up, but never fewer than ``min_repeats``; when the warm-up call alone took longer than ``cap_s`` it is
    the only measurement (a library that slow gets no repeats).
    """

    max_repeats: int = 15
    min_repeats: int = 3
    budget_s: float = 10.0
    cap_s: float = 10.0
    warmup: int = 1  # CPU warm-up calls
    cuda_warmup: int = 3  # CUDA: the first calls also grow the caching allocator and load kernels

    def __post_init__(self):
        if self.max_repeats < 1 or self.min_repeats < 1:
            raise ValueError("repeats must be at least 1")
        self.min_repeats = min(self.min_repeats, self.max_repeats)

    def repeats_for(self, call_s: float) -> int:
        fits = int(self.budget_s / max(call_s, 1e-6))
        return max(self.min_repeats, min(self.max_repeats, fits))


@dataclass
class Measurement:
    times_ms: list[float]
    output: Any  # the first warm-up call's result (for the correctness check)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, float | int]:
        t = self.times_ms
        return {
            "median_ms": float(f"{statistics.median(t):.5g}"),
            "min_ms": float(f"{min(t):.5g}"),
            "max_ms": float(f"{max(t):.5g}"),
            "repeats": len(t),
        }


@contextlib.contextmanager
def _gc_paused():
    """The garbage collector off for the duration (as ``timeit`` does): a collection is not the library's time."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _cpu_call_ms(fn: Callable[[], Any]) -> tuple[float, Any]:
    """One call on the wall clock."""
    with _gc_paused():
        t0 = time.perf_counter_ns()
        out = fn()
        t1 = time.perf_counter_ns()
    return (t1 - t0) / 1e6, out


def _cuda_call_ms(fn: Callable[[], Any]) -> tuple[float, Any]:
    """One call between two CUDA events on the current stream, after the device has drained its queue."""
    torch.cuda.synchronize()
    start = torch.cuda.Event(enable_timing=True)
    end = torch.cuda.Event(enable_timing=True)
    with _gc_paused():
        start.record()
        out = fn()
        end.record()
        end.synchronize()
    return float(start.elapsed_time(end)), out


def measure(fn: Callable[[], Any], budget: Budget, cuda: bool = False) -> Measurement:
    """Warm up ``fn``, then time it (see :class:`Budget`). Returns the times of the timed calls in ms."""
    call = _cuda_call_ms if cuda else _cpu_call_ms
    n_warm = max(1, budget.cuda_warmup if cuda else budget.warmup)
    warm_ms, first = call(fn)
    for _ in range(n_warm - 1):
        warm_ms, _ = call(fn)
    if warm_ms / 1e3 > budget.cap_s:
        return Measurement([warm_ms], first, [f"one call only: the warm-up took {warm_ms / 1e3:.1f} s > cap "
                                              f"{budget.cap_s:g} s"])
    times = [call(fn)[0] for _ in range(budget.repeats_for(warm_ms / 1e3))]
    return Measurement(times, first)
