"""Where the time of one gpuph call goes, kernel by kernel: ``python -m gpuph.bench.breakdown``.

For each case and field: the median time of one call after warm-up (CUDA events on the GPU), then, under
``torch.profiler`` over ``--repeats`` more calls, the time per call of

- every CUDA kernel (device time, by kernel name; the sorts and element-wise ops of torch included),
- every memory copy between host and device,
- every stage of gpuph's device pipeline: the host-side ranges named ``gpuph::...`` (``gpuph::keys``,
  ``gpuph::merge_trees`` with its ``candidates`` (their sort) and ``union_find`` (with ``--union-find host``: the
  copies and the host's union-find), H1 of 3D's ``gpuph::h1::ranks`` and ``cells``, then ``gpuph::sync``, the call's
  one copy that sizes the outputs, then ``gpuph::tree_rows``, ``gpuph::h1::apparent_rows``, ``residual_rounds`` (its
  batches of rounds, one copy each), ``residual_rows``, and where the host finishes the residual reduction
  ``to_host``, ``residual_reduction``, ``to_device``; ``gpuph::pinned_order``, absent where the merge trees' rows came
  out ordered by rank). On the GPU a stage's host time includes its waits on the device.

``--union-find`` runs each case with each named way of running the elder-rule union-find of H0 and the top
dimension (``auto``, ``serial``: one GPU thread per image and phase, ``host``: on the CPU from copies, ``relaxed``:
every merging pixel at once, ``serial-ring``: as ``serial``, 2D grids with one find per ring component;
merge_tree_pipeline.h), to compare them. ``--ranked-order-limit`` and ``--buffer-sort-cells`` set the two
choices of the pipeline that are made by size (how the merge trees' rows are put in order, and from how many padded
cells a batch sorts its candidates by the radix sort over double buffers instead of torch's), for their A/Bs.
``--relaxed-iterations N`` pins the relaxed union-find's iteration cap (0: the cap learned from the calls before,
the default), and the field ``chirp`` (sum over the axes of a sin(a / 2), a the coordinate: oscillations whose
amplitude grows, 62 relaxed iterations on 1024^2, where noise needs 11) is an input on which the cap matters: with
``--union-find relaxed --fields chirp``, ``--relaxed-iterations 32`` times the sequential fallback of every call,
and the default the learned cap, which the warm-up calls teach.

On the GPU also the memory one call allocates at its peak (``peak_mib``: torch's caching allocator, the input not
counted).

``--emulate`` runs the device pipeline's CPU emulation instead (``torch.ops.gpuph._cubical_pairs_pipeline``; no GPU
needed): its stages, without kernels. Writes ``breakdown.json`` (``{"meta", "rows"}``) and ``breakdown.md`` into
``--out`` (default ``bench/results/<device>-<date><suffix>/``, ``--out-suffix``, ``-breakdown`` unless given).

Examples::

    python -m gpuph.bench.breakdown                                   # 64x32^3, 1x128^3, 1x256^3 on the GPU
    python -m gpuph.bench.breakdown --cases 1x128^3 --fields noise --dims 1
    python -m gpuph.bench.breakdown --emulate --cases 2x16^3 --repeats 2
    python -m gpuph.bench.breakdown --cases 1x1024x1024 64x32^3 --fields noise --union-find serial host relaxed
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..apps.cli_args import output_folder
from . import meta as _meta
from .cases import FIELDS, Case, make_field, parse_case
from .report import INCOMPLETE, table, write_json
from .timing import _cpu_call_ms, _cuda_call_ms

DEFAULT_CASES = ("64x32^3", "1x128^3", "1x256^3")
CONSTRUCTION_CODES = {"V": 0, "T": 1, "freudenthal": 2}
UNION_FIND_MODES = {"auto": 0, "serial": 1, "host": 2, "relaxed": 3, "serial-ring": 4}
# Kernels and copies below this share of the profiled device time are summed into one "other" entry.
MIN_SHARE = 0.01
BREAKDOWN_FIELDS = (*FIELDS, "chirp")


def make_breakdown_field(case: Case, field: str):
    """The suite's fields (cases.make_field), and ``chirp``: float32 ``(B, *grid)``, every image the sum over the axes
    of ``a * sin(a / 2)`` (``a`` the coordinate along the axis)."""
    if field != "chirp":
        return make_field(case, field)
    axes = np.meshgrid(*[np.arange(n, dtype=np.float64) for n in case.grid], indexing="ij")
    image = sum(a * np.sin(a / 2) for a in axes).astype(np.float32)
    return np.ascontiguousarray(np.broadcast_to(image, (case.batch, *case.grid)))


@contextlib.contextmanager
def _setting(op: Callable[[int], int], value: int) -> Iterator[None]:
    """One of the pipeline's settings (``op(value)`` returns the previous one), restored after."""
    old = op(value)
    try:
        yield
    finally:
        op(old)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m gpuph.bench.breakdown", description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", nargs="+", default=list(DEFAULT_CASES), help="batch x grid, e.g. 64x32^3 1x128^3")
    p.add_argument("--fields", nargs="+", choices=BREAKDOWN_FIELDS, default=list(FIELDS),
                   help=f"default: {' '.join(FIELDS)}; chirp: oscillations of growing amplitude (above)")
    p.add_argument("--construction", choices=list(CONSTRUCTION_CODES), default="V")
    p.add_argument("--dims", default="all", help="'all' or homology dimensions (e.g. 1: H1 alone; 0,2: H0 and H2)")
    p.add_argument("--repeats", type=int, default=5, help="timed calls, then as many profiled calls")
    p.add_argument("--union-find", nargs="+", choices=list(UNION_FIND_MODES), default=["auto"],
                   help="how the merge trees' union-find runs; several: each case with each")
    p.add_argument("--ranked-order-limit", type=int, default=None,
                   help="longest run whose merge-tree rows are ordered by rank (0: always by the sorts; default: "
                        "the built-in limit); for an A/B of the two ways to the pinned order")
    p.add_argument("--buffer-sort-cells", type=int, default=None,
                   help="padded cells of a batch from which the candidates are sorted by the radix sort over double "
                        "buffers instead of torch's (0: always; default: the built-in size)")
    p.add_argument("--relaxed-iterations", type=int, default=None,
                   help="pins the relaxed union-find's iteration cap, 1 to 4096 (0 or default: the cap learned from "
                        "the calls before)")
    p.add_argument("--emulate", action="store_true", help="the device pipeline's CPU emulation (no GPU needed)")
    p.add_argument("--out", type=output_folder, default=None)
    p.add_argument("--out-suffix", default="-breakdown",
                   help="the default folder's suffix, bench/results/<device>-<date><suffix> (ignored with --out)")
    args = p.parse_args(argv)
    if args.repeats < 1:
        p.error("--repeats must be at least 1")
    if args.dims != "all" and not all(d.isdigit() for d in args.dims.split(",")):
        p.error("--dims: 'all' or homology dimensions, e.g. 1 or 0,2")
    for name in ("ranked_order_limit", "buffer_sort_cells"):
        if getattr(args, name) is not None and getattr(args, name) < 0:
            p.error(f"--{name.replace('_', '-')} must be at least 0")
    if args.relaxed_iterations is not None and not 0 <= args.relaxed_iterations <= 4096:
        p.error("--relaxed-iterations must be 0 to 4096")
    return args


