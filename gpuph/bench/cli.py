"""``python -m gpuph.bench``: gpuph against the CPU persistence layers, timed and checked, in one run.

Every timed library's diagrams are compared with gpuph's (sorted multisets of (dim, birth, death) per image) on the
output of its warm-up call, so a wrong answer is never timed silently. Writes results.json, results.md and PNG plots
to bench/results/<device>-<date>/ (see bench/README.md). Exit status 1 when a library raised or disagreed with gpuph
(other than in the coefficient-dependent H1 of 3D grids, which is reported but explained).
"""

from __future__ import annotations

import argparse
import sys

import torch

from ..apps.cli_args import output_folder, positive_float, positive_int
from .cases import DEFAULT_CASES, FIELDS, QUICK_CASES, SEED, parse_case
from .goals import goal_cases
from .libraries import CONSTRUCTIONS, FORWARD, LIBRARIES, MODES
from .suite import Config, run_suite
from .timing import Budget


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m gpuph.bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help=f"cases {' '.join(c.name for c in QUICK_CASES)}, at most 3 repeats, about a minute on 2 cores")
    p.add_argument("--cases", nargs="+", metavar="BxHxW",
                   help="e.g. 256x28x28 64x32^3 (default: " + " ".join(c.name for c in DEFAULT_CASES)
                   + "; grids larger than 128^3 run on the GPU only)")
    p.add_argument("--goals", action="store_true",
                   help="the CUDA issue's speed goals: cases " + " ".join(goal_cases()) + ", gpuph alone, forward, "
                   "V (overrides --cases, --libraries, --modes and --constructions); --out defaults to "
                   "bench/results/<device>-<date>-goals")
    p.add_argument("--libraries", nargs="+", choices=LIBRARIES, default=list(LIBRARIES),
                   help="default: all (those not importable are skipped with the reason)")
    p.add_argument("--fields", nargs="+", choices=FIELDS, default=list(FIELDS))
    p.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    p.add_argument("--constructions", nargs="+", choices=CONSTRUCTIONS, default=list(CONSTRUCTIONS),
                   help="V is gpuph's default; T and freudenthal rows exist for the libraries that compute those")
    p.add_argument("--repeats", type=positive_int,
                   help="at most this many timed calls after the warm-up (default 15; --quick 3)")
    p.add_argument("--min-repeats", type=positive_int,
                   help="at least this many, however slow (default 3; --quick 1; at most --repeats)")
    p.add_argument("--budget", type=positive_float,
                   help="seconds of timed calls per cell; slow libraries get fewer repeats (default 10; --quick 0.5)")
    p.add_argument("--cap", type=positive_float,
                   help="seconds: a library predicted to need more for one call is skipped on that case, and one "
                   "whose warm-up took more is not repeated (default 10; --quick 2)")
    p.add_argument("--time-limit", type=positive_float, metavar="S",
                   help="after S seconds only gpuph's own cells still start (the other libraries' remaining cells are "
                   "listed as not run); the result files are rewritten after every input, so a run killed from "
                   "outside keeps what it measured")
    p.add_argument("--threads", type=positive_int, help="torch intra-op threads (gpuph on the CPU); default: torch's")
    p.add_argument("--no-cuda", action="store_true", help="run gpuph on the CPU only, even when a GPU is present")
    p.add_argument("--no-plots", action="store_true")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--seed", type=int, default=SEED)
    p.add_argument("--out", type=output_folder, help="output folder (default bench/results/<device>-<date>)")
    args = p.parse_args(argv)
    if args.repeats is not None and args.min_repeats is not None and args.min_repeats > args.repeats:
        p.error(f"--min-repeats {args.min_repeats} is more than --repeats {args.repeats}")
    if args.goals:
        args.cases, args.libraries, args.modes, args.constructions = goal_cases(), ["gpuph"], [FORWARD], ["V"]
    try:
        args.cases = [parse_case(c) for c in args.cases] if args.cases else list(
            QUICK_CASES if args.quick else DEFAULT_CASES)
    except ValueError as exc:
        p.error(str(exc))
    if args.time_limit is not None and args.time_limit <= 0:
        p.error("--time-limit must be positive")
    for name in ("repeats", "min_repeats"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


def config_from_args(args: argparse.Namespace, argv: list[str] | None) -> Config:
    q = args.quick
    budget = Budget(
        max_repeats=args.repeats or (3 if q else 15),
        min_repeats=args.min_repeats or (1 if q else 3),
        budget_s=args.budget if args.budget is not None else (0.5 if q else 10.0),
        cap_s=args.cap if args.cap is not None else (2.0 if q else 10.0),
    )
    return Config(
        cases=args.cases,
        fields=tuple(args.fields),
        modes=tuple(args.modes),
        libraries=tuple(args.libraries),
        constructions=tuple(args.constructions),
        budget=budget,
        out_dir=args.out,
        out_suffix="-goals" if args.goals else "",
        cuda=False if args.no_cuda else None,
        seed=args.seed,
        quick=q,
        progress=not args.no_progress,
        plots=not args.no_plots,
        argv=list(sys.argv[1:] if argv is None else argv),
        time_limit_s=args.time_limit,
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    res = run_suite(config_from_args(args, argv))
    print((res.out_dir / "results.md").read_text())
    print("wrote " + ", ".join(str(f) for f in res.files))
    if res.failures:
        print("\n".join(["", "FAILURES (errors, or diagrams that differ from gpuph's):", *res.failures]),
              file=sys.stderr)
        return 1
    return 0
