"""Point-cloud benchmark: gpuph's Rips and weak Alpha persistence (H0 + H1) against ripser, GUDHI and giotto-ph.

    python bench/bench_point_cloud.py [--cases ...] [--libraries ...] [--repeats N] [--budget S] [--out DIR]

Cases: Rips of 100, 500 and 2000 uniform points in the unit square; weak Alpha (the flag complex of the Delaunay
graph) of 1000 and 10000 points. Every library's diagrams (pairs of nonzero length) are checked against gpuph's on
the warm-up call (same counts, bottleneck distance within 1e-5 of the scale: gpuph runs on float32 points, ripser
and giotto-ph round distances to float32, GUDHI computes in float64). Writes results.json and results.md to
bench/results/<device>-<date>-point-cloud/ (device: cpu-<cores>core, or the CUDA device's name).

gpuph runs on torch's threads (--threads N sets them; the committed results use 1, like ripser and GUDHI; giotto-ph
gets all cores). TopologyLayer is not timed (not installable with this torch).
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's gpuph, installed or not

from gpuph.bench.meta import collect, default_out_dir, usable_cores, version  # noqa: E402
from gpuph.bench.report import INCOMPLETE, fmt_ms, write_json  # noqa: E402
from gpuph.bench.report import table as markdown_table  # noqa: E402
from gpuph.bench.timing import Budget, Deadline, measure  # noqa: E402
from gpuph.delaunay import delaunay_edges  # noqa: E402
from gpuph.point_cloud import rips_persistence, weak_alpha_persistence  # noqa: E402

SEED = 20240611
# name -> (filtration, number of points, their dimension D, the highest homology dimension computed)
CASES = {"rips-100": ("rips", 100, 2, 1), "rips-500": ("rips", 500, 2, 1), "rips-2000": ("rips", 2000, 2, 1),
         "alpha-1000": ("alpha", 1000, 2, 1), "alpha-10000": ("alpha", 10000, 2, 1),
         "rips-h2-100": ("rips", 100, 3, 2), "rips-h2-200": ("rips", 200, 3, 2),
         "rips-h2-400": ("rips", 400, 3, 2)}
LIBRARIES = ("gpuph", "gpuph-fwd+bwd", "ripser", "gudhi", "giotto-ph")
# GUDHI's RipsComplex stores every simplex (n^3 / 6 triangles): past this it needs minutes and gigabytes.
GUDHI_RIPS_MAX_POINTS = 500
GUDHI_RIPS_H2_MAX_POINTS = 100  # with H2, every tetrahedron too (n^4 / 24)


def gudhi_rips_limit(maxdim: int) -> int:
    return GUDHI_RIPS_MAX_POINTS if maxdim < 2 else GUDHI_RIPS_H2_MAX_POINTS


def cloud(n: int, d: int = 2) -> np.ndarray:
    return np.random.default_rng(SEED + n).random((n, d))


def by_dim(items, maxdim: int = 1) -> dict[int, np.ndarray]:
    out = {k: [] for k in range(maxdim + 1)}
    for k, b, d in items:
        if k in out and d > b:
            out[k].append((b, d))
    return {k: np.array(sorted(v), dtype=np.float64).reshape(-1, 2) for k, v in out.items()}


def from_dgms(dgms, maxdim: int = 1) -> dict[int, np.ndarray]:
    return by_dim([(k, b, d) for k in range(maxdim + 1) for b, d in np.asarray(dgms[k], dtype=np.float64)], maxdim)


def from_gpuph(dgm, maxdim: int = 1) -> dict[int, np.ndarray]:
    p = dgm.pairs.detach().cpu().double().numpy()
    return by_dim([(int(k), b, d) for k, (b, d) in zip(dgm.dim.tolist(), p)], maxdim)


def agree(a: dict, b: dict) -> tuple[bool, str]:
    """Same number of pairs and essential classes per dimension, and a bottleneck distance (GUDHI) within float32
    rounding: a matching, since sorting two diagrams whose values differ by rounding can pair the wrong rows."""
    import gudhi

    for k in sorted(a.keys() | b.keys()):
        if k not in a or k not in b or a[k].shape != b[k].shape:
            return False, f"PD{k}: {len(a.get(k, []))} pairs vs {len(b.get(k, []))}"
        if np.isinf(a[k][:, 1]).sum() != np.isinf(b[k][:, 1]).sum():
            return False, f"PD{k}: different numbers of essential classes"
        fin = a[k][np.isfinite(a[k][:, 1])]
        scale = 1.0 + (float(np.abs(fin).max()) if len(fin) else 0.0)
        dist = gudhi.bottleneck_distance(a[k], b[k])
        if dist > 1e-5 * scale:
            return False, f"PD{k}: bottleneck distance {dist:.3g}"
    return True, ""


def sparse_graph(x: np.ndarray):
    """The Delaunay graph as a sparse distance matrix (what ripser / giotto-ph take for a flag complex)."""
    from scipy import sparse

    e = delaunay_edges(x)
    w = np.linalg.norm(x[e[:, 0]] - x[e[:, 1]], axis=1)
    return sparse.coo_matrix((w, (e[:, 0], e[:, 1])), shape=(len(x), len(x)))


def make_call(lib: str, kind: str, x: np.ndarray, device: str, maxdim: int = 1) -> Callable[[], dict] | None:
    """A function computing H0 .. H`maxdim` with ``lib`` and returning the diagrams, or None when not applicable."""
    dims = tuple(range(maxdim + 1))
    if lib in ("gpuph", "gpuph-fwd+bwd"):
        fn = rips_persistence if kind == "rips" else weak_alpha_persistence
        t = torch.tensor(x, dtype=torch.float32, device=device)

        def run():
            p = t.detach().requires_grad_(lib != "gpuph")
            dgm = fn(p, dims=dims)
            if lib != "gpuph":
                dgm.finite().lifetimes().sum().backward()
            if device != "cpu":
                torch.cuda.synchronize()
            return from_gpuph(dgm, maxdim)

        return run
    if lib == "ripser":
        import ripser

        if kind == "rips":
            return lambda: from_dgms(ripser.ripser(x, maxdim=maxdim)["dgms"], maxdim)
        return lambda: from_dgms(ripser.ripser(sparse_graph(x), distance_matrix=True, maxdim=maxdim)["dgms"], maxdim)
    if lib == "giotto-ph":
        import gph

        if kind == "rips":
            return lambda: from_dgms(gph.ripser_parallel(x, maxdim=maxdim, n_threads=usable_cores())["dgms"], maxdim)
        return lambda: from_dgms(gph.ripser_parallel(sparse_graph(x), metric="precomputed", maxdim=maxdim,
                                                     n_threads=usable_cores())["dgms"], maxdim)
    if lib == "gudhi":
        import gudhi

        if kind == "rips":
            if len(x) > gudhi_rips_limit(maxdim):
                return None

            def run():
                st = gudhi.RipsComplex(points=x).create_simplex_tree(max_dimension=maxdim + 1)
                pers = st.persistence(homology_coeff_field=2, min_persistence=0)
                return by_dim([(k, b, d) for k, (b, d) in pers], maxdim)

            return run

        def run_flag():
            e = delaunay_edges(x)
            w = np.linalg.norm(x[e[:, 0]] - x[e[:, 1]], axis=1)
            st = gudhi.SimplexTree()
            st.insert_batch(np.arange(len(x))[None, :], np.zeros(len(x)))
            st.insert_batch(e.T, w)
            st.expansion(maxdim + 1)
            pers = st.persistence(homology_coeff_field=2, min_persistence=0)
            return by_dim([(k, b, d) for k, (b, d) in pers], maxdim)

        return run_flag
    raise ValueError(lib)


def write_results(out: Path, rows: list[dict], args, complete: bool) -> str:
    """The ratios and the meta of ``rows``, into ``results.json`` and ``results.md`` (rewritten after every row:
    ``meta.complete`` is false until the run has finished); returns the markdown."""
    base = {r["case"]: r["median_ms"] for r in rows if r["library"] == "gpuph" and r["device"] == "cpu"
            and "median_ms" in r}
    for r in rows:
        if "median_ms" in r and r["case"] in base:
            r["gpuph_ratio"] = round(base[r["case"]] / r["median_ms"], 4)  # < 1: gpuph (CPU) is faster
    meta = collect(args.device == "cuda")
    meta["versions"]["ripser"] = version("ripser")
    meta.update({"args": {k: str(v) for k, v in vars(args).items()}, "seed": SEED,
                 "cases": {k: {"filtration": f, "points": n, "cloud": f"uniform in [0, 1]^{d}",
                               "homology": f"H0-H{top}"} for k, (f, n, d, top) in CASES.items()}})
    meta["complete"] = complete
    write_json(out / "results.json", {"meta": meta, "rows": rows})

    header = ["case", "library", "device", "median", "min", "repeats", "pairs (H0/H1[/H2])", "gpuph CPU / lib",
              "agrees"]
    table = []
    for r in rows:
        if "skipped" in r or "error" in r:
            table.append([r["case"], r["library"], r["device"], "-", "-", "-", "-", "-",
                          r.get("skipped") or r.get("error")])
            continue
        ratio = r.get("gpuph_ratio")
        table.append([r["case"], r["library"], r["device"], fmt_ms(r["median_ms"]), fmt_ms(r["min_ms"]),
                      str(r["repeats"]), "/".join(str(v) for v in r["pairs"].values()),
                      "-" if ratio is None or r["library"].startswith("gpuph") else f"{ratio:.3g}",
                      {True: "yes", False: r.get("mismatch", "no"), None: "-"}[r["agrees_with_gpuph"]]])
    v = meta["versions"]
    md = [f"# Point-cloud benchmark ({meta['date']})", "",
          f"{meta['machine']['cpu']}, {meta['machine']['cpu_count']} cores"
          + (f", {meta['gpu']} (CUDA {meta['cuda']})" if meta["gpu"] else "")
          + f", torch {v['torch']} ({meta['torch_threads']} threads), gpuph {v['gpuph']}, ripser {v['ripser']}, "
          f"gudhi {v['gudhi']}, giotto-ph {v['giotto-ph']}, scipy {v['scipy']}; load average at the end "
          f"{', '.join(f'{v:.1f}' for v in meta['load_average'] or [])}.", "",
          "Times in ms (medians) for H0 + H1 (rips-h2: H0 + H1 + H2, in the unit cube) of one cloud of uniform points "
          "in the unit square, diagrams included "
          "(gpuph: distances, Delaunay graph and critical edges too). `gpuph CPU / lib` below 1: gpuph is faster. "
          "Weak Alpha for ripser / giotto-ph / GUDHI: the flag complex of the same Delaunay graph (as a sparse "
          "distance matrix / a SimplexTree with expansion(2)), graph construction included.", "",
          markdown_table(header, table), "",
          "TopologyLayer was not importable here; the issue's reference numbers for it on this machine: RipsLayer "
          "about 5 s for 100 points with H1, AlphaLayer about 13 ms.", ""]
    if not complete:
        md[2:2] = [INCOMPLETE, ""]
    text = "\n".join(md)
    (out / "results.md").write_text(text)
    return text


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    ap.add_argument("--libraries", nargs="+", default=list(LIBRARIES), choices=list(LIBRARIES))
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--min-repeats", type=int, default=2)
    ap.add_argument("--budget", type=float, default=20.0, help="seconds of repeats per library and case")
    ap.add_argument("--threads", type=int, default=None, help="torch threads for gpuph (default: torch's)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--time-limit", type=float, default=None, metavar="S",
                    help="no new row starts after S seconds (gpuph's rows run first, the other libraries after)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    if args.time_limit is not None and args.time_limit <= 0:
        ap.error("--time-limit must be positive")
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = ["cpu"] + (["cuda"] if args.device == "cuda" else [])
    out = args.out or default_out_dir(args.device == "cuda", "-point-cloud")
    out.mkdir(parents=True, exist_ok=True)

    rows, failed = [], False
    # gpuph's rows first, on every case (the first is the reference of the others); the other libraries after them,
    # so that a time limit (--time-limit) cuts the comparison, not gpuph's numbers.
    ours = [(case, lib, dev) for case in args.cases for lib in args.libraries if lib.startswith("gpuph")
            for dev in devices]
    jobs = ours + [(case, lib, "cpu") for case in args.cases for lib in args.libraries if not lib.startswith("gpuph")]
    reference: dict[str, dict] = {}
    deadline = Deadline(args.time_limit)
    for case, lib, dev in tqdm(jobs, desc="point-cloud bench"):
        kind, n, d, top = CASES[case]
        row = {"case": case, "filtration": kind, "points": n, "library": lib, "device": dev}
        if rows:  # the files after every row (incomplete until the end): a run killed from outside keeps them
            write_results(out, rows, args, complete=False)
        if deadline.passed():
            row["skipped"] = deadline.note
            rows.append(row)
            continue
        x = cloud(n, d)
        try:
            call = make_call(lib, kind, x, dev, top)
            if call is None:
                row["skipped"] = f"more than {gudhi_rips_limit(top)} points: the full complex does not fit"
                rows.append(row)
                continue
            # CPU clock: the gpuph CUDA calls synchronise themselves (their diagrams come back to the host). A
            # warm-up longer than the budget is the only measurement (GUDHI's Rips on 500 points: ~30 s a call).
            m = measure(call, Budget(max_repeats=args.repeats, min_repeats=args.min_repeats, budget_s=args.budget,
                                     cap_s=args.budget))
            dgm = m.output
            row.update(m.summary())
            if m.notes:
                row["note"] = "; ".join(m.notes)
            row["pairs"] = {f"H{k}": int(len(v)) for k, v in dgm.items()}
            if lib == "gpuph" and dev == "cpu":
                reference[case] = dgm
            ok, why = agree(dgm, reference[case]) if case in reference else (None, "no gpuph reference")
            row["agrees_with_gpuph"] = ok
            if ok is False:
                row["mismatch"] = why
                failed = True
        except ImportError as exc:
            if lib.startswith("gpuph"):
                raise
            row["skipped"] = f"not importable ({type(exc).__name__}: {exc})"  # as the suite skips it: no failure
        except Exception as exc:  # noqa: BLE001 - a failing library is reported, not fatal
            row["error"] = f"{type(exc).__name__}: {exc}"
            traceback.print_exc()
            failed = True
        rows.append(row)

    md = write_results(out, rows, args, complete=True)
    print(md)
    print(f"wrote {out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
