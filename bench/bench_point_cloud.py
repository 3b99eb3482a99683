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
import datetime as _dt
import re
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from common import RESULTS, fmt_ms, import_gpuph, machine_meta, markdown_table, measure, summarize, usable_cores
from common import write_json as _write_json
from tqdm import tqdm

gpuph = import_gpuph()
from gpuph.delaunay import delaunay_edges  # noqa: E402
from gpuph.point_cloud import rips_persistence, weak_alpha_persistence  # noqa: E402

SEED = 20240611
# name -> (filtration, number of points)
CASES = {"rips-100": ("rips", 100), "rips-500": ("rips", 500), "rips-2000": ("rips", 2000),
         "alpha-1000": ("alpha", 1000), "alpha-10000": ("alpha", 10000)}
LIBRARIES = ("gpuph", "gpuph-fwd+bwd", "ripser", "gudhi", "giotto-ph")
# GUDHI's RipsComplex stores every simplex (n^3 / 6 triangles): past this it needs minutes and gigabytes.
GUDHI_RIPS_MAX_POINTS = 500


def cloud(n: int) -> np.ndarray:
    return np.random.default_rng(SEED + n).random((n, 2))


def by_dim(items) -> dict[int, np.ndarray]:
    out = {0: [], 1: []}
    for k, b, d in items:
        if k in out and d > b:
            out[k].append((b, d))
    return {k: np.array(sorted(v), dtype=np.float64).reshape(-1, 2) for k, v in out.items()}


def from_dgms(dgms) -> dict[int, np.ndarray]:
    return by_dim([(k, b, d) for k in (0, 1) for b, d in np.asarray(dgms[k], dtype=np.float64)])


def from_gpuph(dgm) -> dict[int, np.ndarray]:
    p = dgm.pairs.detach().cpu().double().numpy()
    return by_dim([(int(k), b, d) for k, (b, d) in zip(dgm.dim.tolist(), p)])


def agree(a: dict, b: dict) -> tuple[bool, str]:
    """Same number of pairs and essential classes per dimension, and a bottleneck distance (GUDHI) within float32
    rounding: a matching, since sorting two diagrams whose values differ by rounding can pair the wrong rows."""
    import gudhi

    for k in (0, 1):
        if a[k].shape != b[k].shape:
            return False, f"PD{k}: {len(a[k])} pairs vs {len(b[k])}"
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


def make_call(lib: str, kind: str, x: np.ndarray, device: str) -> Callable[[], dict] | None:
    """A function computing H0 + H1 with ``lib`` and returning the diagrams, or None when not applicable."""
    if lib in ("gpuph", "gpuph-fwd+bwd"):
        fn = rips_persistence if kind == "rips" else weak_alpha_persistence
        t = torch.tensor(x, dtype=torch.float32, device=device)

        def run():
            p = t.detach().requires_grad_(lib != "gpuph")
            dgm = fn(p)
            if lib != "gpuph":
                dgm.finite().lifetimes().sum().backward()
            if device != "cpu":
                torch.cuda.synchronize()
            return from_gpuph(dgm)

        return run
    if lib == "ripser":
        import ripser

        if kind == "rips":
            return lambda: from_dgms(ripser.ripser(x, maxdim=1)["dgms"])
        return lambda: from_dgms(ripser.ripser(sparse_graph(x), distance_matrix=True, maxdim=1)["dgms"])
    if lib == "giotto-ph":
        import gph

        if kind == "rips":
            return lambda: from_dgms(gph.ripser_parallel(x, maxdim=1, n_threads=usable_cores())["dgms"])
        return lambda: from_dgms(gph.ripser_parallel(sparse_graph(x), metric="precomputed", maxdim=1,
                                                     n_threads=usable_cores())["dgms"])
    if lib == "gudhi":
        import gudhi

        if kind == "rips":
            if len(x) > GUDHI_RIPS_MAX_POINTS:
                return None

            def run():
                st = gudhi.RipsComplex(points=x).create_simplex_tree(max_dimension=2)
                pers = st.persistence(homology_coeff_field=2, min_persistence=0)
                return by_dim([(k, b, d) for k, (b, d) in pers])

            return run

        def run_flag():
            e = delaunay_edges(x)
            w = np.linalg.norm(x[e[:, 0]] - x[e[:, 1]], axis=1)
            st = gudhi.SimplexTree()
            st.insert_batch(np.arange(len(x))[None, :], np.zeros(len(x)))
            st.insert_batch(e.T, w)
            st.expansion(2)
            pers = st.persistence(homology_coeff_field=2, min_persistence=0)
            return by_dim([(k, b, d) for k, (b, d) in pers])

        return run_flag
    raise ValueError(lib)


