"""Topology fine-tuning of a 3D voxel GAN (the TopologyLayer paper's Figure 14, on procedural shapes).

Trains a 3D-GAN-style generator on :mod:`gpuph.apps.voxel_shapes` (chairs, tables, lamps, tori, blobs; each one
connected solid), fine-tunes it for ``--ft-iters`` (20) batch iterations with ``L_GAN + topo_weight * E(1, 0, 2;
PD0)`` (superlevel V diagrams of the generated grids), and, as a control, for the same iterations with the GAN loss
alone. Then it counts the connected components of ``--eval-n`` (1000) samples of each generator (same latents) and of
as many training shapes:

- ``pd0``: superlevel PD0 classes (V construction, 6-connectivity) with lifetime above ``--threshold``, the
  essential class included;
- ``label``: components of the voxels ``>= --level``, ``scipy.ndimage.label`` with 6-connectivity (the 3D cross);
  0 for an empty grid.

Outputs in ``--out``: ``metrics.json``, ``metrics.md`` (tables), ``components_hist.png``, ``pairs.png`` (renderings
of a few samples before/after, the largest component in blue, the others in red), ``projections.png`` (max
projections along the 3 axes), ``losses.png``; checkpoints in ``--ckpt-dir``.

CPU (small, the default): ``python examples/gan_voxels.py --out docs/gan_voxels``
GPU (3D-GAN-like widths): ``python examples/gan_voxels.py --device cuda --ch 64 --batch 64 --iters 20000
--n-train 20000``
Reuse a baseline: ``--baseline CKPT`` skips the training.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import sys
import time
from pathlib import Path

import matplotlib
import numpy as np
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's gpuph, installed or not

from gpuph.apps.cli_args import (  # noqa: E402
    device,
    existing_file,
    finite_float,
    non_negative_float,
    non_negative_int,
    output_folder,
    positive_float,
    positive_int,
)
from gpuph.apps.voxel_gan import (  # noqa: E402
    VoxelDiscriminator,
    VoxelGenerator,
    count_components,
    count_pd0_components,
    load_checkpoint,
    sample_latents,
    save_checkpoint,
    topology_loss,
    train,
)
from gpuph.apps.voxel_shapes import VoxelShapes  # noqa: E402

ROWS = ("data", "baseline", "gan_only", "topo")


def labels(ft_iters: int) -> dict[str, str]:
    """The table and legend name of each row, with the number of fine-tuning iterations."""
    return {"data": "training shapes", "baseline": "baseline", "gan_only": f"+{ft_iters} it. GAN loss only",
            "topo": f"+{ft_iters} it. GAN + topology loss"}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=output_folder, default=Path("out/gan_voxels"))
    p.add_argument("--ckpt-dir", type=output_folder, default=None, help="default: OUT/checkpoints")
    p.add_argument("--device", type=device, default="cpu", help="cpu, cuda, cuda:1, ... (default: cpu)")
    p.add_argument("--threads", type=non_negative_int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-train", type=positive_int, default=2000, help="procedural training shapes (at least --batch)")
    p.add_argument("--nz", type=positive_int, default=64)
    p.add_argument("--ch", type=positive_int, default=8, help="generator/discriminator width (3D-GAN: 64)")
    p.add_argument("--batch", type=positive_int, default=32)
    p.add_argument("--iters", type=positive_int, default=300, help="baseline GAN iterations")
    p.add_argument("--lr-g", type=positive_float, default=1e-3)
    p.add_argument("--lr-d", type=positive_float, default=2e-4)
    p.add_argument("--d-acc-max", type=non_negative_float, default=0.8,
                   help="update D only while its batch accuracy is below")
    p.add_argument("--baseline", type=existing_file, default=None,
                   help="load this baseline checkpoint instead of training")
    p.add_argument("--ft-iters", type=non_negative_int, default=20, help="fine-tuning iterations")
    p.add_argument("--topo-weight", type=non_negative_float, default=0.01,
                   help="weight of E(1,0,2;PD0) (mean over the batch) in the generator's loss")
    p.add_argument("--eval-n", type=positive_int, default=1000, help="samples per generator for the tables")
    p.add_argument("--eval-seed", type=int, default=12345)
    p.add_argument("--threshold", type=non_negative_float, default=0.5,
                   help="PD0 lifetime threshold for the pd0 count")
    p.add_argument("--level", type=finite_float, default=0.5, help="occupancy level for the label count")
    p.add_argument("--pairs", type=positive_int, default=6, help="samples rendered before/after (at most --eval-n)")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    if args.n_train < args.batch:
        p.error(f"--n-train ({args.n_train}) must be at least --batch ({args.batch})")
    return args


@torch.no_grad()
def generate(gen: VoxelGenerator, z: torch.Tensor, batch: int = 100) -> torch.Tensor:
    """Samples in eval mode (batch-norm running statistics), so that each sample depends on its latent only."""
    gen.eval()
    out = torch.cat([gen(z[s:s + batch]).cpu() for s in range(0, len(z), batch)])
    gen.train()
    return out


def stats(v: torch.Tensor, args: argparse.Namespace) -> dict:
    pd0 = torch.cat([count_pd0_components(v[s:s + 100], args.threshold) for s in range(0, len(v), 100)])
    label = count_components(v, args.level)
    topo = torch.cat([topology_loss(v[s:s + 100], reduction="none") for s in range(0, len(v), 100)])
    occupancy = (v >= args.level).float().mean((1, 2, 3, 4))
    out = {"n": len(v), "pd0": pd0.tolist(), "label": label.tolist()}
    for name, c in (("pd0", pd0), ("label", label)):
        out[f"{name}_mean"] = c.float().mean().item()
        out[f"{name}_frac_one"] = (c == 1).float().mean().item()
    out["label_frac_empty"] = (label == 0).float().mean().item()
    out["topo_mean"] = topo.mean().item()
    out["occupancy_mean"] = occupancy.mean().item()
    return out


def hist_table(rows: dict, key: str, names: dict[str, str], top: int = 6) -> list[str]:
    head = "| | " + " | ".join(str(k) for k in range(top)) + f" | >= {top} | mean |"
    lines = [head, "|" + "---|" * (top + 3)]
    for r in ROWS:
        c = np.asarray(rows[r][key])
        frac = [(c == k).mean() for k in range(top)] + [(c >= top).mean()]
        lines.append(f"| {names[r]} | " + " | ".join(f"{100 * f:.1f}%" for f in frac) + f" | {c.mean():.2f} |")
    return lines


def write_tables(rows: dict, meta: dict, args: argparse.Namespace) -> None:
    names = labels(args.ft_iters)
    md = [f"Components of {args.eval_n} samples (same latents for the three generators) and of {args.eval_n} "
          "training shapes; percentages of samples with k components.", "",
          f"**pd0**: superlevel PD0 classes (V construction, 6-connectivity) with lifetime > {args.threshold}, "
          "the essential class included.", ""]
    md += hist_table(rows, "pd0", names)
    md += ["", f"**label**: 6-connected components of the voxels >= {args.level} (`scipy.ndimage.label`, "
           "cross structuring element); 0 = empty grid.", ""]
    md += hist_table(rows, "label", names)
    md += ["", "| | mean E(1,0,2;PD0) | mean occupancy (voxels >= level) | empty grids |", "|---|---|---|---|"]
    for r in ROWS:
        s = rows[r]
        md.append(f"| {names[r]} | {s['topo_mean']:.3f} | {100 * s['occupancy_mean']:.2f}% | "
                  f"{100 * s['label_frac_empty']:.1f}% |")
    md += ["", "Run: " + ", ".join(f"{k}={v}" for k, v in meta.items() if not isinstance(v, (list, dict)))]
    (args.out / "metrics.md").write_text("\n".join(md) + "\n")
    summary = {r: {k: v for k, v in rows[r].items() if k not in ("pd0", "label")} for r in ROWS}
    hist = {r: {key: np.bincount(rows[r][key]).tolist() for key in ("pd0", "label")} for r in ROWS}
    (args.out / "metrics.json").write_text(json.dumps({"meta": meta, "summary": summary, "histograms": hist},
                                                      indent=1) + "\n")


def plot_hist(rows: dict, args: argparse.Namespace) -> None:
    names = labels(args.ft_iters)
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    top = 8
    for ax, key, title in zip(axes, ("pd0", "label"),
                              (f"PD0 classes with lifetime > {args.threshold}",
                               f"6-connected components of voxels >= {args.level}")):
        width = 0.8 / len(ROWS)
        for i, r in enumerate(ROWS):
            c = np.minimum(np.asarray(rows[r][key]), top)
            frac = np.bincount(c, minlength=top + 1) / len(c)
            ax.bar(np.arange(top + 1) + (i - 1.5) * width, frac, width, label=names[r])
        ax.set_xticks(range(top + 1), [str(k) for k in range(top)] + [f">={top}"])
        ax.set_xlabel("components")
        ax.set_ylabel("fraction of samples")
        ax.set_title(title, fontsize=10)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out / "components_hist.png", dpi=110)
    plt.close(fig)


def _components_colours(grid: np.ndarray) -> np.ndarray:
    """RGBA per voxel: the largest 6-connected component blue, the others red."""
    from scipy import ndimage

    lab, n = ndimage.label(grid, structure=ndimage.generate_binary_structure(3, 1))
    colours = np.zeros(grid.shape + (4,))
    if n:
        largest = np.bincount(lab.ravel())[1:].argmax() + 1
        colours[lab == largest] = (0.2, 0.4, 0.8, 1.0)
        colours[(lab > 0) & (lab != largest)] = (0.9, 0.1, 0.1, 1.0)
    return colours


def plot_pairs(before: torch.Tensor, after: torch.Tensor, idx: list[int], args: argparse.Namespace) -> None:
    fig = plt.figure(figsize=(2.4 * len(idx), 5.0))
    for row, (name, v) in enumerate((("baseline", before), ("fine-tuned", after))):
        for col, i in enumerate(idx):
            ax = fig.add_subplot(2, len(idx), row * len(idx) + col + 1, projection="3d")
            grid = (v[i, 0].numpy() >= args.level).transpose(2, 1, 0)  # grid axis 0 is vertical: matplotlib's z
            ax.voxels(grid, facecolors=_components_colours(grid), edgecolor="none")
            ax.set_axis_off()
            ncomp = count_components(v[i:i + 1], args.level).item()
            ax.set_title(f"{name} #{i}: {ncomp} comp.", fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out / "pairs.png", dpi=90)
    plt.close(fig)


def plot_projections(before: torch.Tensor, after: torch.Tensor, idx: list[int], args: argparse.Namespace) -> None:
    fig, axes = plt.subplots(len(idx), 6, figsize=(9, 1.6 * len(idx)), squeeze=False)
    for r, i in enumerate(idx):
        for k, (name, v) in enumerate((("before", before), ("after", after))):
            for a in range(3):
                ax = axes[r, 3 * k + a]
                proj = v[i, 0].amax(a).numpy()
                ax.imshow(proj if a == 0 else proj[::-1], cmap="gray", vmin=0, vmax=1)  # vertical axis up
                ax.set_xticks([])
                ax.set_yticks([])
                if r == 0:
                    ax.set_title(f"{name}: max over axis {a}", fontsize=7)
    fig.tight_layout()
    fig.savefig(args.out / "projections.png", dpi=90)
    plt.close(fig)


def plot_losses(logs: dict, args: argparse.Namespace) -> None:
    names = labels(args.ft_iters)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.2))
    base = logs["baseline"]
    if base:
        for key in ("d_loss", "g_loss"):
            axes[0].plot([x[key] for x in base], label=key, lw=0.8)
        axes[0].set_title("baseline training")
        axes[0].set_xlabel("iteration")
        axes[0].legend()
    for name in ("gan_only", "topo"):
        axes[1].plot([x["g_loss"] for x in logs[name]], label=f"{names[name]}: g_loss")
    axes[1].plot([x["topo"] for x in logs["topo"]], label="topo: E(1,0,2;PD0) of the batch", ls="--")
    axes[1].set_title("fine-tuning")
    axes[1].set_xlabel("iteration")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(args.out / "losses.png", dpi=100)
    plt.close(fig)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    ckpt = args.ckpt_dir or args.out / "checkpoints"
    device = torch.device(args.device)
    progress = not args.no_progress
    times = {}
    t0 = time.perf_counter()
    data = VoxelShapes(args.n_train, seed=args.seed).shapes
    times["data_s"] = time.perf_counter() - t0
    logs = {"baseline": []}

    torch.manual_seed(args.seed)
    t0 = time.perf_counter()
    if args.baseline is not None:
        gen, disc, extra = load_checkpoint(args.baseline)
        opt_state = extra.get("opt_state")
        logs["baseline"] = extra.get("logs", [])
    else:
        gen, disc = VoxelGenerator(args.nz, args.ch), VoxelDiscriminator(args.ch)
        gen.to(device), disc.to(device)
        logs["baseline"], opt_state = train(
            gen, disc, data, args.iters, batch_size=args.batch, lr_g=args.lr_g, lr_d=args.lr_d,
            d_acc_max=args.d_acc_max, seed=args.seed, progress=progress, desc="baseline")
        save_checkpoint(ckpt / "baseline.pt", gen, disc, opt_state=opt_state, logs=logs["baseline"], args=vars(args))
    times["baseline_s"] = time.perf_counter() - t0
    gen.to(device), disc.to(device)

    models = {"baseline": gen}
    for name, weight in (("gan_only", 0.0), ("topo", args.topo_weight)):
        g, d = copy.deepcopy(gen), copy.deepcopy(disc)
        t0 = time.perf_counter()
        logs[name], state = train(
            g, d, data, args.ft_iters, batch_size=args.batch, lr_g=args.lr_g, lr_d=args.lr_d, topo_weight=weight,
            d_acc_max=args.d_acc_max, seed=args.seed + 1, opt_state=opt_state, progress=progress, desc=name)
        times[f"{name}_s"] = time.perf_counter() - t0
        save_checkpoint(ckpt / f"{name}.pt", g, d, opt_state=state, logs=logs[name])
        models[name] = g

    t0 = time.perf_counter()
    z = sample_latents(args.eval_n, gen.nz, args.eval_seed, device)  # a --baseline has its own nz
    samples = {name: generate(g, z) for name, g in models.items()}
    samples["data"] = VoxelShapes(args.eval_n, seed=args.eval_seed).shapes.float()
    rows = {r: stats(samples[r], args) for r in ROWS}
    times["eval_s"] = time.perf_counter() - t0

    # render the samples whose component count changed most, then the first ones
    before, after = np.asarray(rows["baseline"]["label"]), np.asarray(rows["topo"]["label"])
    order = np.argsort(-(before - after), kind="stable")
    idx = [int(i) for i in order[:args.pairs]]
    plot_hist(rows, args)
    plot_pairs(samples["baseline"], samples["topo"], idx, args)
    plot_projections(samples["baseline"], samples["topo"], idx, args)
    plot_losses(logs, args)
    meta = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    meta.update({f"time_{k}": round(v, 1) for k, v in times.items()})
    meta.update({"torch": torch.__version__, "torch_threads": torch.get_num_threads(), "machine": platform.machine(),
                 "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor(),
                 "g_params": sum(p.numel() for p in gen.parameters()),
                 "d_params": sum(p.numel() for p in disc.parameters())})
    write_tables(rows, meta, args)
    print((args.out / "metrics.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
