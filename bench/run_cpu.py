"""CPU benchmark: gpuph against GUDHI (generic and fast 2D path), cripser and torch-topological, on the same inputs.

    python bench/run_cpu.py [--quick] [--cases ...] [--libraries ...] [--repeats N] [--out DIR]

Every timed library's diagrams are checked against gpuph's (sorted multisets of (dim, birth, death) per image, in
gpuph's superlevel units) on the output of the warm-up call, so a wrong answer is never timed silently. Writes
results.json, results.md and times.png to bench/results/cpu-<hostname or ci>-<date>/ (see bench/README.md).
"""

from __future__ import annotations

import argparse
import importlib
import math
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from common import (
    default_out_dir,
    fmt_ms,
    import_gpuph,
    machine_meta,
    markdown_table,
    measure,
    plot_times,
    summarize,
    write_json,
)
from scipy.ndimage import gaussian_filter
from tqdm import tqdm

gpuph = import_gpuph()

# name -> (batch size, grid shape)
CASES: dict[str, tuple[int, tuple[int, ...]]] = {
    "256x28x28": (256, (28, 28)),
    "64x64x64": (64, (64, 64)),
    "1x512x512": (1, (512, 512)),
    "16x32^3": (16, (32, 32, 32)),
    "1x64^3": (1, (64, 64, 64)),
    "1x128^3": (1, (128, 128, 128)),  # opt-in (--cases 1x128^3): GUDHI takes ~20 s a call on noise
}
DEFAULT_CASES = ("256x28x28", "64x64x64", "1x512x512", "16x32^3", "1x64^3")
# The smallest 2D and the smallest 3D case (ties in pixel count broken by list order), so that --quick exercises both
# the 2D and the 3D paths of every library and both targets.
QUICK_CASES = ("256x28x28", "1x64^3")
FIELDS = ("noise", "smooth")
SMOOTH_SIGMA = 2.0
SEED = 20240611

# Targets from the issue, printed as pass/fail (never asserted): gpuph forward time / library time <= bound.
TARGETS = {2: ("gudhi-fast2d", 1.0, "2D: at least as fast as GUDHI's fast 2D path"),
           3: ("cripser", 1.0 / 3.0, "3D: at least 3x faster than cripser")}


# -------------------------------------------------------------------------------------------------- inputs
def make_field(case: str, field: str) -> np.ndarray:
    """float32 array (B, *grid): seeded uniform noise, or that noise smoothed per image by a Gaussian (sigma 2)."""
    batch, grid = CASES[case]
    rng = np.random.default_rng([SEED, list(CASES).index(case)])
    x = rng.random((batch, *grid))  # float64 in [0, 1)
    if field == "smooth":
        x = np.stack([gaussian_filter(img, SMOOTH_SIGMA) for img in x])
    elif field != "noise":
        raise ValueError(f"unknown field {field!r}")
    return np.ascontiguousarray(x, dtype=np.float32)


# -------------------------------------------------------------------------------------------------- canonical form
# A diagram of one image is an (n, 3) float64 array of (dim, birth, death) in gpuph's superlevel units (birth >= death,
# essential classes die at -inf), rows sorted; zero-length pairs dropped (not canonical: GUDHI and cripser drop them).
def canonical(dim, birth, death) -> np.ndarray:
    a = np.column_stack([np.asarray(dim, np.float64), np.asarray(birth, np.float64), np.asarray(death, np.float64)])
    a = a.reshape(-1, 3)
    a = a[a[:, 1] != a[:, 2]]
    return a[np.lexsort((a[:, 2], a[:, 1], a[:, 0]))]


def gpuph_diagrams(dgm) -> list[np.ndarray]:
    pairs = dgm.pairs.detach().to("cpu", torch.float64).numpy()
    dims = dgm.dim.cpu().numpy()
    batch = dgm.batch.cpu().numpy()
    order = np.argsort(batch, kind="stable")
    pairs, dims, batch = pairs[order], dims[order], batch[order]
    starts = np.searchsorted(batch, np.arange(dgm.batch_size + 1))
    return [canonical(dims[s:e], pairs[s:e, 0], pairs[s:e, 1]) for s, e in zip(starts[:-1], starts[1:])]


