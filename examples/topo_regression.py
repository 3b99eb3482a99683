"""Topological priors for linear regression (the TopologyLayer paper's Figures 7-9), with gpuph.

``y = X beta* + eps``, ``X ~ N(0, I)``, ``eps ~ N(0, 0.05^2)``, ``p = 100`` coefficients, ``n`` samples. Three
kinds of beta*: entries in {-1, 0, 1} and in {1, 2, 3} (Top penalties on the weak-Alpha PD0 of the weights as a
point cloud on the line: few clusters of values), and three sawteeth (Top penalties on the superlevel PD0 of beta as
a signal on the line: few local maxima). Penalties: none (minimum-norm least squares), L1, L2, TV, smooth TV, Top1 =
E(1,0,2; PD0), Top2 = E(1,0,4; PD0). Lambda by K-fold cross-validation on a log grid over [1e-4, 1e1]; every
(n, seed, fold, lambda) problem of one penalty is one batch of weight vectors fitted together with Adam.

Outputs in ``--out``: ``mse.png`` (MSE of beta-hat vs n, one panel per kind), ``results.json``, ``results.md``.

CPU (small, the default): ``python examples/topo_regression.py --out docs/regression``
GPU (the paper's scale): ``python examples/topo_regression.py --device cuda --seeds 10 --folds 5 --steps 3000
--ns 10,20,30,40,50,60,70,80,90,100,110,120,130,140,150``
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import matplotlib
import torch
from tqdm import tqdm

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's gpuph, installed or not

from gpuph.apps.cli_args import (  # noqa: E402
    device,
    int_at_least,
    non_negative_int,
    output_folder,
    positive_float,
    positive_int,
)
from gpuph.apps.regularization import PENALTIES, make_problems, run_experiment  # noqa: E402

N_ROWS = 150  # rows drawn per problem (more when --ns asks for more): the first n of them make the problem of size n
KINDS = {"pm1": ("cluster", "beta* in {-1, 0, 1}"), "123": ("cluster", "beta* in {1, 2, 3}"),
         "sawtooth": ("maxima", "beta*: three sawteeth")}
LABELS = {"none": "none (min-norm LS)", "l1": "L1", "l2": "L2", "tv": "TV", "smooth_tv": "smooth TV",
          "top1": "Top1 E(1,0,2)", "top2": "Top2 E(1,0,4)"}


def comma_list(choices):
    """argparse ``type=``: a comma-separated list of values among ``choices`` (the text kept as given)."""

    def convert(text: str) -> str:
        items = text.split(",")
        bad = [v for v in items if v not in choices]
        if bad:
            raise argparse.ArgumentTypeError(f"invalid choice {bad[0]!r} (comma-separated, among: "
                                             f"{', '.join(choices)})")
        return text

    return convert


def positive_int_list(text: str) -> str:
    """argparse ``type=``: a comma-separated list of ints >= 1 (the text kept as given)."""
    for v in text.split(","):
        try:
            positive_int(v)
        except argparse.ArgumentTypeError:
            where = f" (in {text!r})" if "," in text else ""
            raise argparse.ArgumentTypeError(f"{v!r}{where} is not an int >= 1") from None
    return text


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=output_folder, default=Path("out/regression"))
    p.add_argument("--device", type=device, default="cpu", help="cpu, cuda, cuda:1, ... (default: cpu)")
    p.add_argument("--seeds", type=positive_int, default=3, help="problems per (kind, n): seeds 0..S-1")
    p.add_argument("--folds", type=int_at_least(2), default=3, help="cross-validation folds (at least 2)")
    p.add_argument("--steps", type=positive_int, default=2000, help="Adam steps per fit")
    p.add_argument("--lr", type=positive_float, default=0.05)
    p.add_argument("--n-lambdas", type=positive_int, default=11, help="log grid over [1e-4, 1e1]")
    p.add_argument("--ns", type=positive_int_list, default="10,30,50,70,90,110,130,150",
                   help="sample sizes, comma-separated, each at least --folds")
    p.add_argument("--kinds", type=comma_list(tuple(KINDS)), default=",".join(KINDS),
                   help=f"comma-separated, among {', '.join(KINDS)} (default: all)")
    p.add_argument("--penalties", type=comma_list(PENALTIES), default=",".join(PENALTIES),
                   help=f"comma-separated, among {', '.join(PENALTIES)} (default: all)")
    p.add_argument("--threads", type=non_negative_int, default=0, help="torch CPU threads (0: torch's default)")
    args = p.parse_args(argv)
    small = [n for n in args.ns.split(",") if int(n) < args.folds]
    if small:
        p.error(f"--ns: every sample size must be at least --folds ({args.folds}), got {small[0]}")
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    ns = [int(v) for v in args.ns.split(",")]
    kinds = args.kinds.split(",")
    penalties = args.penalties.split(",")
    seeds = list(range(args.seeds))
    lambdas = torch.logspace(-4, 1, args.n_lambdas, dtype=torch.float64)
    results: dict = {}
    t_all = time.time()
    total = len(kinds) * sum(args.steps for pen in penalties if pen != "none")
    with tqdm(total=total, desc="fits (Adam steps)") as bar:
        for kind in kinds:
            setting, _ = KINDS[kind]
            # The draws of X and eps depend on n_max (torch's randn fills a tensor as a whole), so that a seed's
            # problem of size n is the same in every run, the rows come from one fixed size (at least N_ROWS).
            problems = make_problems(kind, seeds, n_max=max(N_ROWS, *ns), device=args.device)
            results[kind] = {}
            for pen in penalties:
                t0 = time.time()
                r = run_experiment(problems, ns, pen, setting, lambdas=lambdas, folds=args.folds, steps=args.steps,
                                   lr=args.lr, progress=bar.update)
                results[kind][pen] = {
                    "mse_mean": r["mse"].mean(1).tolist(), "mse_std": r["mse"].std(1).tolist() if len(seeds) > 1
                    else [0.0] * len(ns), "lambda_median": r["lam"].median(1).values.tolist(),
                    "max_rel_change_last10pct": r["rel_change"], "seconds": time.time() - t0,
                }
    meta = {
        "device": str(torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor()
                      or platform.machine()),
        "cpu_threads": torch.get_num_threads(), "torch": torch.__version__, "seconds_total": time.time() - t_all,
        "seeds": seeds, "folds": args.folds, "steps": args.steps, "lr": args.lr, "ns": ns, "p": 100,
        "noise_std": 0.05, "lambdas": lambdas.tolist(), "penalties": penalties, "kinds": kinds,
    }
    (args.out / "results.json").write_text(json.dumps({"meta": meta, "results": results}, indent=1))
    write_markdown(args.out / "results.md", meta, results, ns)
    plot(args.out / "mse.png", results, ns, kinds, penalties)
    print(f"wrote {args.out}/results.json, results.md, mse.png in {meta['seconds_total']:.0f} s")


def write_markdown(path: Path, meta: dict, results: dict, ns: list[int]) -> None:
    lines = [f"Device: {meta['device']} ({meta['cpu_threads']} torch threads), torch {meta['torch']}; "
             f"{meta['seconds_total']:.0f} s in all. Seeds {meta['seeds']}, {meta['folds']}-fold CV over "
             f"{len(meta['lambdas'])} lambdas in [1e-4, 1e1], Adam {meta['steps']} steps (lr {meta['lr']}, cosine "
             "decay). Entries: MSE of beta-hat (mean over seeds); last column: the largest share of the "
             "objective's decrease (from w = 0) made in the last 10% of the steps, among the chosen fits (a "
             "convergence check).", ""]
    for kind, per in results.items():
        lines += [f"### {KINDS[kind][1]} (Top on {KINDS[kind][0]} PD0)", "",
                  "| penalty | " + " | ".join(f"n={n}" for n in ns) + " | median lambda | rel. change |",
                  "|---|" + "---|" * (len(ns) + 2)]
        for pen, r in per.items():
            lam = "-" if pen == "none" else f"{sorted(r['lambda_median'])[len(ns) // 2]:.2g}"
            lines.append(f"| {LABELS[pen]} | " + " | ".join(f"{v:.4f}" for v in r["mse_mean"])
                         + f" | {lam} | {r['max_rel_change_last10pct']:.1e} |")
        lines.append("")
    path.write_text("\n".join(lines))


def plot(path: Path, results: dict, ns: list[int], kinds: list[str], penalties: list[str]) -> None:
    fig, axes = plt.subplots(1, len(kinds), figsize=(5 * len(kinds), 4), squeeze=False)
    for ax, kind in zip(axes[0], kinds):
        for pen in penalties:
            r = results[kind][pen]
            style = "-" if pen.startswith("top") else "--"
            ax.plot(ns, r["mse_mean"], style, marker="o", ms=3, label=LABELS[pen],
                    lw=2 if pen.startswith("top") else 1)
        ax.set_yscale("symlog", linthresh=1e-3)
        ax.set_xlabel("n (samples)")
        ax.set_ylabel("MSE of beta-hat")
        ax.set_title(KINDS[kind][1])
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