def _device_ms(evt: Any) -> float:
    """An averaged profiler event's total device time in ms (the attribute's name changed across torch versions)."""
    us = getattr(evt, "device_time_total", None)
    if us is None:
        us = getattr(evt, "cuda_time_total", 0.0)
    return float(us) / 1e3


def profile_calls(fn: Callable[[], Any], repeats: int, cuda: bool) -> list[dict[str, Any]]:
    """Entries ``{name, kind, ms_per_call, calls_per_call}`` of ``repeats`` profiled calls of ``fn``: the gpuph
    stages (kind ``stage``), then the CUDA kernels and copies (``kernel`` / ``memcpy``) by device time."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:
        for _ in range(repeats):
            fn()
        if cuda:
            torch.cuda.synchronize()
    stages, device = [], []
    for evt in prof.key_averages():
        name = evt.key
        if name.startswith("gpuph::"):
            stages.append({"name": name, "kind": "stage", "ms_per_call": evt.cpu_time_total / 1e3 / repeats,
                           "calls_per_call": evt.count / repeats})
        elif cuda and _device_ms(evt) > 0 and not name.startswith(("aten::", "gpuph::", "cuda", "Activity")):
            kind = "memcpy" if name.startswith(("Memcpy", "Memset")) else "kernel"
            device.append({"name": name, "kind": kind, "ms_per_call": _device_ms(evt) / repeats,
                           "calls_per_call": evt.count / repeats})
    total = sum(e["ms_per_call"] for e in device)
    kept = [e for e in device if e["ms_per_call"] >= MIN_SHARE * total]
    rest = [e for e in device if e["ms_per_call"] < MIN_SHARE * total]
    if rest:
        kept.append({"name": f"other ({len(rest)} kernels / copies)", "kind": "kernel",
                     "ms_per_call": sum(e["ms_per_call"] for e in rest),
                     "calls_per_call": sum(e["calls_per_call"] for e in rest)})
    order = {"stage": 0, "kernel": 1, "memcpy": 1}
    entries = sorted(stages, key=lambda e: e["name"]) + sorted(kept, key=lambda e: -e["ms_per_call"])
    return sorted(entries, key=lambda e: order[e["kind"]])


def run_case(case: Case, field: str, args: argparse.Namespace, cuda: bool, union_find: str = "auto") -> dict[str, Any]:
    old = torch.ops.gpuph._union_find_mode(UNION_FIND_MODES[union_find])
    try:
        row = _run_case(case, field, args, cuda)
    finally:
        torch.ops.gpuph._union_find_mode(old)
    return {**row, "union_find": union_find}


def _run_case(case: Case, field: str, args: argparse.Namespace, cuda: bool) -> dict[str, Any]:
    import gpuph

    x = torch.from_numpy(make_breakdown_field(case, field))
    if cuda:
        x = x.cuda()
    sd = case.ndim
    dims = None if args.dims == "all" else tuple(int(d) for d in args.dims.split(","))
    mask = (1 << sd) - 1 if dims is None else sum(1 << d for d in set(dims))
    if args.emulate:
        code = CONSTRUCTION_CODES[args.construction]

        def fn():
            return torch.ops.gpuph._cubical_pairs_pipeline(x, sd, code, True, mask)
    else:

        def fn():
            return gpuph.cubical_persistence(x, construction=args.construction, dims=dims)

    call = _cuda_call_ms if cuda else _cpu_call_ms
    for _ in range(2):  # warm-up: kernels loaded, the caching allocator grown
        call(fn)
    times = [call(fn)[0] for _ in range(args.repeats)]
    peak_mib = None
    if cuda:  # the memory one call allocates at its peak, input and earlier allocations not counted
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        fn()
        torch.cuda.synchronize()
        peak_mib = float(f"{(torch.cuda.max_memory_allocated() - before) / 2**20:.4g}")
    return {
        "library": "gpuph-cuda" if cuda else ("gpuph-pipeline-emulation" if args.emulate else "gpuph-cpu"),
        "device": torch.cuda.get_device_name() if cuda else "cpu",
        "case": case.name,
        "field": field,
        "construction": args.construction,
        "dims": args.dims,
        "median_ms": float(f"{statistics.median(times):.5g}"),
        "min_ms": float(f"{min(times):.5g}"),
        "max_ms": float(f"{max(times):.5g}"),
        "repeats": len(times),
        "peak_mib": peak_mib,
        "entries": profile_calls(fn, args.repeats, cuda),
    }


def write_markdown(path: Path, meta: dict[str, Any], rows: list[dict[str, Any]]) -> Path:
    lines = [f"# gpuph time breakdown: {meta.get('gpu') or 'cpu'}", "",
             f"{meta['date']}; torch {meta['versions']['torch']}, CUDA {meta['cuda']}; gpuph at "
             f"{(meta.get('gpuph_git') or {}).get('commit')}. Times per call, in ms (profiled calls: the profiler adds "
             "overhead, so the parts need not add up to the median).", ""]
    if meta.get("complete") is False:
        lines += [INCOMPLETE, ""]
    for r in rows:
        peak = "" if r.get("peak_mib") is None else f", peak memory {r['peak_mib']:.4g} MiB"
        lines += [f"## {r['case']} {r['field']} ({r['library']}, {r['construction']}, dims {r['dims']}, union-find "
                  f"{r.get('union_find', 'auto')}): median "
                  f"{r['median_ms']:.4g} ms over {r['repeats']} calls{peak}", ""]
        lines.append(table(["part", "kind", "ms per call", "calls per call"],
                           [[e["name"], e["kind"], f"{e['ms_per_call']:.4g}", f"{e['calls_per_call']:g}"]
                            for e in r["entries"]]))
        lines.append("")
    path.write_text("\n".join(lines))
    return path


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cases = [parse_case(c) for c in args.cases]
    cuda = torch.cuda.is_available() and not args.emulate
    if not cuda and not args.emulate:
        print("no CUDA device: this breakdown is of the GPU path (use --emulate for its CPU emulation)")
        return 2
    m = _meta.collect(cuda)
    m["settings"] = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    out = args.out or _meta.default_out_dir(cuda, args.out_suffix)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    chosen = {"ranked_order_limit": args.ranked_order_limit, "buffer_sort_cells": args.buffer_sort_cells,
              "relaxed_iterations": args.relaxed_iterations}

    def write(complete: bool) -> None:
        m["complete"] = complete
        write_json(out / "breakdown.json", {"meta": m, "rows": rows})
        write_markdown(out / "breakdown.md", m, rows)

    with contextlib.ExitStack() as restore:
        for name, value in chosen.items():
            if value is not None:
                restore.enter_context(_setting(getattr(torch.ops.gpuph, f"_{name}"), value))
        for case in cases:
            for field in args.fields:
                for union_find in args.union_find:
                    rows.append({**run_case(case, field, args, cuda, union_find), **chosen})
                    print(f"{case.name} {field} union-find {union_find}: {rows[-1]['median_ms']:.4g} ms")
                    write(complete=False)  # after every row: a run stopped from outside keeps what it measured
    write(complete=True)
    print(f"wrote {out / 'breakdown.json'} and {out / 'breakdown.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
