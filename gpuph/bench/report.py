"""The result files: ``results.json`` and ``results.md`` (summary tables per mode, then every row)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from .goals import check_goals
from .libraries import BACKWARD, FORWARD
from .timing import Deadline

# Said near the top of a results.md written while its run was still going (meta.complete false).
INCOMPLETE = "**Incomplete**: written during the run, which had not finished (or was stopped)."


def write_json(path: Path, obj: Any) -> Path:
    def clean(v):  # JSON has no inf/nan
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        return v

    path.write_text(json.dumps(clean(obj), indent=1) + "\n")
    return path


def fmt_ms(ms: float | None) -> str:
    if ms is None:
        return "-"
    if ms >= 1000:
        return f"{ms / 1000:.2f} s"
    if ms >= 100:
        return f"{ms:.0f}"
    if ms >= 10:
        return f"{ms:.1f}"
    if ms >= 0.1:
        return f"{ms:.2f}"
    return f"{ms:.3f}"


def fmt_agrees(a: bool | None) -> str:
    return {True: "yes", False: "NO", None: "-"}[a]


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(" ".join(c.replace("|", "/").split()) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def column(r: dict[str, Any]) -> str:
    """A library's column in the summaries: its label, plus the device for gpuph on a GPU."""
    return r["label"]


def summary(rows: list[dict[str, Any]], mode: str) -> str | None:
    """Median ms per case and field (rows) and library (columns), in one mode; ``NO`` marks a disagreement."""
    rows = [r for r in rows if r["mode"] == mode]
    if not rows:
        return None
    cols = list(dict.fromkeys(column(r) for r in rows))
    by = {(r["case"], r["field"], column(r)): r for r in rows}
    lines = []
    for case, field in dict.fromkeys((r["case"], r["field"]) for r in rows):
        suffix = "" if mode == FORWARD else " fwd+bwd"
        gp = by.get((case, field, "gpuph-cpu" + suffix)) or by.get((case, field, "gpuph-cuda" + suffix)) or {}
        line = [case, field, str(gp.get("pairs") if gp.get("pairs") is not None else "-")]
        for c in cols:
            r = by.get((case, field, c))
            if r is None:
                line.append("")
            elif r["median_ms"] is None:
                line.append("error" if r["note"].startswith("error") else "skipped")
            else:
                cell = fmt_ms(r["median_ms"])
                if r.get("ratio_vs_gpuph") is not None:
                    cell += f" ({r['ratio_vs_gpuph']:.2g})"
                if r["agrees_with_gpuph"] is False:
                    cell += " NO"
                line.append(cell)
        lines.append(line)
    return table(["case", "field", "pairs (gpuph)"] + cols, lines)


def goals_section(rows: list[dict[str, Any]]) -> list[str]:
    """results.md's lines on the CUDA issue's speed goals (none without gpuph-cuda rows that a goal names)."""
    goals = check_goals(rows)
    if not goals:
        return []
    lines = [[g["case"], g["field"], fmt_ms(g["goal_ms"]), fmt_ms(g["median_ms"]),
              "yes" if g["met"] else f"no: {g['times_goal']:.3g}x the goal"] for g in goals]
    return ["## Goals of the CUDA issue (forward, V; set for an H100)", "", f"Measured on {goals[0]['device']}.", "",
            table(["case", "field", "goal ms", "median ms", "met"], lines), ""]


def write_markdown(path: Path, meta: dict[str, Any], rows: list[dict[str, Any]]) -> Path:
    v = meta["versions"]
    m = meta["machine"]
    git = meta.get("gpuph_git") or {}
    commit = (git.get("commit") or "unknown")[:10] + ("+dirty" if git.get("dirty") else "")
    device = meta["gpu"] or f"{m['cpu']}, {m['cpu_count']} cores"
    libs = ", ".join(f"{k} {v[k]}" for k in ("gudhi", "cripser", "torch-topological", "topologylayer", "giotto-ph")
                     if v.get(k))
    out = [
        f"# gpuph benchmark: {meta['gpu'] or 'CPU'}, {meta['date']}",
        "",
        f"{device}; {m['platform']}. Python {v['python']}, torch {v['torch']} ({meta['torch_threads']} threads"
        + (f", CUDA {meta['cuda']}" if meta.get("gpu") else "") + f"), gpuph {v['gpuph']} ({commit}); {libs}.",
        "",
        "Whole-batch medians in ms after warm-up (CUDA events on the GPU), superlevel filtrations, all homology "
        "dimensions, float32 inputs (uniform noise, or the same noise smoothed by a Gaussian of sigma 2). In "
        "parentheses: gpuph's time / the library's time in the same run, mode and construction (below 1: gpuph is "
        "faster). NO: the library's diagrams differ from gpuph's (see the note). pairs: gpuph's V pairs of nonzero "
        "length over the batch.",
        "",
    ]
    if meta.get("complete") is False:
        out += [INCOMPLETE, ""]
    if meta.get("time_limit_s") and any(r["note"].startswith(Deadline.PREFIX) for r in rows):
        out += [f"The run's time limit ({meta['time_limit_s']:g} s) was reached: the other libraries' remaining "
                "cells were not run (gpuph's were).", ""]
    for mode, title in ((FORWARD, "Forward"), (BACKWARD, "Forward + backward (loss: sum of finite lifetimes)")):
        s = summary(rows, mode)
        if s:
            out += [f"## {title}", "", s, ""]
    out += goals_section(rows)
    if meta.get("skipped"):
        out += ["## Not run", ""] + [f"- {k}: {why}" for k, why in meta["skipped"].items()] + [""]
    out += ["## Every row", ""]
    detail = [
        [r["case"], r["field"], r["label"], r["device"], r["construction"], fmt_ms(r["median_ms"]),
         f"{fmt_ms(r['min_ms'])} - {fmt_ms(r['max_ms'])}" if r["median_ms"] is not None else "-",
         str(r["repeats"]), str(r["pairs"]) if r["pairs"] is not None else "-", fmt_agrees(r["agrees_with_gpuph"]),
         f"{r['ratio_vs_gpuph']:.3g}" if r.get("ratio_vs_gpuph") is not None else "-", r["note"]]
        for r in rows
    ]
    out += [table(["case", "field", "library", "device", "construction", "median ms", "min - max", "repeats",
                   "pairs", "agrees", "gpuph/lib", "note"], detail), ""]
    out += ["## What each row times", ""] + [f"- **{k}**: {note}" for k, note in meta["libraries"].items()] + [""]
    path.write_text("\n".join(out))
    return path
