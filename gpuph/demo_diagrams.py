"""gpuph diagrams demo: persistence diagrams of MNIST digits and of a 3D volume, with critical pixels, timings and a
figure.

Run it as ``python -m gpuph --diagrams`` (or ``python -m gpuph.demo_diagrams``)::

    python -m gpuph --diagrams --out out/ --digits 8 --volume-size 32

By default it reads the 64 MNIST test digits embedded in ``gpuph/data/mnist_sample.npz`` (see the README there for
attribution); ``--mnist-dir`` reads the raw idx files (``t10k-images-idx3-ubyte[.gz]``) instead.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import torch

import gpuph

from .apps import cli_args
from .apps.mnist import load_mnist

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "mnist_sample.npz")
DIM_COLORS = ("tab:blue", "tab:orange", "tab:green")
TOP_PAIRS = 3  # most persistent pairs printed per image and dimension


# ------------------------------------------------------------------------------------------------------------- data
def load_embedded(n: int) -> tuple[np.ndarray, np.ndarray]:
    with np.load(DATA) as f:
        images, labels = f["images"], f["labels"]
    if n > len(images):
        raise SystemExit(f"gpuph demo: the embedded sample has {len(images)} digits; pass --mnist-dir for more")
    return images[:n], labels[:n]


def load_idx(directory: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n`` test images and labels from MNIST's raw idx files (gzip or not)."""
    try:
        return load_mnist(directory, "test", limit=n)
    except (FileNotFoundError, ValueError) as err:
        raise SystemExit(f"gpuph demo: {err}") from err


def make_volume(size: int, seed: int = 0) -> np.ndarray:
    """A seeded ``size^3`` float32 volume: Gaussian blobs (H0), a torus (H1) and a hollow sphere (H2), plus noise."""
    rng = np.random.default_rng(seed)
    s = float(size)
    z, y, x = np.meshgrid(*(np.arange(size, dtype=np.float64),) * 3, indexing="ij")
    vol = np.zeros((size,) * 3)
    # Torus in a plane of constant z: distance to its core circle.
    cz, cy, cx, R = 0.5 * s, 0.32 * s, 0.35 * s, 0.2 * s
    ring = np.sqrt((np.hypot(y - cy, x - cx) - R) ** 2 + (z - cz) ** 2)
    vol = np.maximum(vol, 1.0 * np.exp(-0.5 * (ring / (0.05 * s)) ** 2))
    # Hollow sphere: a shell around a dark interior.
    cz, cy, cx, R = 0.5 * s, 0.68 * s, 0.68 * s, 0.17 * s
    shell = np.sqrt((z - cz) ** 2 + (y - cy) ** 2 + (x - cx) ** 2) - R
    vol = np.maximum(vol, 0.85 * np.exp(-0.5 * (shell / (0.04 * s)) ** 2))
    # A few blobs of different heights.
    for amp, (bz, by, bx) in zip((0.7, 0.55, 0.4), ((0.3, 0.78, 0.2), (0.7, 0.2, 0.8), (0.25, 0.15, 0.75))):
        d2 = (z - bz * s) ** 2 + (y - by * s) ** 2 + (x - bx * s) ** 2
        vol += amp * np.exp(-0.5 * d2 / (0.06 * s) ** 2)
    vol += 0.05 * rng.random(vol.shape)
    return vol.astype(np.float32)


# ----------------------------------------------------------------------------------------------------------- report
def _timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, (time.perf_counter() - t) * 1e3


def _where(index: int, shape: tuple[int, ...]) -> str:
    if index < 0:
        return "-"
    return "(" + ",".join(str(int(c)) for c in np.unravel_index(index, shape)) + ")"


def describe(dgm: gpuph.Diagrams, b: int, indent: str = "    ") -> list[str]:
    """The most persistent pairs of image ``b`` per dimension: values and critical pixels."""
    one = dgm.image(b).detach().to("cpu")
    lines = []
    for k in range(dgm.ndim):
        d = one.in_dim(k)
        for i in range(min(TOP_PAIRS, len(d))):
            birth, death = d.pairs[i].tolist()
            bi, di = int(d.birth_index[i]), int(d.death_index[i])
            lines.append(
                f"{indent}H{k}  birth {birth:6.3f} at {_where(bi, dgm.spatial_shape):<12}"
                f" death {death:6.3f} at {_where(di, dgm.spatial_shape):<12}"
                + ("essential" if di < 0 else f"life {abs(birth - death):.3f}")
            )
        if len(d) > TOP_PAIRS:
            lines.append(f"{indent}H{k}  ... {len(d) - TOP_PAIRS} more")
    return lines