def compare(ref: list[np.ndarray], got: list[np.ndarray] | None) -> tuple[bool | None, str | None, int | None]:
    """(agrees, description of the first difference, index of the first differing image)."""
    if got is None:
        return None, None, None
    if len(got) != len(ref):
        return False, f"{len(got)} images, expected {len(ref)}", 0
    for b, (r, g) in enumerate(zip(ref, got)):
        if r.shape == g.shape and np.array_equal(r, g):
            continue
        counts = {
            int(k): (int((r[:, 0] == k).sum()), int((g[:, 0] == k).sum())) for k in sorted(set(r[:, 0]) | set(g[:, 0]))
        }
        rs = {tuple(row) for row in r.tolist()}
        gs = {tuple(row) for row in g.tolist()}
        only_ref = sorted(rs - gs)[:3]
        only_got = sorted(gs - rs)[:3]
        msg = (f"image {b}: pairs per dim (gpuph, library) {counts}; only in gpuph {only_ref}; "
               f"only in library {only_got}")
        return False, msg, b
    return True, None, None


# -------------------------------------------------------------------------------------------------- libraries
def label(name: str, mode: str) -> str:
    return name if mode == "forward" else f"{name} fwd+bwd"


@dataclass
class Library:
    """One timed configuration. ``prepare`` (untimed) turns the float32 batch into the library's inputs; ``run``
    is what is timed; ``diagrams`` converts ``run``'s output to canonical per-image diagrams (None: not comparable).
    """

    name: str
    mode: str
    prepare: Callable[[np.ndarray], Any]
    run: Callable[[Any], Any]
    diagrams: Callable[[Any], list[np.ndarray] | None]
    ndims: tuple[int, ...] = (2, 3)
    note: str | None = None

    @property
    def key(self) -> str:
        return label(self.name, self.mode)


def _gpuph_forward() -> Library:
    return Library(
        "gpuph", "forward",
        prepare=lambda x: torch.from_numpy(x),
        run=lambda xt: gpuph.cubical_persistence(xt),
        diagrams=gpuph_diagrams,
        note="whole batch in one call; superlevel, V, all dims, float32, with critical pixels",
    )


def _gpuph_backward() -> Library:
    def run(xt):
        xt.grad = None
        dgm = gpuph.cubical_persistence(xt)
        dgm.finite().lifetimes().sum().backward()
        return dgm

    return Library(
        "gpuph", "forward+backward",
        prepare=lambda x: torch.from_numpy(x.copy()).requires_grad_(True),
        run=run,
        diagrams=gpuph_diagrams,
        note="loss = sum of finite lifetimes",
    )


def _gudhi_generic() -> Library:
    gudhi = importlib.import_module("gudhi")

    def run(arrays):
        # Z/2 coefficients, as gpuph and cripser: in 3D, H1 diagrams can depend on the field, and GUDHI's default
        # Z/11 gives different (equally valid) H1 diagrams on noise volumes (see bench/README.md).
        return [gudhi.CubicalComplex(vertices=a).persistence(homology_coeff_field=2) for a in arrays]

    def diagrams(out):
        res = []
        for pers in out:
            dims = [k for k, _ in pers]
            # GUDHI filters -x by sublevel sets: (b, d) there is (-b, -d) here, and an infinite death becomes -inf.
            res.append(canonical(dims, [-bd[0] for _, bd in pers], [-bd[1] for _, bd in pers]))
        return res

    return Library(
        "gudhi", "forward",
        prepare=lambda x: [np.ascontiguousarray(-img, dtype=np.float64) for img in x],
        run=run,
        diagrams=diagrams,
        note="CubicalComplex(vertices=-x).persistence(homology_coeff_field=2) per image; -x as float64 prepared "
             "untimed",
    )


def _gudhi_fast2d() -> Library:
    ext = importlib.import_module("gudhi._pers_cub_low_dim_ext")
    # (float64 C-contiguous 2D array of top cells, min_persistence) -> [PD0, PD1], sublevel, zero-length pairs dropped
    fast = ext._persistence_on_rectangle_from_top_cells

    def prepare(x):
        # Duality (DESIGN.md section 2): V-superlevel PD_k(x) = T-sublevel PD_{1-k}(x padded with -inf), with birth
        # and death swapped, minus the one (-inf, +inf) bar.
        return [np.pad(img.astype(np.float64), 1, constant_values=-np.inf) for img in x]

    def run(arrays):
        return [fast(a, 0.0) for a in arrays]

    def diagrams(out):
        res = []
        for pd0, pd1 in out:
            pd0 = pd0[~(np.isneginf(pd0[:, 0]) & np.isposinf(pd0[:, 1]))]
            dims = np.concatenate([np.ones(len(pd0)), np.zeros(len(pd1))])
            births = np.concatenate([pd0[:, 1], pd1[:, 1]])
            deaths = np.concatenate([pd0[:, 0], pd1[:, 0]])
            res.append(canonical(dims, births, deaths))
        return res

    return Library(
        "gudhi-fast2d", "forward",
        prepare=prepare,
        run=run,
        diagrams=diagrams,
        ndims=(2,),
        note="_persistence_on_rectangle_from_top_cells(pad(x, -inf), 0.0) per image (T construction, no locations; "
             "V-superlevel diagrams by duality); padded float64 prepared untimed",
    )


