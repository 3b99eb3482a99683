"""The CUDA issue's speed goals (issue 3: gpuph on an H100, forward, all dimensions, float32, V construction) and how
a suite run's rows meet them: ``results.json``'s ``goals`` and ``results.md``'s "Goals" section.

``python -m gpuph.bench --goals`` runs these cases, gpuph alone, forward, V, both fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .libraries import FORWARD


@dataclass(frozen=True)
class Goal:
    case: str  # a Case's name, e.g. "64x32x32x32"
    field: str | None  # "noise" / "smooth"; None: every field run
    goal_ms: float


GOALS: tuple[Goal, ...] = (
    Goal("256x28x28", None, 0.3),
    Goal("64x256x256", "smooth", 3.0),
    Goal("1x1024x1024", "noise", 10.0),
    Goal("64x32x32x32", None, 5.0),
    Goal("1x128x128x128", "noise", 100.0),
    Goal("1x256x256x256", "smooth", 300.0),
)


def goal_cases() -> list[str]:
    """The cases that ``--goals`` runs (each in both fields)."""
    return list(dict.fromkeys(g.case for g in GOALS))


def check_goals(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per measured gpuph-cuda forward V row that a goal names: ``case``, ``field``, ``device``,
    ``goal_ms``, ``median_ms``, ``met`` and ``times_goal`` (median / goal: above 1 misses by that factor). Empty where
    the run has no such row (no GPU)."""
    out = []
    for r in rows:
        if (r["library"], r["mode"], r["construction"]) != ("gpuph-cuda", FORWARD, "V") or r["median_ms"] is None:
            continue
        for g in GOALS:
            if g.case == r["case"] and g.field in (None, r["field"]):
                out.append({"case": r["case"], "field": r["field"], "device": r["device"], "goal_ms": g.goal_ms,
                            "median_ms": r["median_ms"], "met": r["median_ms"] <= g.goal_ms,
                            "times_goal": float(f"{r['median_ms'] / g.goal_ms:.3g}")})
    return out
