"""MNIST GAN fine-tuned with the topology loss E(1,0,2; PD0): the TopologyLayer paper's Figures 10-13.

1. Baseline: train a DCGAN-style GAN on MNIST (or load one: ``--baseline CKPT``, or ``--pretrained`` for the small
   generator embedded in gpuph).
2. Fine-tune the generator for ``--finetune-steps`` (50) batch iterations with ``BCE(D(G(z)), 1) + topo_weight *
   E(1,0,2; PD0)`` on the superlevel V diagrams of its images; the discriminator keeps training on real digits.
   A control run (on by default; ``--no-control`` skips it) does the same iterations with ``topo_weight = 0``.
   ``--finetune-steps 0`` skips the fine-tuning: the report then covers the baseline alone.
3. Report, in ``--out``: before/after grids of the same latent vectors, latent interpolations, a metrics table
   (MMD/COV with L2 and PD0 1-Wasserstein distances, Inception score with gpuph's MNIST classifier, mean number of
   components), checkpoints of every generator, ``summary.json``.

Examples::

    python examples/gan_mnist.py --preset small --out out/gan            # CPU, a few minutes
    python examples/gan_mnist.py --preset paper --device cuda --out out/gan-paper
    python examples/gan_mnist.py --pretrained --out out/gan-embedded     # skip the baseline training
    torchrun --nproc_per_node=2 examples/gan_mnist.py --preset small      # DistributedDataParallel (gloo on CPU)

Under torchrun, each rank generates its shard of every batch (``--batch-size`` is the global batch) and computes the
topology loss of that shard; DDP averages the gradients. Rank 0 writes the files.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import gpuph  # noqa: E402
from gpuph.apps import gan, gan_metrics  # noqa: E402
from gpuph.apps.classifier import load_classifier, load_pretrained_classifier  # noqa: E402
from gpuph.apps.cli_args import (  # noqa: E402
    device_or_auto,
    existing_file,
    non_negative_float,
    non_negative_int,
    output_folder,
    positive_float,
    positive_int,
)
from gpuph.apps.gan_report import compare_generators  # noqa: E402
from gpuph.apps.mnist import find_mnist_dir, load_mnist, missing_files  # noqa: E402

PRESETS = {
    # CPU: the embedded model's size, 2 epochs, metrics on 500 samples (200 for the Wasserstein ones).
    "small": {"nz": 64, "ngf": 32, "ndf": 32, "epochs": 2.0, "n_eval": 500, "wasserstein_samples": 200},
    # GPU: DCGAN sizes, 25 epochs, metrics on 1000 samples.
    "paper": {"nz": 100, "ngf": 64, "ndf": 64, "epochs": 25.0, "n_eval": 1000, "wasserstein_samples": 1000},
}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", choices=sorted(PRESETS), default="small")
    p.add_argument("--out", type=output_folder, default="out/gan_mnist", help="output folder (default: out/gan_mnist)")
    p.add_argument("--mnist-dir", default=None, help="MNIST raw idx files (default: $GPUPH_MNIST_DIR or "
                   "../shared/data/mnist)")
    p.add_argument("--device", type=device_or_auto, default="auto",
                   help="auto (cuda when available), cpu, cuda, cuda:1, ...")
    p.add_argument("--seed", type=int, default=0)
    g = p.add_argument_group("baseline")
    g.add_argument("--baseline", type=existing_file, default=None, help="load this checkpoint instead of training")
    g.add_argument("--pretrained", action="store_true", help="start from the small generator embedded in gpuph")
    g.add_argument("--epochs", type=positive_float, default=None,
                   help="baseline epochs over the training digits (preset)")
    g.add_argument("--steps", type=positive_int, default=None, help="baseline batch iterations (overrides --epochs)")
    g.add_argument("--batch-size", type=positive_int, default=64,
                   help="global batch size (default: 64; at least 2 a process, for the batch norms)")
    g.add_argument("--lr", type=positive_float, default=2e-4)
    g.add_argument("--nz", type=positive_int, default=None)
    g.add_argument("--ngf", type=positive_int, default=None)
    g.add_argument("--ndf", type=positive_int, default=None)
    g.add_argument("--train-images", type=positive_int, default=None,
                   help="use only the first N training digits (at least --batch-size)")
    g.add_argument("--export", default=None, help="also write the baseline as an embedded-model file (float16)")
    f = p.add_argument_group("topology fine-tuning")
    f.add_argument("--finetune-steps", type=non_negative_int, default=50,
                   help="fine-tuning batch iterations (default: 50; 0: no fine-tuning, report the baseline alone)")
    f.add_argument("--topo-weight", type=non_negative_float, default=1.0,
                   help="lambda in BCE + lambda * E (default: 1)")
    f.add_argument("--finetune-lr", type=positive_float, default=2e-4)
    f.add_argument("--freeze-d", action="store_true", help="do not train the discriminator while fine-tuning")
    f.add_argument("--no-control", dest="control", action="store_false",
                   help="skip the control run (the same fine-tuning with topo_weight = 0)")
    r = p.add_argument_group("report")
    r.add_argument("--n-eval", type=positive_int, default=None, help="generated digits for the metrics (preset)")
    r.add_argument("--wasserstein-samples", type=positive_int, default=None, help="samples in MMD/COV-Wass (preset)")
    r.add_argument("--threshold", type=non_negative_float, nargs="+", default=[0.5, 0.1],
                   help="lifetime thresholds for the component counts; the first frames the grid (default: 0.5 0.1)")
    r.add_argument("--classifier", type=existing_file, default=None,
                   help="classifier file (default: the embedded one)")
    r.add_argument("--no-report", dest="report", action="store_false", help="train only (no metrics, no figures)")
    r.add_argument("--no-progress", dest="progress", action="store_false")
    args = p.parse_args(argv)
    preset = PRESETS[args.preset]
    for k in ("nz", "ngf", "ndf", "epochs", "n_eval", "wasserstein_samples"):
        if getattr(args, k) is None:
            setattr(args, k, preset[k])
    if args.baseline and args.pretrained:
        p.error("--baseline and --pretrained are exclusive")
    if args.export is not None:  # written after the baseline's training: a bad path must not cost the run
        export = Path(args.export)
        if export.is_dir():
            p.error(f"--export {args.export!r} is a folder, not a file")
        try:
            output_folder(str(export.parent))
        except argparse.ArgumentTypeError as err:
            p.error(f"--export {args.export!r}: its folder {err}")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if args.batch_size % world:
        p.error(f"--batch-size ({args.batch_size}) must be a multiple of the number of processes ({world})")
    if args.batch_size // world < 2:  # the generator's batch norms need two samples a process in training mode
        p.error(f"--batch-size ({args.batch_size}) must be at least 2 a process ({2 * world} for {world})")
    if args.train_images is not None and args.train_images < args.batch_size:
        p.error(f"--train-images ({args.train_images}) must be at least --batch-size ({args.batch_size})")
    return args


def setup_distributed(device_arg: str) -> tuple[int, int, torch.device]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    use_cuda = device_arg.startswith("cuda") or (device_arg == "auto" and torch.cuda.is_available())
    if world > 1:
        backend = "nccl" if use_cuda else "gloo"
        torch.distributed.init_process_group(backend)
        rank = torch.distributed.get_rank()
        local = int(os.environ.get("LOCAL_RANK", rank))
        if use_cuda:
            torch.cuda.set_device(local)
            return rank, world, torch.device("cuda", local)
        return rank, world, torch.device("cpu")
    if device_arg == "auto":
        return 0, 1, torch.device("cuda" if use_cuda else "cpu")
    return 0, 1, torch.device(device_arg)


def wrap(model: torch.nn.Module, device: torch.device, world: int) -> torch.nn.Module:
    if world == 1 or not any(p.requires_grad for p in model.parameters()):
        return model
    ids = [device.index] if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)


def log(rank: int, *msg) -> None:
    if rank == 0:
        print(*msg, flush=True)


def main(argv=None) -> int:
    args = parse_args(argv)
    rank, world, device = setup_distributed(args.device)
    t_start = time.perf_counter()
    gan.seed_everything(args.seed + rank)
    out = Path(args.out)
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
    log(rank, f"gpuph {gpuph.__version__}, torch {torch.__version__}, device {device}, world size {world}, "
              f"{torch.get_num_threads()} CPU threads a process")

    mnist_dir = find_mnist_dir(args.mnist_dir)
    if mnist_dir is None:
        log(rank, f"no MNIST idx files found (--mnist-dir {args.mnist_dir}); this example needs them")
        return 2
    missing = missing_files(mnist_dir)
    if missing:
        log(rank, f"{', '.join(missing)} missing in {mnist_dir}: this example needs both splits")
        return 2
    train_x, _ = load_mnist(mnist_dir, "train", args.train_images)
    test_x, _ = load_mnist(mnist_dir, "test")
    train_x = torch.from_numpy(train_x.copy())
    timings = {}
    # The report's classifier is read now: a file that is not a classifier fails here, not after the training.
    classifier, cinfo = None, {}
    if rank == 0 and args.report:
        with torch.random.fork_rng(devices=[]):  # building the model draws weights: leave the seeded state as it was
            classifier, cinfo = (load_classifier(args.classifier, device) if args.classifier
                                 else load_pretrained_classifier(device))

    # --- 1. Baseline.
    if args.pretrained or args.baseline:
        g, d, info = gan.load_pretrained_gan(device) if args.pretrained else gan.load_checkpoint(args.baseline, device)
        config = info["config"]
        log(rank, f"baseline: loaded {'the embedded generator' if args.pretrained else args.baseline} ({config})")
        if d is None:
            d = gan.build_models(config, device)[1]
            log(rank, "  (no discriminator in the checkpoint: a fresh one is trained alongside the fine-tuning)")
    else:
        config = gan.GANConfig(args.nz, args.ngf, args.ndf)
        g, d = gan.build_models(config, device)
        steps = args.steps if args.steps is not None else max(1, round(args.epochs * len(train_x) / args.batch_size))
        log(rank, f"baseline: training {config} for {steps} batch iterations of {args.batch_size} "
                  f"({steps * args.batch_size / len(train_x):.2f} epochs)")
        t = time.perf_counter()
        gan.train_gan(wrap(g, device, world), wrap(d, device, world), train_x, steps, args.batch_size, args.lr,
                      args.seed, args.progress)
        timings["baseline_s"] = round(time.perf_counter() - t, 1)
        log(rank, f"  {timings['baseline_s']} s")
        if rank == 0:
            gan.save_checkpoint(out / "baseline.pt", g, d, config, {"steps": steps, "batch_size": args.batch_size,
                                                                     "seed": args.seed, "world_size": world})
            if args.export:
                gan.save_pretrained_gan(args.export, g, d, {
                    "steps": steps, "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed,
                    "torch": torch.__version__, "train_seconds": timings["baseline_s"],
                    "command": "python examples/gan_mnist.py " + " ".join(sys.argv[1:] if argv is None else argv)})
                log(rank, f"  wrote {args.export} ({os.path.getsize(args.export) / 1e3:.0f} kB)")

    baseline_g, baseline_d = gan.frozen_copy(g), gan.frozen_copy(d)

    # --- 2. Fine-tuning with the topology loss (and the control run without it, from the same start).
    runs = [("topology", args.topo_weight)] + ([("control", 0.0)] if args.control else [])
    if args.finetune_steps == 0:
        runs = []
        log(rank, "no fine-tuning (--finetune-steps 0): the report covers the baseline alone")
    tuned = {}
    for name, weight in runs:
        gg, dd = gan.clone_for_training(baseline_g, baseline_d, device)
        if args.freeze_d:
            dd.requires_grad_(False)
        t = time.perf_counter()
        hist = gan.finetune_topology(wrap(gg, device, world), wrap(dd, device, world), args.finetune_steps,
                                     args.batch_size, weight, None if args.freeze_d else train_x, args.finetune_lr,
                                     args.seed + 1, args.progress)
        timings[f"finetune_{name}_s"] = round(time.perf_counter() - t, 2)
        topo = [h["topo"] for h in hist]
        if weight:
            log(rank, f"fine-tuning ({name}, topo_weight {weight}): {args.finetune_steps} iterations in "
                      f"{timings[f'finetune_{name}_s']} s; topology loss (rank 0 shard) {topo[0]:.3f} -> "
                      f"{np.mean(topo[-5:]):.3f} (mean of the last 5)")
        else:
            log(rank, f"control ({args.finetune_steps} GAN iterations without the topology loss): "
                      f"{timings[f'finetune_{name}_s']} s")
        tuned[name] = gg
        if rank == 0:
            gan.save_checkpoint(out / f"{name}.pt", gg, dd, config, {"finetune_steps": args.finetune_steps,
                                                                      "topo_weight": weight, "seed": args.seed})
            (out / f"history_{name}.json").write_text(json.dumps(hist) + "\n")

    # --- 3. Report (rank 0).
    if rank == 0 and args.report:
        reference = torch.from_numpy(test_x[: args.n_eval].astype(np.float32) / 255.0).unsqueeze(1)
        held_out = torch.from_numpy(test_x[args.n_eval: 2 * args.n_eval].astype(np.float32) / 255.0).unsqueeze(1)
        gens = {"baseline": baseline_g}
        if "control" in tuned:
            gens[f"control (+{args.finetune_steps} GAN steps)"] = tuned["control"]
        if "topology" in tuned:
            gens[f"topology (+{args.finetune_steps} steps with E)"] = tuned["topology"]
        t = time.perf_counter()
        notes = [
            f"{args.n_eval} generated digits (fixed latent vectors) vs the first {args.n_eval} MNIST test digits; "
            f"MMD/COV-Wass on the first {min(args.wasserstein_samples, args.n_eval)} of each.",
            "MMD/COV: minimum matching distance and coverage (Achlioptas et al. 2018); -L2: Euclidean distance "
            "between images in [0, 1]; -Wass: 1-Wasserstein distance between superlevel PD0 diagrams.",
            f"IS: Inception score with gpuph's MNIST classifier (test accuracy "
            f"{cinfo.get('test_accuracy', 'unknown')}), up to 10 splits of at least "
            f"{gan_metrics.IS_MIN_SPLIT} digits, +- their standard deviation.",
            "components>t: mean number of PD0 classes with lifetime > t (the essential class counts).",
            f"real digits (held out): the next {len(held_out)} MNIST test digits, scored like a generator.",
        ]
        res = compare_generators(gens, reference, out, classifier, args.n_eval, args.wasserstein_samples,
                                 args.threshold, seed=args.seed + 1000, notes=notes,
                                 real_samples=held_out if len(held_out) else None,
                                 meta={"device": str(device), "world_size": world, "config": vars(config)})
        timings["report_s"] = round(time.perf_counter() - t, 1)
        print((out / "metrics.md").read_text())
        for f in res["files"]:
            print(f"wrote {f}")
        summary = {"args": vars(args), "timings": timings, "total_s": round(time.perf_counter() - t_start, 1),
                   "classifier_test_accuracy": cinfo.get("test_accuracy"), "metrics": res["metrics"],
                   "wasserstein_backend": res["wasserstein_backend"], "device": str(device),
                   "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
                   or platform.machine(), "cpu_threads": torch.get_num_threads(), "torch": torch.__version__}
        (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    if world > 1:
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    log(rank, f"done in {time.perf_counter() - t_start:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