def device_tag(device: str) -> str:
    if device == "cpu":
        return f"cpu-{usable_cores()}core"
    return re.sub(r"[^A-Za-z0-9]+", "-", torch.cuda.get_device_name(0)).strip("-").lower()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    ap.add_argument("--libraries", nargs="+", default=list(LIBRARIES), choices=list(LIBRARIES))
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--min-repeats", type=int, default=2)
    ap.add_argument("--budget", type=float, default=20.0, help="seconds of repeats per library and case")
    ap.add_argument("--threads", type=int, default=None, help="torch threads for gpuph (default: torch's)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = ["cpu"] + (["cuda"] if args.device == "cuda" else [])
    out = args.out or RESULTS / f"{device_tag(args.device)}-{_dt.date.today().isoformat()}-point-cloud"
    out.mkdir(parents=True, exist_ok=True)

    rows, failed = [], False
    jobs = []
    for case in args.cases:
        for lib in args.libraries:
            for dev in devices if lib.startswith("gpuph") else ["cpu"]:
                jobs.append((case, lib, dev))
    reference: dict[str, dict] = {}
    for case, lib, dev in tqdm(jobs, desc="point-cloud bench"):
        kind, n = CASES[case]
        x = cloud(n)
        row = {"case": case, "filtration": kind, "points": n, "library": lib, "device": dev}
        try:
            call = make_call(lib, kind, x, dev)
            if call is None:
                row["skipped"] = f"more than {GUDHI_RIPS_MAX_POINTS} points: the full complex does not fit"
                rows.append(row)
                continue
            times, dgm = measure(call, args.repeats, args.min_repeats, args.budget)
            row.update(summarize(times))
            row["pairs"] = {f"H{k}": int(len(v)) for k, v in dgm.items()}
            if lib == "gpuph" and dev == "cpu":
                reference[case] = dgm
            ok, why = agree(dgm, reference[case]) if case in reference else (None, "no gpuph reference")
            row["agrees_with_gpuph"] = ok
            if ok is False:
                row["mismatch"] = why
                failed = True
        except Exception as exc:  # noqa: BLE001 - a failing library is reported, not fatal
            row["error"] = f"{type(exc).__name__}: {exc}"
            traceback.print_exc()
            failed = True
        rows.append(row)

    base = {r["case"]: r["median_ms"] for r in rows if r["library"] == "gpuph" and r["device"] == "cpu"
            and "median_ms" in r}
    for r in rows:
        if "median_ms" in r and r["case"] in base:
            r["gpuph_ratio"] = round(base[r["case"]] / r["median_ms"], 4)  # < 1: gpuph (CPU) is faster
    meta = machine_meta(("ripser", "gudhi", "scipy"))
    try:
        from importlib.metadata import version

        meta["giotto_ph"] = version("giotto-ph")
    except Exception:  # noqa: BLE001 - not installed
        meta["giotto_ph"] = None
    meta.update({"args": {k: str(v) for k, v in vars(args).items()}, "seed": SEED,
                 "cases": {k: {"filtration": f, "points": n, "cloud": "uniform in [0, 1]^2"}
                           for k, (f, n) in CASES.items()}})
    _write_json(out / "results.json", {"meta": meta, "rows": rows})

    header = ["case", "library", "device", "median", "min", "repeats", "pairs (H0/H1)", "gpuph CPU / lib", "agrees"]
    table = []
    for r in rows:
        if "skipped" in r or "error" in r:
            table.append([r["case"], r["library"], r["device"], "-", "-", "-", "-", "-",
                          r.get("skipped") or r.get("error")])
            continue
        ratio = r.get("gpuph_ratio")
        table.append([r["case"], r["library"], r["device"], fmt_ms(r["median_ms"]), fmt_ms(r["min_ms"]),
                      str(r["repeats"]), f"{r['pairs']['H0']}/{r['pairs']['H1']}",
                      "-" if ratio is None or r["library"].startswith("gpuph") else f"{ratio:.3g}",
                      {True: "yes", False: r.get("mismatch", "no"), None: "-"}[r["agrees_with_gpuph"]]])
    md = [f"# Point-cloud benchmark ({meta['date']})", "",
          f"{meta['machine']['cpu']}, {meta['machine']['cores']} cores, torch {meta['torch']} "
          f"({meta['torch_threads']} threads), ripser {meta.get('ripser')}, gudhi {meta.get('gudhi')}, "
          f"giotto-ph {meta.get('giotto_ph')}, scipy {meta.get('scipy')}; load average at the end "
          f"{', '.join(f'{v:.1f}' for v in meta['load_average'] or [])}.", "",
          "Times in ms (medians) for H0 + H1 of one cloud of uniform points in the unit square, diagrams included "
          "(gpuph: distances, Delaunay graph and critical edges too). `gpuph CPU / lib` below 1: gpuph is faster. "
          "Weak Alpha for ripser / giotto-ph / GUDHI: the flag complex of the same Delaunay graph (as a sparse "
          "distance matrix / a SimplexTree with expansion(2)), graph construction included.", "",
          markdown_table(header, table), "",
          "TopologyLayer was not importable here; the issue's reference numbers for it on this machine: RipsLayer "
          "about 5 s for 100 points with H1, AlphaLayer about 13 ms.", ""]
    (out / "results.md").write_text("\n".join(md))
    print("\n".join(md))
    print(f"wrote {out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