# ----------------------------------------------------------------------------------------------------------- figure
def plot_diagram(ax, dgm: gpuph.Diagrams, b: int, lo: float, hi: float, title: str, size: float = 14) -> None:
    """Birth on x, death on y; essential classes (death -inf) as triangles on the bottom edge."""
    one = dgm.image(b).detach().to("cpu")
    pairs = one.pairs.double().numpy()
    dims = one.dim.numpy()
    ess = one.death_index.numpy() < 0
    pad = 0.06 * (hi - lo)
    bottom = lo - pad
    ax.plot([bottom, hi + pad], [bottom, hi + pad], color="0.6", lw=0.8, zorder=0)
    ax.axhline(bottom, color="0.85", lw=0.6, zorder=0)
    for k in range(dgm.ndim):
        m = (dims == k) & ~ess
        if m.any():
            ax.scatter(pairs[m, 0], pairs[m, 1], s=size, color=DIM_COLORS[k], alpha=0.75, lw=0, label=f"H{k}")
        m = (dims == k) & ess
        if m.any():
            ax.scatter(pairs[m, 0], np.full(m.sum(), bottom), s=3 * size, marker="v", color=DIM_COLORS[k],
                       edgecolors="k", linewidths=0.6, clip_on=False, zorder=3)
    ax.set_xlim(bottom, hi + pad)
    ax.set_ylim(bottom, hi + pad)
    ax.set_aspect("equal")
    ax.set_title(title, fontsize=9)
    ax.tick_params(labelsize=7)


