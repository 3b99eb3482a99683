"""The benchmark run: every selected library on every case, field and mode, timed and checked against gpuph."""

from __future__ import annotations

import gc
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

import gpuph

from . import meta as meta_mod
from .agreement import compare, gpuph_canonical
from .cases import FIELDS, SEED, Case, make_field, run_order
from .goals import check_goals
from .libraries import COMPUTES, CONSTRUCTIONS, FACTORIES, LIBRARIES, MODES, Runner, Unavailable, gpuph_runner
from .timing import Budget, Deadline, measure

# Rough noise-field rates on a 2-core VM (µs per pixel of the batch; DESIGN.md section 4), used to predict a call's
# time only when no smaller case of the same grid dimension was measured in this run.
PRIOR_US_PER_PIXEL: dict[tuple[str, int], float] = {
    ("gudhi", 2): 0.8, ("gudhi", 3): 6.5,
    ("torch-topological", 2): 2.0, ("torch-topological", 3): 8.0,
    ("topologylayer", 2): 9.0,
    ("cripser", 3): 3.0, ("cripser-torch", 3): 3.5,
    ("giotto-ph", 2): 3.0, ("giotto-ph", 3): 60.0,
}
# A call on a case with P pixels in the batch and p per image is predicted from a measured one (P0, p0) as
# t0 * (P / P0) * (p / p0) ** GROWTH: linear in the pixels, plus a little for larger single grids (longer merge trees,
# caches), which the 64 x 32^3 -> 1 x 128^3 step (same pixels, 64x larger grids) needs.
GROWTH = 0.25


@dataclass
class Config:
    """One run of the suite (see ``python -m gpuph.bench --help`` for the meaning of each option)."""

    cases: list[Case]
    fields: tuple[str, ...] = FIELDS
    modes: tuple[str, ...] = MODES
    libraries: tuple[str, ...] = LIBRARIES
    constructions: tuple[str, ...] = CONSTRUCTIONS
    budget: Budget = field(default_factory=Budget)
    out_dir: Path | None = None
    out_suffix: str = ""  # after the date in the default output folder (--goals: "-goals")
    cuda: bool | None = None  # None: when torch.cuda.is_available()
    seed: int = SEED
    quick: bool = False
    progress: bool = True
    plots: bool = True
    argv: list[str] | None = None
    time_limit_s: float | None = None  # after this many seconds only gpuph's cells start (the others: "not run")

    def __post_init__(self):
        for name, values, allowed in (("libraries", self.libraries, LIBRARIES), ("fields", self.fields, FIELDS),
                                      ("modes", self.modes, MODES), ("constructions", self.constructions,
                                                                      CONSTRUCTIONS)):
            unknown = [v for v in values if v not in allowed]
            if unknown:
                raise ValueError(f"unknown {name} {unknown}; expected some of {list(allowed)}")
        if not all(isinstance(c, Case) for c in self.cases):
            raise TypeError("Config.cases holds Case objects (see gpuph.bench.parse_case)")


@dataclass
class Results:
    meta: dict[str, Any]
    rows: list[dict[str, Any]]
    out_dir: Path
    files: list[Path]
    failures: list[str]  # errors and unexplained disagreements


# -------------------------------------------------------------------------------------------------- planning
def load_runners(cfg: Config, cuda: bool) -> tuple[list[Runner], dict[str, str]]:
    """The runners of the selected libraries, gpuph's first, and the libraries skipped with the reason."""
    others: list[Runner] = []
    skipped: dict[str, str] = {}
    for name in cfg.libraries:
        if name == "gpuph":
            continue
        try:
            found = FACTORIES[name](tuple(cfg.modes), tuple(cfg.constructions), name)
        except Unavailable as exc:
            skipped[name] = str(exc)
            continue
        if not found:
            skipped[name] = f"computes none of the requested constructions/modes ({COMPUTES[name]})"
        others += found
    # gpuph runs V in every mode, and every (construction, mode) that another library runs, for the ratios
    needed = [(c, m) for c in CONSTRUCTIONS for m in MODES
              if m in cfg.modes and (c == "V" and c in cfg.constructions or any(r.key[1:] == (c, m) for r in others))]
    ours = gpuph_runner.runners(needed, cuda) if "gpuph" in cfg.libraries else []
    return ours + others, skipped