def _cripser() -> Library:
    cripser = importlib.import_module("cripser")
    big = np.finfo(np.float64).max

    def run(job):
        maxdim, arrays = job
        return [cripser.computePH(a, maxdim=maxdim) for a in arrays]

    def diagrams(out):
        res = []
        for ph in out:
            ph = np.asarray(ph).reshape(-1, 9)
            death = np.where(ph[:, 2] >= big, -np.inf, -ph[:, 2])  # essential classes die at DBL_MAX
            res.append(canonical(ph[:, 0], -ph[:, 1], death))
        return res

    return Library(
        "cripser", "forward",
        prepare=lambda x: (x.ndim - 2, [np.ascontiguousarray(-img, dtype=np.float64) for img in x]),
        run=run,
        diagrams=diagrams,
        note="computePH(-x, maxdim=d-1) per image (V construction, with locations, 1 thread); -x prepared untimed",
    )


def _torch_topological() -> Library:
    tt_nn = importlib.import_module("torch_topological.nn")

    def flatten(obj):
        if hasattr(obj, "diagram"):
            yield obj
        elif isinstance(obj, (list, tuple)):
            for o in obj:
                yield from flatten(o)

    def prepare(x):
        layer = tt_nn.CubicalComplex(superlevel=True, dim=x.ndim - 1)
        return layer, torch.from_numpy(x.copy()).requires_grad_(True)

    def run(job):
        layer, xt = job
        xt.grad = None
        infos = list(flatten(layer(xt)))
        loss = xt.new_zeros(())
        for info in infos:
            d = info.diagram
            finite = torch.isfinite(d).all(1)
            loss = loss + (d[finite, 0] - d[finite, 1]).abs().sum()
        loss.backward()
        return infos

    return Library(
        "torch-topological", "forward+backward",
        prepare=prepare,
        run=run,
        diagrams=lambda out: None,
        note="CubicalComplex(superlevel=True, dim=d); T construction (top cells), so not comparable with gpuph's V",
    )


FACTORIES: dict[str, list[Callable[[], Library]]] = {
    "gpuph": [_gpuph_forward, _gpuph_backward],
    "gudhi": [_gudhi_generic],
    "gudhi-fast2d": [_gudhi_fast2d],
    "cripser": [_cripser],
    "torch-topological": [_torch_topological],
}


def load_libraries(names: list[str]) -> tuple[list[Library], dict[str, str]]:
    libs, skipped = [], {}
    for name in names:
        for factory in FACTORIES[name]:
            try:
                libs.append(factory())
            except (ImportError, AttributeError, TypeError) as exc:
                skipped[name] = f"not available: {type(exc).__name__}: {exc}"
                break
    return libs, skipped


# -------------------------------------------------------------------------------------------------- report
def ratio_rows(rows: list[dict]) -> None:
    """Adds ``gpuph_ratio`` = gpuph median / library median (same case, field and mode) to every other row."""
    ref = {(r["case"], r["field"], r["mode"]): r["median_ms"] for r in rows if r["library"] == "gpuph"}
    for r in rows:
        g = ref.get((r["case"], r["field"], r["mode"]))
        if r["library"] != "gpuph" and g is not None and r.get("median_ms"):
            r["gpuph_ratio"] = round(g / r["median_ms"], 4)


def targets(rows: list[dict]) -> list[dict]:
    out = []
    for r in rows:
        target = TARGETS.get(r["ndim"])
        if target and r["library"] == target[0] and r["mode"] == "forward" and r.get("gpuph_ratio") is not None:
            out.append({"case": r["case"], "field": r["field"], "target": target[2], "against": target[0],
                        "gpuph_ratio": r["gpuph_ratio"], "bound": round(target[1], 4),
                        "pass": r["gpuph_ratio"] <= target[1]})
    return out