def save_figure(path: str, images, labels, dgm, vol, vdgm, vol_ms: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    n = min(len(images), 8)
    fig = plt.figure(figsize=(max(2.0 * n, 12.0), 9.5))
    top = fig.add_gridspec(2, n, top=0.89, bottom=0.53, hspace=0.25, wspace=0.3)
    for b in range(n):
        ax = fig.add_subplot(top[0, b])
        ax.imshow(images[b], cmap="gray", vmin=0, vmax=1)
        # The critical pixels of the most persistent H1 classes: where each loop closes (birth) and fills (death).
        h1 = dgm.image(b).in_dim(1)
        for bi, di in zip(h1.birth_index[:3].tolist(), h1.death_index[:3].tolist()):
            for idx, marker in ((bi, "o"), (di, "x")):
                r, c = divmod(idx, images.shape[-1])
                ax.plot(c, r, marker, ms=7, mfc="none", mec=DIM_COLORS[1], mew=1.8)
        counts = dgm.counts()[b].tolist()
        ax.set_title(f"label {int(labels[b])}: H0={counts[0]} H1={counts[1]}", fontsize=9)
        ax.axis("off")
        plot_diagram(fig.add_subplot(top[1, b]), dgm, b, 0.0, 1.0, f"digit {b}", size=18)

    bottom = fig.add_gridspec(1, 3, top=0.44, bottom=0.05, wspace=0.25, width_ratios=[1, 1, 1.15])
    side = vol.shape[0]
    ax = fig.add_subplot(bottom[0, 0])
    ax.imshow(vol.max(axis=0), cmap="magma", vmin=float(vol.min()), vmax=float(vol.max()))
    ax.set_title(f"{side}^3 volume, max over axis 0:\ntorus, hollow sphere, 3 blobs, noise", fontsize=9)
    ax.axis("off")
    ax = fig.add_subplot(bottom[0, 1])
    ax.imshow(vol[side // 2], cmap="magma", vmin=float(vol.min()), vmax=float(vol.max()))
    ax.set_title(f"slice {side // 2} of axis 0:\nthe torus's tube and the sphere's shell", fontsize=9)
    ax.axis("off")
    ax = fig.add_subplot(bottom[0, 2])
    counts = vdgm.counts()[0].tolist()
    plot_diagram(ax, vdgm, 0, float(vol.min()), float(vol.max()),
                 f"volume: H0={counts[0]} H1={counts[1]} H2={counts[2]} ({vol_ms:.0f} ms)", size=12)
    ax.set_xlabel("birth", fontsize=8)
    ax.set_ylabel("death", fontsize=8)
    ax.text(0.04, 0.96, "near the diagonal: noise\nfar below it: the shapes", transform=ax.transAxes,
            ha="left", va="top", fontsize=8, color="0.3")

    handles = [Line2D([], [], marker="o", ls="", color=c, label=f"H{k}") for k, c in enumerate(DIM_COLORS)]
    handles.append(Line2D([], [], marker="v", ls="", color="0.5", mec="k", label="essential (death = -inf)"))
    handles.append(Line2D([], [], marker="o", ls="", mfc="none", mec=DIM_COLORS[1], mew=1.8, label="H1 birth pixel"))
    handles.append(Line2D([], [], marker="x", ls="", mec=DIM_COLORS[1], mew=1.8, label="H1 death pixel"))
    fig.legend(handles=handles, loc="upper center", ncol=len(handles), fontsize=9, frameon=False,
               bbox_to_anchor=(0.5, 0.965))
    fig.suptitle("gpuph: superlevel persistence diagrams, V construction (x: birth, y: death; birth >= death)",
                 y=0.99, fontsize=12)
    fig.savefig(path, dpi=100)
    plt.close(fig)


# ------------------------------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m gpuph --diagrams", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=cli_args.output_folder, default="out/",
                   help="output folder for demo_diagrams.png (default: out/)")
    p.add_argument("--digits", type=cli_args.positive_int, default=8, help="number of MNIST digits (default: 8)")
    p.add_argument("--mnist-dir", default=None,
                   help="folder with MNIST's raw t10k idx files (default: the 64 embedded digits)")
    p.add_argument("--volume-size", type=cli_args.int_at_least(4), default=32,
                   help="side of the 3D demo volume (default: 32)")
    p.add_argument("--device", type=cli_args.device, default="cpu", help="torch device for the inputs (default: cpu)")
    args = p.parse_args(argv)

    images, labels = load_idx(args.mnist_dir, args.digits) if args.mnist_dir else load_embedded(args.digits)
    print(f"gpuph {gpuph.__version__}, torch {torch.__version__}, device {args.device}, "
          f"{torch.get_num_threads()} CPU threads")

    # --- MNIST: one batched call for all digits; pixel values in [0, 1].
    x = torch.from_numpy(images.astype(np.float32) / 255.0).to(args.device).requires_grad_(True)
    gpuph.cubical_persistence(x[:1])  # warm-up (loads the op, builds the cell tables)
    dgm, ms = _timed(lambda: gpuph.cubical_persistence(x, superlevel=True, construction="V"))
    print(f"\nMNIST: {len(images)} digits of 28x28, superlevel V, H0+H1 in one call: {ms:.1f} ms")
    print(f"  {dgm}")
    counts = dgm.counts().tolist()
    for b in range(len(images)):
        print(f"  digit {b}: label {int(labels[b])}, classes H0={counts[b][0]} H1={counts[b][1]}"
              "   (pairs: birth, death at critical pixel (row,col))")
        print("\n".join(describe(dgm, b)))

    # Gradients reach exactly the critical pixels: one scatter-add.
    loss = dgm.finite().lifetimes().sum()
    _, ms = _timed(loss.backward)
    nz = int((x.grad != 0).sum())
    print(f"  backward of total finite persistence: {ms:.1f} ms; nonzero gradient at {nz} pixels "
          f"(critical pixels of {len(dgm.finite())} finite pairs)")

    # --- A 3D volume: H0, H1 and H2.
    vol = make_volume(args.volume_size)
    v = torch.from_numpy(vol).to(args.device)
    vdgm, vol_ms = _timed(lambda: gpuph.cubical_persistence(v[None], superlevel=True, construction="V"))
    vc = vdgm.counts()[0].tolist()
    print(f"\nVolume {vol.shape}: torus + hollow sphere + 3 blobs + uniform noise (amplitude 0.05), superlevel V, "
          f"H0+H1+H2: {vol_ms:.1f} ms")
    print(f"  classes H0={vc[0]} H1={vc[1]} H2={vc[2]} (the noise makes many short pairs; the long ones are the "
          "shapes)")
    print("\n".join(describe(vdgm, 0)))

    # --- Figure.
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "demo_diagrams.png")
    try:
        save_figure(path, images.astype(np.float32) / 255.0, labels, dgm.detach().to("cpu"), vol,
                    vdgm.detach().to("cpu"), vol_ms)
    except ImportError:
        print("\nmatplotlib is not installed: no figure (pip install matplotlib)", file=sys.stderr)
        return 0
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