def _predict_s(history: list[dict], runner: Runner, case: Case, field_name: str) -> tuple[float | None, str]:
    """Predicted seconds of one call of ``runner`` on ``case``, and where the prediction comes from."""
    same = [h for h in history if h["key"] == (*runner.key, runner.device, case.ndim) and h["pixels"] <= case.pixels]
    pool = [h for h in same if h["field"] == field_name] or same
    if pool:
        h = max(pool, key=lambda h: (h["pixels"], h["seconds"]))
        t = h["seconds"] * case.pixels / h["pixels"] * (case.pixels_per_image / h["pixels_per_image"]) ** GROWTH
        return t, f"extrapolated from {h['case']} {h['field']}, {h['seconds']:.2g} s"
    rate = PRIOR_US_PER_PIXEL.get((runner.library, case.ndim))
    if rate is None:
        return None, ""
    return rate * 1e-6 * case.pixels, f"at ~{rate:g} µs per pixel; no smaller {case.ndim}D case ran before"


def _cell_gpu_name(runner: Runner) -> str:
    return torch.cuda.get_device_name() if runner.device == "cuda" else "cpu"


# -------------------------------------------------------------------------------------------------- one cell
def _base_row(runner: Runner, case: Case, field_name: str) -> dict[str, Any]:
    return {
        "library": runner.library,
        "device": _cell_gpu_name(runner),
        "case": case.name,
        "field": field_name,
        "mode": runner.mode,
        "construction": runner.construction,
        "median_ms": None,
        "min_ms": None,
        "max_ms": None,
        "repeats": 0,
        "pairs": None,
        "agrees_with_gpuph": None,
        "ratio_vs_gpuph": None,
        "note": "",
        "label": runner.label,
        "ndim": case.ndim,
        "batch": case.batch,
        "grid": list(case.grid),
        "pixels": case.pixels,
    }


class _Run:
    """State of one suite run: the references of the current input, the timing history for the cap."""

    def __init__(self, cfg: Config, cuda: bool, out_dir: Path, deadline: Deadline):
        self.cfg, self.cuda, self.out_dir, self.deadline = cfg, cuda, out_dir, deadline
        self.history: list[dict] = []
        self.refs: dict[str, list[np.ndarray] | None] = {}
        self.failures: list[str] = []

    def reference(self, x: np.ndarray, case: Case, construction: str) -> list[np.ndarray] | None:
        """gpuph's diagrams of ``x`` (untimed; on the CPU, or on the GPU for GPU-only cases), cached per input."""
        if construction not in self.refs:
            if case.gpu_only and not self.cuda:
                self.refs[construction] = None
            else:
                t = torch.from_numpy(x).to("cuda" if case.gpu_only else "cpu")
                self.refs[construction] = gpuph_canonical(gpuph.cubical_persistence(t, construction=construction))
        return self.refs[construction]

    def skip_reason(self, runner: Runner, case: Case, field_name: str) -> str | None:
        """Why ``runner`` does not run on this input (the GPU-only rule, the time cap), or None."""
        if case.gpu_only and runner.device == "cpu":
            return (f"skipped: GPU-only case (one grid of {case.pixels_per_image:,} voxels; the CPU layers would take "
                    "minutes)")
        if runner.device == "cpu":
            predicted, source = _predict_s(self.history, runner, case, field_name)
            if predicted is not None and predicted > self.cfg.budget.cap_s:
                return (f"skipped: one call predicted to take ~{predicted:.3g} s, over the cap of "
                        f"{self.cfg.budget.cap_s:g} s ({source})")
        return None

    def cell(self, runner: Runner, case: Case, field_name: str, x: np.ndarray, skip: str | None) -> dict[str, Any]:
        row = _base_row(runner, case, field_name)
        if skip:
            row["note"] = skip
            return row
        label = f"{runner.label} [{runner.device}] on {case} {field_name}"
        try:
            prepared = runner.prepare(x)
            m = measure(partial(runner.run, prepared), self.cfg.budget, cuda=runner.device == "cuda")
            row.update(m.summary())
            notes = list(m.notes)
            got = runner.diagrams(m.output, prepared)
            prepared = m = None  # free the inputs and outputs before the next cell
            row["pairs"] = int(sum(len(d) for d in got)) if got is not None else None
            self.history.append({"key": (*runner.key, runner.device, case.ndim), "case": case.name,
                                 "field": field_name, "pixels": case.pixels,
                                 "pixels_per_image": case.pixels_per_image, "seconds": row["min_ms"] / 1e3})
            if runner.library == "gpuph-cpu" and runner.mode == "forward" and runner.construction not in self.refs:
                self.refs[runner.construction] = got  # the reference itself: nothing to compare with
                notes.append("the reference of agrees_with_gpuph")
            else:
                ref = self.reference(x, case, runner.construction)
                ag = compare(ref, got) if ref is not None else compare([], None)
                row["agrees_with_gpuph"] = ag.agrees
                if ref is None:
                    notes.append("no reference (GPU-only case without a GPU)")
                elif case.gpu_only:
                    notes.append("reference: gpuph on the GPU (GPU-only case)")
                if ag.agrees is False:
                    row["mismatch"] = ag.message
                    name = f"mismatch-{meta_mod.slug(runner.label)}-{runner.device}-{case}-{field_name}-image{ag.image}"
                    path = self.out_dir / f"{name}.npy"
                    np.save(path, x[ag.image])
                    row["mismatch_input"] = path.name
                    explained = ag.only_in((runner.field_dependent_dims or {}).get(case.ndim, ()))
                    if explained:
                        notes.append(
                            f"DIFFERS only in H{'/H'.join(map(str, ag.dims))}, which in {case.ndim}D depends on the "
                            "coefficient field (this library: Z/11; gpuph: Z/2)")
                    else:
                        notes.append("DISAGREES with gpuph: " + ag.message)
                        self.failures.append(f"{label}: disagrees: {ag.message}")
            row["note"] = "; ".join(notes)
        except Exception as exc:  # noqa: BLE001 - one library failing must not stop the others
            row["note"] = f"error: {type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
            self.failures.append(f"{label}: {type(exc).__name__}: {exc}\n{traceback.format_exc()}")
        return row


