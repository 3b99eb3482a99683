"""TopModel vs an MLP and a CNN on MNIST under targeted gradient attacks (the TopologyLayer paper's Figures 15-16).

TopModel classifies directional-sweep persistence features (:mod:`gpuph.apps.directional`: 8 directions, top-k bars
of PD0 and PD1, computed by gpuph for the whole batch x 8 directions in one call). The three models are trained on
``--n-train`` MNIST training images, evaluated on the test set, then attacked with the iterative targeted fast
gradient sign method (:func:`gpuph.apps.topmodel.targeted_attack`), retargeting ``--n-attack`` test images to random
other classes.

Outputs in ``--out``: ``metrics.json``, ``metrics.md``, ``grid_<model>.png`` (Figure 15: row = source digit, column =
target class, each cell the attacked image; red frame = attack failed; one row per digit class present among the
test images), ``example.png`` (Figure 16: one digit attacked on each model, with the perturbations).

CPU (small, the default): ``python examples/topmodel_attacks.py --out docs/topmodel``
GPU (the paper's scale): ``python examples/topmodel_attacks.py --device cuda --n-train 60000 --epochs 10
--n-attack 1000``
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import matplotlib
import numpy as np
import torch
from tqdm import tqdm

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's gpuph, installed or not

from gpuph.apps.cli_args import (  # noqa: E402
    device,
    finite_float,
    int_at_least,
    non_negative_float,
    non_negative_int,
    output_folder,
    positive_float,
    positive_int,
)
from gpuph.apps.directional import directional_topk  # noqa: E402
from gpuph.apps.mnist import find_mnist_dir, load_mnist, missing_files  # noqa: E402
from gpuph.apps.topmodel import CNN, MLP, TopModel, accuracy, random_targets, targeted_attack, train_classifier  # noqa: E402,E501

MODELS = ("topmodel", "mlp", "cnn")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=output_folder, default=Path("out/topmodel"))
    p.add_argument("--mnist", type=Path, default=None,
                   help="folder of the raw idx files (default: $GPUPH_MNIST_DIR or ../shared/data/mnist)")
    p.add_argument("--device", type=device, default="cpu", help="cpu, cuda, cuda:1, ... (default: cpu)")
    p.add_argument("--n-train", type=int_at_least(2), default=20000,
                   help="training images (at least 2: TopModel standardises its features by their spread)")
    p.add_argument("--n-test", type=positive_int, default=10000)
    p.add_argument("--epochs", type=positive_int, default=3, help="epochs of the MLP and the CNN")
    p.add_argument("--top-epochs", type=positive_int, default=30,
                   help="epochs of TopModel's head (on precomputed features)")
    p.add_argument("--n-attack", type=positive_int, default=200,
                   help="test images to retarget (paper: 1000; capped at --n-test)")
    p.add_argument("--step", type=positive_float, default=0.01, help="L-inf size of one attack step")
    p.add_argument("--steps", type=positive_int, default=100, help="most attack steps")
    p.add_argument("--k", type=positive_int, default=4, help="bars per direction and dimension in TopModel's features")
    p.add_argument("--alpha", type=non_negative_float, default=0.1, help="intensity weight in the sweep filtration")
    p.add_argument("--threshold", type=finite_float, default=0.5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=non_negative_int, default=0, help="torch CPU threads (0: torch's default)")
    args = p.parse_args(argv)
    found = find_mnist_dir(args.mnist)
    if found is None:
        p.error(f"--mnist {args.mnist or '(default)'}: no MNIST idx files found; this example needs them")
    missing = missing_files(found)
    if missing:
        p.error(f"--mnist {args.mnist or '(default)'}: {', '.join(missing)} missing in {found}; "
                "this example needs both splits")
    return args


def batched_features(model: TopModel, x: torch.Tensor, batch: int = 512) -> torch.Tensor:
    out = []
    with torch.no_grad():
        for start in tqdm(range(0, len(x), batch), desc="TopModel features", leave=False):
            out.append(model.features(x[start : start + batch]))
    return torch.cat(out)


def as_tensors(images, labels) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 idx arrays -> float32 images in [0, 1] and int64 labels."""
    return torch.from_numpy(images.astype(np.float32) / 255.0), torch.from_numpy(labels.astype(np.int64))


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    dev = torch.device(args.device)
    t_all = time.time()
    x_tr, y_tr = as_tensors(*load_mnist(args.mnist, "train", args.n_train))
    x_te, y_te = as_tensors(*load_mnist(args.mnist, "test", args.n_test))
    x_tr, y_tr, x_te, y_te = x_tr.to(dev), y_tr.to(dev), x_te.to(dev), y_te.to(dev)
    models = {"topmodel": TopModel(k=args.k, threshold=args.threshold, alpha=args.alpha).to(dev),
              "mlp": MLP().to(dev), "cnn": CNN().to(dev)}
    metrics: dict = {}
    for name, model in models.items():
        t0 = time.time()
        if name == "topmodel":
            f_tr = batched_features(model, x_tr)
            f_te = batched_features(model, x_te)
            mean, std = f_tr.mean(0), f_tr.std(0).clamp_min(1e-3)
            # fold the standardisation into the first layer, so that model(x) works on images
            head = torch.nn.Sequential(Standardize(mean, std), *model.head)
            model.head = head
            steps = args.top_epochs * -(-len(f_tr) // 128)
            with tqdm(total=steps, desc="train topmodel", leave=False) as bar:
                train_classifier(model.head, f_tr, y_tr, epochs=args.top_epochs, seed=args.seed, progress=bar.update)
            acc = accuracy(model.head, f_te, y_te)
        else:
            steps = args.epochs * -(-len(x_tr) // 128)
            with tqdm(total=steps, desc=f"train {name}", leave=False) as bar:
                train_classifier(model, x_tr, y_tr, epochs=args.epochs, seed=args.seed, progress=bar.update)
            acc = accuracy(model, x_te, y_te)
        metrics[name] = {"test_accuracy": acc, "train_seconds": time.time() - t0}
        print(f"{name}: test accuracy {acc:.4f} ({time.time() - t0:.0f} s)")

    # attacks on the first n-attack test images, random other targets (the same for every model)
    xa, ya = x_te[: args.n_attack], y_te[: args.n_attack]
    targets = random_targets(ya, seed=args.seed)
    for name, model in models.items():
        t0 = time.time()
        adv, ok, n = attack_in_chunks(model, xa, targets, args.step, args.steps)
        diff = (adv - xa).flatten(1)
        metrics[name].update({
            "attack_success": float(ok.float().mean()), "attacked": len(xa),
            "mean_steps_success": float(n[ok].float().mean()) if ok.any() else None,
            "mean_linf_success": float(diff[ok].abs().amax(1).mean()) if ok.any() else None,
            "mean_l2_success": float(diff[ok].norm(dim=1).mean()) if ok.any() else None,
            # successes that changed the number of bars of some sweep (created or destroyed a class, which
            # TopModel's gradient cannot see), counting up to k bars per direction and dimension
            "bars_changed_success": float(bar_counts_changed(xa, adv, args)[ok].float().mean()) if ok.any() else None,
            "attack_seconds": time.time() - t0,
        })
        print(f"{name}: attack success {metrics[name]['attack_success']:.3f} ({time.time() - t0:.0f} s)")

    classes = grid_classes(y_te)
    grids = {name: attack_grid(model, x_te, y_te, args.step, args.steps, classes) for name, model in models.items()}
    for name, (cells, ok) in grids.items():
        plot_grid(args.out / f"grid_{name}.png", cells, ok, name, classes)
        attacked = torch.arange(10)[None, :] != torch.tensor(classes)[:, None]  # off the diagonal (source = target)
        metrics[name]["grid_success"] = float(ok[attacked].float().mean())
    plot_example(args.out / "example.png", models, x_te, y_te, args)
    meta = {
        "device": torch.cuda.get_device_name() if dev.type == "cuda" else (platform.processor() or platform.machine()),
        "cpu_threads": torch.get_num_threads(), "torch": torch.__version__, "seconds_total": time.time() - t_all,
        "seed": args.seed, "n_train": len(x_tr), "n_test": len(x_te), "epochs": args.epochs,
        "top_epochs": args.top_epochs, "attack_step": args.step, "attack_steps": args.steps, "k": args.k,
        "alpha": args.alpha, "threshold": args.threshold, "grid_classes": classes,
    }
    (args.out / "metrics.json").write_text(json.dumps({"meta": meta, "models": metrics}, indent=1))
    write_markdown(args.out / "metrics.md", meta, metrics)
    print(f"wrote {args.out} in {meta['seconds_total']:.0f} s")


class Standardize(torch.nn.Module):
    def __init__(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return (f - self.mean) / self.std


def bar_counts_changed(x, adv, args, chunk: int = 250) -> torch.Tensor:
    """``(B,)`` bool: the attack changed how many bars some sweep has in some dimension."""
    changed = []
    with torch.no_grad():
        for s in range(0, len(x), chunk):
            before = directional_topk(x[s : s + chunk], args.k, threshold=args.threshold, alpha=args.alpha)
            after = directional_topk(adv[s : s + chunk], args.k, threshold=args.threshold, alpha=args.alpha)
            changed.append(((before[..., 0] > 0).sum(-1) != (after[..., 0] > 0).sum(-1)).flatten(1).any(1))
    return torch.cat(changed)


def attack_in_chunks(model, x, targets, step, steps, chunk: int = 250):
    outs = [targeted_attack(model, x[s : s + chunk], targets[s : s + chunk], step, steps)
            for s in tqdm(range(0, len(x), chunk), desc="attack", leave=False)]
    return tuple(torch.cat(parts) for parts in zip(*outs))


def grid_classes(y: torch.Tensor) -> list[int]:
    """The digit classes present among the labels ``y`` (all ten unless the test set is small), in order."""
    return [int(c) for c in torch.unique(y).tolist()]  # sorted


def attack_grid(model, x, y, step, steps, classes=range(10)):
    """Cells ``(R, 10, 28, 28)``: the first test image of each class in ``classes`` (R rows; each must be present in
    ``y``), attacked towards each of the 10 classes (column)."""
    src = torch.stack([(y == c).nonzero()[0, 0] for c in classes])
    rows = len(src)
    xs = x[src].repeat_interleave(10, 0)
    targets = torch.arange(10, device=x.device).repeat(rows)
    adv, ok, _ = targeted_attack(model, xs, targets, step, steps)
    return adv.reshape(rows, 10, 28, 28).cpu(), ok.reshape(rows, 10).cpu()


def plot_grid(path: Path, cells, ok, name: str, classes=range(10)) -> None:
    rows = len(cells)
    fig, axes = plt.subplots(rows, 10, figsize=(8, 0.8 * rows + 0.6), squeeze=False)
    for i in range(rows):
        for j in range(10):
            ax = axes[i, j]
            ax.imshow(cells[i, j].numpy(), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if not ok[i, j]:
                for s in ax.spines.values():
                    s.set_color("red")
                    s.set_linewidth(2)
            if i == 0:
                ax.set_title(str(j), fontsize=9)
            if j == 0:
                ax.set_ylabel(str(classes[i]), fontsize=9)
    fig.suptitle(f"{name}: row = digit, column = target class (red frame: attack failed)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_example(path: Path, models, x, y, args) -> None:
    i = int((y == 7).nonzero()[0, 0]) if bool((y == 7).any()) else 0
    source = int(y[i])
    target = torch.tensor([3 if source != 3 else 8], device=x.device)
    fig, axes = plt.subplots(2, len(models) + 1, figsize=(3 * (len(models) + 1), 6))
    axes[0, 0].imshow(x[i].cpu().numpy(), cmap="gray", vmin=0, vmax=1)
    axes[0, 0].set_title(f"original ({int(y[i])})")
    axes[1, 0].axis("off")
    for c, (name, model) in enumerate(models.items(), 1):
        adv, ok, n = targeted_attack(model, x[i : i + 1], target, args.step, args.steps)
        with torch.no_grad():
            pred = int(model(adv).argmax(1))
        axes[0, c].imshow(adv[0].cpu().numpy(), cmap="gray", vmin=0, vmax=1)
        axes[0, c].set_title(f"{name}: predicts {pred} ({'success' if ok[0] else 'failed'}, {int(n[0])} steps)",
                             fontsize=9)
        d = (adv[0] - x[i]).cpu()
        lim = max(float(d.abs().max()), 1e-6)
        axes[1, c].imshow(d.numpy(), cmap="RdBu_r", vmin=-lim, vmax=lim)
        axes[1, c].set_title(f"perturbation (max |d| = {lim:.2f})", fontsize=9)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"targeted attack {source} -> {int(target[0])} on each model")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_markdown(path: Path, meta: dict, metrics: dict) -> None:
    lines = [f"Device: {meta['device']} ({meta['cpu_threads']} torch threads), torch {meta['torch']}; "
             f"{meta['seconds_total']:.0f} s in all; seed {meta['seed']}. Trained on {meta['n_train']} MNIST "
             f"training images, tested on {meta['n_test']}. Attack: iterative targeted FGSM, step "
             f"{meta['attack_step']}, at most {meta['attack_steps']} steps, random other target classes. "
             f"Bar counts: the number of bars (up to k = {meta['k']}) of each sweep and dimension in TopModel's "
             "features.", "",
             "| model | test accuracy | attack success | attacked | mean steps (successes) | mean L-inf | mean L2 "
             f"| successes that changed the bar counts | {len(meta['grid_classes'])}x10 grid success |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, m in metrics.items():
        def fmt(v, spec=".2f"):
            return "-" if v is None else format(v, spec)
        lines.append(f"| {name} | {m['test_accuracy']:.4f} | {m['attack_success']:.3f} | {m['attacked']} | "
                     f"{fmt(m['mean_steps_success'], '.1f')} | {fmt(m['mean_linf_success'])} | "
                     f"{fmt(m['mean_l2_success'])} | {fmt(m['bars_changed_success'], '.3f')} | "
                     f"{m['grid_success']:.3f} |")
    path.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
