"""Before/after report of a topology fine-tuning: image grids, latent interpolations, metrics table (markdown+JSON).

Used by ``examples/gan_mnist.py`` and ``python -m gpuph`` (the demo). Figures need matplotlib (Agg backend).
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .._common import host_numpy

__all__ = ["METRIC_COLUMNS", "compare_generators", "metrics_markdown", "montage", "save_grid_figure",
           "save_interpolation_figure", "write_metrics"]

# The paper's Figure 13 columns, with the direction in which each is better.
METRIC_COLUMNS = (("MMD-L2", "lower"), ("COV-L2", "higher"), ("MMD-Wass", "lower"), ("COV-Wass", "higher"),
                  ("IS", "higher"))


def montage(images: Tensor | np.ndarray, cols: int, pad: int = 2, fill: float = 0.15) -> np.ndarray:
    """``(N, 1, H, W)`` or ``(N, H, W)`` images tiled row-major into one 2D array, ``pad`` pixels of ``fill`` between
    them (and around), missing tiles left as ``fill``."""
    x = host_numpy(images) if isinstance(images, Tensor) else np.asarray(images)
    if x.ndim == 4:
        x = x[:, 0]
    n, h, w = x.shape
    rows = max(1, -(-n // cols))
    out = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad), fill, dtype=np.float32)
    for i in range(n):
        r, c = divmod(i, cols)
        out[pad + r * (h + pad): pad + r * (h + pad) + h, pad + c * (w + pad): pad + c * (w + pad) + w] = x[i]
    return out


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _frame_multi(ax, counts: Sequence[int], cols: int, h: int = 28, pad: int = 2) -> None:
    """Red frames around the tiles whose image has more than one component."""
    from matplotlib.patches import Rectangle

    for i, c in enumerate(counts):
        if c > 1:
            r, k = divmod(i, cols)
            ax.add_patch(Rectangle((pad + k * (h + pad) - 1.5, pad + r * (h + pad) - 1.5), h + 2, h + 2, fill=False,
                                   edgecolor="tab:red", lw=1.2))


def save_grid_figure(path: str | os.PathLike, before: Tensor, after: Tensor, counts_before: Sequence[int],
                     counts_after: Sequence[int], threshold: float, cols: int = 8, title: str = "") -> None:
    """The paper's Figures 1/11: the same latent vectors through the baseline and the fine-tuned generator, side by
    side; a red frame marks each image with more than one component of lifetime ``> threshold``."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(11, 6.2))
    for ax, imgs, counts, name in ((axes[0], before, counts_before, "before (baseline)"),
                                   (axes[1], after, counts_after, "after topology fine-tuning")):
        ax.imshow(montage(imgs, cols), cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
        _frame_multi(ax, counts, cols)
        multi = int(sum(c > 1 for c in counts))
        ax.set_title(f"{name}\nmean components {np.mean(counts):.2f}; {multi}/{len(counts)} with more than one",
                     fontsize=10)
        ax.axis("off")
    fig.suptitle(title or f"same latent vectors; red frame: more than one component of lifetime > {threshold:g}",
                 fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def save_interpolation_figure(path: str | os.PathLike, before: Tensor, after: Tensor, title: str = "",
                              names: tuple[str, str] = ("baseline", "topology")) -> None:
    """The paper's Figure 12: ``before``/``after`` are ``(P, S, 1, 28, 28)`` images along P latent segments of S
    steps; each segment is drawn as two rows, ``before`` (labelled ``names[0]``) on top of ``after``."""
    plt = _plt()
    p, s = before.shape[:2]
    rows = []
    for i in range(p):
        rows.append(before[i])
        rows.append(after[i])
    grid = montage(torch.cat(rows), s)
    fig, ax = plt.subplots(figsize=(s * 0.62 + 1.6, 2 * p * 0.62 + 0.8))
    ax.imshow(grid, cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
    for i in range(p):
        for j, name in enumerate(names):
            ax.text(-3, 2 + (2 * i + j) * 30 + 14, name, ha="right", va="center", fontsize=8,
                    color="0.2" if j == 0 else "tab:blue")
    ax.axis("off")
    ax.set_title(title or "latent interpolations: baseline (upper row of each pair) vs after fine-tuning (lower)",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


@torch.no_grad()
def compare_generators(
    generators: dict[str, torch.nn.Module],
    reference: Tensor,
    out_dir: str | os.PathLike,
    classifier: torch.nn.Module | None = None,
    n_samples: int = 1000,
    wasserstein_samples: int | None = None,
    thresholds: Sequence[float] = (0.5, 0.1),
    grid: int = 64,
    interp_pairs: int = 4,
    interp_steps: int = 10,
    seed: int = 1234,
    meta: dict[str, Any] | None = None,
    notes: Sequence[str] = (),
    figures: bool = True,
    real_samples: Tensor | None = None,
) -> dict[str, Any]:
    """Evaluates generators on the same seeded latent vectors and writes the report into ``out_dir``.

    Args:
        generators: ``{name: generator}``, in table order; the first is "before" and the last "after" in the
            figures (``grid_before_after.png``, ``interpolation_before_after.png``).
        reference: ``(R, 1, 28, 28)`` real digits in ``[0, 1]`` (MMD/COV reference set).
        classifier: MNIST classifier for the Inception score (None: no IS).
        n_samples: generated digits per generator for the metrics; ``wasserstein_samples``: how many of them (and of
            the references) enter MMD-Wass/COV-Wass.
        thresholds: lifetimes for the component counts (the first one frames the grid).
        grid, interp_pairs, interp_steps: sizes of the figures; seed: of the latent vectors.
        meta, notes: stored in ``metrics.json`` / appended to ``metrics.md``.
        figures: write the PNG figures (needs matplotlib; skipped with a warning without it).
        real_samples: ``(n, 1, 28, 28)`` real digits not in ``reference``: evaluated like a generator, as the row
            ``"real digits (held out)"`` (what a perfect generator would score).

    Returns:
        ``{"metrics": {name: {...}}, "files": [...], "wasserstein_backend": ...}``.
    """
    from .gan import component_counts, generate, interpolate_latents, latent_vectors
    from .gan_metrics import evaluate_samples, wasserstein_backend

    names = list(generators)
    first = generators[names[0]]
    nz = (first.module if hasattr(first, "module") else first).nz
    z = latent_vectors(n_samples, nz, seed)
    samples = {name: generate(g, z).cpu() for name, g in generators.items()}
    rows = {name: evaluate_samples(s, reference, classifier, thresholds, wasserstein_samples)
            for name, s in samples.items()}
    if real_samples is not None:
        rows["real digits (held out)"] = evaluate_samples(real_samples.detach().cpu().float(), reference, classifier,
                                                          thresholds, wasserstein_samples)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = []
    if figures:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            warnings.warn("gpuph: matplotlib is not installed: no figures (pip install matplotlib)", stacklevel=2)
            figures = False
    if figures and len(names) >= 2:
        b, a = names[0], names[-1]
        k = min(grid, n_samples)
        t = thresholds[0]
        path = out / "grid_before_after.png"
        save_grid_figure(path, samples[b][:k], samples[a][:k], component_counts(samples[b][:k], t).tolist(),
                         component_counts(samples[a][:k], t).tolist(), t,
                         title=f"{b} (left) vs {a} (right), same latent vectors; red frame: more than one "
                               f"component of lifetime > {t:g}")
        files.append(path)
        ends = latent_vectors(2 * interp_pairs, nz, seed + 1)
        zi = interpolate_latents(ends[:interp_pairs], ends[interp_pairs:], interp_steps).reshape(-1, nz)
        ib = generate(generators[b], zi).cpu().reshape(interp_pairs, interp_steps, 1, 28, 28)
        ia = generate(generators[a], zi).cpu().reshape(interp_pairs, interp_steps, 1, 28, 28)
        path = out / "interpolation_before_after.png"
        save_interpolation_figure(path, ib, ia, title=f"latent interpolations: {b} (upper row of each pair) vs "
                                                      f"{a} (lower)", names=(b.split(" (")[0], a.split(" (")[0]))
        files.append(path)
    meta = dict(meta or {})
    meta.update({"n_samples": n_samples, "reference_size": len(reference),
                 # what MMD/COV-Wass used (evaluate_samples takes the first this many of each side)
                 "wasserstein_samples": min(wasserstein_samples or n_samples, n_samples),
                 "wasserstein_references": min(wasserstein_samples or len(reference), len(reference)),
                 "wasserstein_backend": wasserstein_backend(), "latent_seed": seed, "thresholds": list(thresholds)})
    files += list(write_metrics(out, rows, meta, notes))
    return {"metrics": rows, "files": [str(f) for f in files], "wasserstein_backend": meta["wasserstein_backend"]}


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1e4 else f"{v:.3e}"
    return str(v)


def metrics_markdown(rows: dict[str, dict[str, float]], notes: Sequence[str] = ()) -> str:
    """A markdown table, one row per generator (``rows = {"baseline": {...}, "topology": {...}}``), the paper's
    columns first, then the component counts."""
    keys: list[str] = [k for k, _ in METRIC_COLUMNS if any(k in r for r in rows.values())]
    extra = list(dict.fromkeys(k for r in rows.values() for k in r if k.startswith("components>")))
    keys += extra
    better = {k: f"{v} is better" for k, v in METRIC_COLUMNS}
    better.update({k: "mean per image" for k in extra})  # no direction: compare with the real digits
    head = "| generator | " + " | ".join(f"{k} ({better[k]})" for k in keys) + " |"
    lines = [head, "|---" * (len(keys) + 1) + "|"]
    for name, r in rows.items():
        cells = []
        for k in keys:
            v = r.get(k)
            cell = "-" if v is None else _fmt(v)
            if k == "IS" and "IS-std" in r:
                cell += f" +- {r['IS-std']:.2g}"
            cells.append(cell)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines + [""] + [f"- {n}" for n in notes]) + "\n"


def write_metrics(out_dir: str | os.PathLike, rows: dict[str, dict[str, float]], meta: dict[str, Any],
                  notes: Sequence[str] = ()) -> tuple[Path, Path]:
    """Writes ``metrics.json`` (``{"meta": ..., "metrics": rows}``) and ``metrics.md`` into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    jpath, mpath = out / "metrics.json", out / "metrics.md"
    jpath.write_text(json.dumps({"meta": meta, "metrics": rows}, indent=2, default=str) + "\n")
    mpath.write_text(metrics_markdown(rows, notes))
    return jpath, mpath