# -------------------------------------------------------------------------------------------------- ratios
def _significant(v: float, digits: int = 4) -> float:
    return float(f"{v:.{digits}g}")


def add_ratios(rows: list[dict[str, Any]]) -> None:
    """``ratio_vs_gpuph`` = gpuph's median / the row's median, same case, field, mode and construction (below 1:
    gpuph is faster). gpuph is its CUDA row when the run has one, else its CPU row; with a GPU, CPU rows also get
    ``ratio_vs_gpuph_cpu``. The reference rows themselves get None (gpuph-cpu's gets the CUDA ratio)."""
    def key(r):
        return (r["case"], r["field"], r["mode"], r["construction"])

    med = {(r["library"], *key(r)): r["median_ms"]
           for r in rows if r["library"] in ("gpuph-cpu", "gpuph-cuda") and r["median_ms"]}
    has_cuda = any(lib == "gpuph-cuda" for lib, *_ in med)
    for r in rows:
        if not r["median_ms"]:
            continue
        cuda_t, cpu_t = med.get(("gpuph-cuda", *key(r))), med.get(("gpuph-cpu", *key(r)))
        ref, ref_name = (cuda_t, "gpuph-cuda") if cuda_t else (cpu_t, "gpuph-cpu")
        if ref and r["library"] != ref_name:
            r["ratio_vs_gpuph"] = _significant(ref / r["median_ms"])
            r["gpuph_reference"] = ref_name
        if has_cuda and cpu_t and r["library"] not in ("gpuph-cpu", "gpuph-cuda"):
            r["ratio_vs_gpuph_cpu"] = _significant(cpu_t / r["median_ms"])