def markdown(meta: dict, rows: list[dict], tgts: list[dict]) -> str:
    libs = []
    for r in rows:
        key = label(r["library"], r["mode"])
        if r["library"] != "gpuph" and key not in libs:
            libs.append(key)
    header = ["case", "field", "pairs", "gpuph ms", "gpuph fwd+bwd ms"]
    for key in libs:
        header += [f"{key} ms", "ratio"]
    header += ["agrees with gpuph", "target"]
    by = {}
    for r in rows:
        key = label(r["library"], r["mode"])
        by[(r["case"], r["field"], key)] = r
    tg = {(t["case"], t["field"]): t for t in tgts}
    lines = []
    for case, field in dict.fromkeys((r["case"], r["field"]) for r in rows):
        g = by.get((case, field, "gpuph"), {})
        gb = by.get((case, field, label("gpuph", "forward+backward")), {})
        pairs = next((r["pairs"] for r in rows if (r["case"], r["field"]) == (case, field) and r.get("pairs")), "-")
        pairs = g.get("pairs", pairs)
        line = [case, field, str(pairs), fmt_ms(g.get("median_ms")), fmt_ms(gb.get("median_ms"))]
        agree = []
        for key in libs:
            r = by.get((case, field, key))
            if r is None:
                line += ["-", "-"]
                continue
            if r.get("error"):
                line += ["error", "-"]
                agree.append(f"{key}: error")
                continue
            ratio = r.get("gpuph_ratio")
            line += [fmt_ms(r.get("median_ms")), f"{ratio:.2f}" if ratio is not None else "-"]
            a = r.get("agrees_with_gpuph")
            agree.append(f"{key}: {'yes' if a else 'NO'}" if a is not None else f"{key}: n/a")
        t = tg.get((case, field))
        line += ["; ".join(agree) or "-",
                 f"{'PASS' if t['pass'] else 'FAIL'} ({t['gpuph_ratio']:.2f} <= {t['bound']:.2f} vs {t['against']})"
                 if t else "-"]
        lines.append(line)
    m = meta["machine"]
    g = meta["gpuph"]
    commit = (g.get("commit") or "unknown")[:10] + ("+dirty" if g.get("dirty") else "")
    intro = [
        f"# gpuph CPU benchmark, {meta['date']}",
        "",
        (f"{m['cpu']}, {m['cores']} cores; torch {meta['torch']} ({meta['torch_threads']} threads), "
         f"gudhi {meta.get('gudhi')}, cripser {meta.get('cripser')}, gpuph {g.get('version')} ({commit})."),
        "",
        "Medians of the whole batch in ms after one warm-up. ratio = gpuph time / library time in the same run and "
        "mode (below 1: gpuph is faster). pairs: gpuph's pairs over the batch (finite + essential). Superlevel, "
        "V construction, all dimensions. Targets (reported, not asserted): "
        + "; ".join(t[2] for t in TARGETS.values()) + ".",
        "",
    ]
    if meta.get("skipped"):
        intro += ["Skipped: " + "; ".join(f"{k} ({v})" for k, v in meta["skipped"].items()), ""]
    return "\n".join(intro) + markdown_table(header, lines) + "\n"


