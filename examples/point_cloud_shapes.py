"""The TopologyLayer paper's Figure 4: reshape a random 2D point cloud by gradient descent on weak-Alpha losses.

    python examples/point_cloud_shapes.py [--out DIR | --out FILE.png] [--points 100] [--steps 500] [--lr 0.01]
                                          [--seed 0]

From one cloud of uniform points in the unit square, each panel runs projected gradient descent (Adam) on one loss,
with the paper's persistence energy E(p, q, i0; PD_k) = sum_{i >= i0} |d_i - b_i|^p ((d_i + b_i) / 2)^q (bars
ranked by lifetime, longest first, ``gpuph.losses.persistence_energy``) of the weak Alpha diagrams:

    (a) -E(2,0,2; PD0)                    spread the points into clusters (long H0 bars but the first)
    (b)  E(2,0,2; PD0)                    pull them into one component
    (c) -E(2,0,1; PD1)                    grow holes
    (d) -E(2,1,1; PD1) + E(2,0,2; PD0)    grow holes far from the origin while staying connected
    (e)  E(2,0,1; PD1)                    remove the holes

Keeping the clouds bounded: after every step the points are projected back onto the unit square (clamped to
[0, 1]^2), as the paper keeps its clouds in a box; the maximising losses would otherwise grow without end by
scaling the cloud. Writes the figure (six panels: the initial cloud and the five results) as a PNG: to --out itself
when it ends in ``.png``, otherwise (or when it is an existing folder) to ``point_cloud_shapes.png`` in the folder
--out (default: ``out``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's gpuph, installed or not

from gpuph.apps.cli_args import output_folder, positive_float, positive_int  # noqa: E402
from gpuph.losses import persistence_energy  # noqa: E402
from gpuph.point_cloud import weak_alpha_persistence  # noqa: E402

Loss = Callable[[torch.Tensor], torch.Tensor]


def _energy(x: torch.Tensor, dim: int, p: float, q: float, i0: int) -> torch.Tensor:
    return persistence_energy(weak_alpha_persistence(x), dim, p=p, q=q, i0=i0)


LOSSES: dict[str, tuple[str, Loss]] = {
    "a": ("-E(2,0,2; PD0)", lambda x: -_energy(x, 0, 2, 0, 2)),
    "b": ("E(2,0,2; PD0)", lambda x: _energy(x, 0, 2, 0, 2)),
    "c": ("-E(2,0,1; PD1)", lambda x: -_energy(x, 1, 2, 0, 1)),
    "d": ("-E(2,1,1; PD1) + E(2,0,2; PD0)", lambda x: -_energy(x, 1, 2, 1, 1) + _energy(x, 0, 2, 0, 2)),
    "e": ("E(2,0,1; PD1)", lambda x: _energy(x, 1, 2, 0, 1)),
}


def initial_cloud(n: int, seed: int, dtype=torch.float32) -> torch.Tensor:
    """``n`` uniform points in the unit square."""
    return torch.rand(n, 2, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def optimize(x0: torch.Tensor, loss_fn: Loss, steps: int, lr: float, progress: bool = False) -> tuple[torch.Tensor,
                                                                                                       list[float]]:
    """Projected gradient descent (Adam, then clamping into the unit square) from ``x0`` (not modified).
    Returns the final cloud and the loss at every step (the first is the loss of ``x0``)."""
    x = x0.detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([x], lr=lr)
    history = []
    steps_iter = range(steps)
    if progress:
        from tqdm import tqdm

        steps_iter = tqdm(steps_iter, leave=False)
    for _ in steps_iter:
        opt.zero_grad()
        loss = loss_fn(x)
        loss.backward()
        history.append(loss.item())
        opt.step()
        with torch.no_grad():
            x.clamp_(0.0, 1.0)
    history.append(float(loss_fn(x.detach())))
    return x.detach(), history


def run(n: int, steps: int, lr: float, seed: int, progress: bool = False) -> dict[str, tuple[torch.Tensor, list]]:
    x0 = initial_cloud(n, seed)
    out = {"init": (x0, [])}
    for key, (_, fn) in LOSSES.items():
        out[key] = optimize(x0, fn, steps, lr, progress)
    return out


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 6, figsize=(21, 4.4))
    for ax, key in zip(axes, ["init", *LOSSES]):
        x, hist = results[key]
        ax.scatter(x[:, 0].numpy(), x[:, 1].numpy(), s=8, color="k")
        title = "initial" if key == "init" else f"({key}) {LOSSES[key][0]}"
        if hist:
            title += f"\nloss {hist[0]:.3g} -> {hist[-1]:.3g}"
        ax.set_title(title, fontsize=9)
        ax.set_xlim(-0.03, 1.03)
        ax.set_ylim(-0.03, 1.03)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def figure_path(out: Path) -> Path:
    """Where the figure goes: ``out`` itself when it ends in ``.png`` (and is no existing folder), else
    ``out/point_cloud_shapes.png``."""
    return out if out.suffix.lower() == ".png" and not out.is_dir() else out / "point_cloud_shapes.png"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=output_folder, default=Path("out"),
                    help="the PNG file to write when it ends in .png, otherwise (or when it is an existing folder) "
                         "the folder to write point_cloud_shapes.png into (default: out)")
    ap.add_argument("--points", type=positive_int, default=100, help="points in the cloud (default: 100)")
    ap.add_argument("--steps", type=positive_int, default=500, help="Adam steps per loss (default: 500)")
    ap.add_argument("--lr", type=positive_float, default=0.01, help="Adam's learning rate (default: 0.01)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    path = figure_path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    from tqdm import tqdm

    results = {"init": (initial_cloud(args.points, args.seed), [])}
    for key in tqdm(list(LOSSES), desc="losses"):
        results[key] = optimize(results["init"][0], LOSSES[key][1], args.steps, args.lr, progress=True)
        hist = results[key][1]
        tqdm.write(f"({key}) {LOSSES[key][0]:32s} loss {hist[0]:.4g} -> {hist[-1]:.4g}")
    plot(results, path)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
