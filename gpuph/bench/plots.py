"""PNG plots: time per image against grid size, log-log, one line per library, one figure per field and mode."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _grid_label(r: dict[str, Any]) -> str:
    sides = r["grid"]
    side = f"{sides[0]}{'²' if len(sides) == 2 else '³'}" if len(set(sides)) == 1 else "x".join(map(str, sides))
    return f"{side}\nB={r['batch']}"


def plot_times(out_dir: Path, rows: list[dict[str, Any]], meta: dict[str, Any]) -> list[Path]:
    """One ``time-<field>-<mode>.png`` per field and mode; returns the files written (none without matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    from matplotlib.ticker import NullLocator

    timed = [r for r in rows if r["median_ms"] is not None]
    # colour by library, line and marker by construction; gpuph first in the legends, drawn thicker
    libraries = sorted({r["library"] for r in timed}, key=lambda lib: (not lib.startswith("gpuph"), lib))
    colors = {lib: f"C{i % 10}" for i, lib in enumerate(libraries)}
    styles = {"V": ("-", "o"), "T": ("--", "s"), "freudenthal": (":", "^")}
    order = list(styles)
    device = meta.get("gpu") or f"CPU, {meta['machine']['cpu_count']} cores"
    files = []
    for field in dict.fromkeys(r["field"] for r in timed):
        for mode in dict.fromkeys(r["mode"] for r in timed):
            sel = [r for r in timed if r["field"] == field and r["mode"] == mode]
            ndims = sorted({r["ndim"] for r in sel})
            if not sel:
                continue
            fig, axes = plt.subplots(1, len(ndims), figsize=(6.5 * len(ndims), 5.2), squeeze=False)
            for ax, nd in zip(axes[0], ndims):
                pts = [r for r in sel if r["ndim"] == nd]
                series = {(r["library"], r["construction"], r["label"]) for r in pts}
                for lib, construction, lab in sorted(series, key=lambda s: (libraries.index(s[0]), order.index(s[1]))):
                    xy = sorted((r["pixels"] // r["batch"], r["median_ms"] / r["batch"])
                                for r in pts if r["label"] == lab)
                    ls, marker = styles.get(construction, ("-.", "d"))
                    ax.plot([p for p, _ in xy], [t for _, t in xy], ls, marker=marker, color=colors[lib], label=lab,
                            linewidth=2.2 if lib.startswith("gpuph") else 1.2)
                ticks = {r["pixels"] // r["batch"]: _grid_label(r) for r in pts}
                ax.set_xscale("log")
                ax.set_yscale("log")
                ax.set_xticks(sorted(ticks))
                ax.set_xticklabels([ticks[t] for t in sorted(ticks)], fontsize=8)
                ax.xaxis.set_minor_locator(NullLocator())
                ax.set_xlabel("grid (pixels per image, log scale); B = batch size")
                ax.set_ylabel("median ms per image (batch time / B)")
                ax.set_title(f"{nd}D, {field}, {mode}")
                ax.grid(True, which="major", alpha=0.3)
                ax.legend(fontsize=7)
            fig.suptitle(f"gpuph benchmark, {device}, {meta['date'][:10]}", fontsize=10)
            fig.tight_layout()
            path = out_dir / f"time-{field}-{mode.replace('+', '-')}.png"
            fig.savefig(path, dpi=110)
            plt.close(fig)
            files.append(path)
    return files