# -------------------------------------------------------------------------------------------------- main
def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help=f"cases {', '.join(QUICK_CASES)}, 3 repeats at most, ~1 minute")
    p.add_argument("--cases", nargs="+", choices=list(CASES), help=f"default: {' '.join(DEFAULT_CASES)}")
    p.add_argument("--fields", nargs="+", choices=FIELDS, default=list(FIELDS))
    p.add_argument("--libraries", nargs="+", choices=list(FACTORIES), default=list(FACTORIES),
                   help="gpuph is always the reference of the correctness check, timed or not")
    p.add_argument("--repeats", type=int, help="timed repeats after the warm-up (default 10; --quick 3)")
    p.add_argument("--min-repeats", type=int, help="repeats even for slow libraries (default 3; --quick 2)")
    p.add_argument("--budget", type=float,
                   help="seconds per measurement that cap the repeats of slow libraries (default 10; --quick 2)")
    p.add_argument("--threads", type=int, help="torch intra-op threads for gpuph (default: torch's default)")
    p.add_argument("--out", type=Path, help="output folder (default bench/results/cpu-<hostname or ci>-<date>)")
    args = p.parse_args(argv)
    args.cases = args.cases or list(QUICK_CASES if args.quick else DEFAULT_CASES)
    args.repeats = args.repeats or (3 if args.quick else 10)
    args.min_repeats = min(args.min_repeats or (2 if args.quick else 3), args.repeats)
    args.budget = args.budget if args.budget is not None else (2.0 if args.quick else 10.0)
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    libs, skipped = load_libraries(args.libraries)
    meta = machine_meta(("gudhi", "cripser", "scipy", "torch_topological"))
    meta.update({
        "argv": sys.argv[1:] if argv is None else list(argv),
        "quick": args.quick,
        "seed": SEED,
        "smooth_sigma": SMOOTH_SIGMA,
        "cases": {c: {"batch": CASES[c][0], "grid": list(CASES[c][1])} for c in args.cases},
        "repeats": {"max": args.repeats, "min": args.min_repeats, "budget_s": args.budget},
        "libraries": {lib.key: lib.note for lib in libs},
        "skipped": skipped,
        "cripser_threads": 1,
    })
    out_dir = args.out or default_out_dir("cpu")
    out_dir.mkdir(parents=True, exist_ok=True)

    jobs = [(c, f, lib) for c in args.cases for f in args.fields for lib in libs if len(CASES[c][1]) in lib.ndims]
    rows: list[dict] = []
    bad = False
    bar = tqdm(total=len(jobs), unit="run", dynamic_ncols=True)
    current = None
    for case, field, lib in jobs:
        batch, grid = CASES[case]
        if current != (case, field):
            bar.set_description(f"{case} {field}: input")
            x = make_field(case, field)
            ref = gpuph_diagrams(gpuph.cubical_persistence(torch.from_numpy(x)))  # the reference, untimed
            current = (case, field)
        bar.set_description(f"{case} {field}: {lib.key}")
        row = {"library": lib.name, "device": "cpu", "case": case, "field": field, "mode": lib.mode,
               "ndim": len(grid), "batch": batch, "grid": list(grid), "pixels": batch * math.prod(grid)}
        try:
            times, out = measure(partial(lib.run, lib.prepare(x)), args.repeats, args.min_repeats, args.budget)
            row.update(summarize(times))
            got = lib.diagrams(out)
            row["pairs"] = int(sum(len(d) for d in got)) if got is not None else None
            agrees, diff, img = compare(ref, got)
            if lib.name == "gpuph" and agrees:
                agrees = None  # the reference itself (checked only for run-to-run determinism)
            row["agrees_with_gpuph"] = agrees
            if agrees is False:
                bad = True
                row["mismatch"] = diff
                path = out_dir / f"mismatch-{lib.name}-{case.replace('^', 'p')}-{field}-image{img}.npy"
                np.save(path, x[img])
                row["mismatch_input"] = path.name
                tqdm.write(f"DISAGREES: {lib.key} on {case} {field}: {diff} (input saved to {path})")
        except Exception as exc:  # noqa: BLE001 - one library failing must not stop the others
            bad = True
            row.update({"median_ms": None, "min_ms": None, "max_ms": None, "repeats": 0, "pairs": None,
                        "agrees_with_gpuph": None, "error": f"{type(exc).__name__}: {exc}"})
            tqdm.write(f"ERROR: {lib.key} on {case} {field}:\n{traceback.format_exc()}")
        rows.append(row)
        bar.update(1)
    bar.set_description("done")
    bar.close()

    ratio_rows(rows)
    tgts = targets(rows)
    write_json(out_dir / "results.json", {"meta": meta, "rows": rows, "targets": tgts})
    md = markdown(meta, rows, tgts)
    (out_dir / "results.md").write_text(md)
    series: dict[str, list] = {}
    for r in rows:
        if r.get("median_ms"):
            key = label(r["library"], r["mode"])
            series.setdefault(key, []).append((r["pixels"], r["median_ms"], r["field"], r["ndim"]))
    plotted = plot_times(out_dir / "times.png", series, "CPU, median time per batch")
    print(md)
    written = [out_dir / "results.json", out_dir / "results.md"] + ([out_dir / "times.png"] if plotted else [])
    print("wrote " + ", ".join(map(str, written)))
    if bad:
        print("some library disagreed with gpuph or failed: see the rows above", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