# -------------------------------------------------------------------------------------------------- the run
def run_suite(cfg: Config, extra_runners: list[Runner] | None = None) -> Results:
    """Run the suite and write ``results.json``, ``results.md`` and the plots into the output folder.

    ``extra_runners`` are timed and checked like the libraries' (the tests use it to plant a wrong one).
    """
    from . import plots, report

    deadline = Deadline(cfg.time_limit_s)  # from the start: the imports of the libraries count
    cuda = torch.cuda.is_available() if cfg.cuda is None else cfg.cuda
    if cuda and not torch.cuda.is_available():
        raise ValueError("cuda=True but torch.cuda.is_available() is False")
    out_dir = Path(cfg.out_dir) if cfg.out_dir else meta_mod.default_out_dir(cuda, cfg.out_suffix)
    out_dir.mkdir(parents=True, exist_ok=True)
    runners, skipped = load_runners(cfg, cuda)
    runners += list(extra_runners or [])
    cases = run_order(cfg.cases)
    if not cuda:
        gpu_cases = [c.name for c in cases if c.gpu_only]
        cases = [c for c in cases if not c.gpu_only]
        if gpu_cases:
            skipped["cases " + ", ".join(gpu_cases)] = "GPU-only cases, and this run has no GPU"

    meta = meta_mod.collect(cuda)
    meta.update({
        "argv": cfg.argv,
        "quick": cfg.quick,
        "seed": cfg.seed,
        "cases": [c.name for c in cases],
        "fields": list(cfg.fields),
        "modes": list(cfg.modes),
        "constructions": list(cfg.constructions),
        "budget": {"max_repeats": cfg.budget.max_repeats, "min_repeats": cfg.budget.min_repeats,
                   "budget_s": cfg.budget.budget_s, "cap_s": cfg.budget.cap_s, "warmup": cfg.budget.warmup,
                   "cuda_warmup": cfg.budget.cuda_warmup},
        "libraries": {f"{r.label} [{r.device}]": r.note for r in runners},
        "computes": {k: v for k, v in COMPUTES.items() if k in cfg.libraries},
        "skipped": skipped,
        "superlevel": True,
        "time_limit_s": cfg.time_limit_s,
    })

    def write(rows: list[dict[str, Any]], complete: bool) -> list[Path]:
        add_ratios(rows)
        meta["complete"] = complete
        doc = {"meta": meta, "rows": rows, "goals": check_goals(rows)}
        return [report.write_json(out_dir / "results.json", doc),
                report.write_markdown(out_dir / "results.md", meta, rows)]

    state = _Run(cfg, cuda, out_dir, deadline)
    # The imports leave ~10^6 objects: frozen, a collection only walks what the run allocates (a full one took 0.4 s
    # on a loaded machine). No collection runs inside a timed call (see timing.py).
    gc.freeze()
    try:
        # The files are rewritten after every input (meta.complete false until the end): a run killed from outside
        # keeps what it measured.
        rows = _run_cells(state, cases, runners, checkpoint=lambda rows: write(rows, complete=False))
    finally:
        gc.unfreeze()

    files = write(rows, complete=True)
    if cfg.plots:
        files += plots.plot_times(out_dir, rows, meta)
    return Results(meta, rows, out_dir, files, state.failures)


def _run_cells(state: _Run, cases: list[Case], runners: list[Runner],
               checkpoint: Callable[[list[dict[str, Any]]], object]) -> list[dict[str, Any]]:
    cfg = state.cfg
    groups = [(case, f, [r for r in runners if case.ndim in r.ndims]) for case in cases for f in cfg.fields]
    rows: list[dict[str, Any]] = []
    bar = _progress(sum(len(g[2]) for g in groups), cfg.progress)
    for case, f, group in groups:
        state.refs = {}
        gc.collect()
        bar.set_description(f"{case} {f}: input")
        x = make_field(case, f, cfg.seed)
        skips = {id(r): state.skip_reason(r, case, f) for r in group}
        # gpuph's T and freudenthal rows are there for the ratios: only where another library runs the same thing
        wanted = {(r.construction, r.mode) for r in group if not r.library.startswith("gpuph-") and not skips[id(r)]}
        for r in group:
            if r.library.startswith("gpuph-") and r.construction != "V" and (r.construction, r.mode) not in wanted:
                skips[id(r)] = f"skipped: no other library runs {r.construction} {r.mode} on this input"
        for r in group:
            bar.set_description(f"{case} {f}: {r.label} [{r.device}]")
            # Past the time limit only gpuph's own rows still run (every case keeps them; they are quick).
            if not skips[id(r)] and not r.library.startswith("gpuph-") and state.deadline.passed():
                skips[id(r)] = state.deadline.note
            rows.append(state.cell(r, case, f, x, skips[id(r)]))
            bar.update(1)
        checkpoint(rows)
    bar.close()
    return rows


class _NoBar:
    def set_description(self, _):
        pass

    def update(self, _):
        pass

    def close(self):
        pass


def _progress(total: int, enabled: bool):
    if not enabled:
        return _NoBar()
    try:
        from tqdm import tqdm
    except ImportError:
        return _NoBar()
    return tqdm(total=total, unit="cell", dynamic_ncols=True)


__all__ = ["Config", "Results", "add_ratios", "load_runners", "run_suite"]
