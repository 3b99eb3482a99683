"""gpuph demo (the main job): fine-tune the small MNIST generator embedded in gpuph with the topology loss
E(1,0,2; PD0) and write the before/after grid, the latent interpolations and the metrics, in about a minute on a CPU.

Run it as ``python -m gpuph`` (or ``make demo``)::

    python -m gpuph --out out/ [--steps 50] [--topo-weight 1] [--n-eval 512] [--device cuda]
    python -m gpuph --diagrams [--out out/ ...]     # the persistence-diagram demo instead (gpuph/demo_diagrams.py)

The generator, its discriminator and the MNIST classifier of the Inception score are small float16 files in
``gpuph/data/`` (how they were trained: ``gpuph/data/README.md``). With MNIST's raw idx files at hand (``--mnist-dir``,
``$GPUPH_MNIST_DIR`` or ``../shared/data/mnist``) the discriminator keeps training on real digits during the
fine-tuning and the metrics compare with the first ``--n-eval`` test digits; without them the discriminator is frozen
and the reference set is the 64 test digits embedded in ``gpuph/data/mnist_sample.npz``.
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

SAMPLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "mnist_sample.npz")


def _reference(mnist_dir, n_eval: int):
    """(train digits or None, reference test digits as (R, 1, 28, 28) floats in [0, 1], held-out test digits or
    None, where they came from)."""
    from .apps.mnist import find_mnist_dir, load_mnist, missing_files

    found = find_mnist_dir(mnist_dir)
    if found is not None and not missing_files(found):  # both splits: training digits for D, test ones for metrics
        train, _ = load_mnist(found, "train")
        test, _ = load_mnist(found, "test", 2 * n_eval)
        test, held = test[:n_eval], test[n_eval:]
        source = f"MNIST test digits from {found}"
        train = torch.from_numpy(train.copy())
    else:
        with np.load(SAMPLE) as f:
            test = f["images"]
        train, held = None, None
        source = "MNIST test digits embedded in gpuph/data (no MNIST idx files found: discriminator frozen)"
    def floats(x):
        return None if x is None or len(x) == 0 else torch.from_numpy(x.astype(np.float32) / 255.0).unsqueeze(1)

    return train, floats(test), floats(held), source


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if "--diagrams" in argv:
        from .demo_diagrams import main as diagrams_main

        return diagrams_main([a for a in argv if a != "--diagrams"])

    p = argparse.ArgumentParser(prog="python -m gpuph", description=__doc__.split("\n\n")[0],
                                epilog="python -m gpuph --diagrams --help: the persistence-diagram demo's options")
    p.add_argument("--out", type=cli_args.output_folder, default="out/", help="output folder (default: out/)")
    p.add_argument("--steps", type=cli_args.non_negative_int, default=50,
                   help="fine-tuning batch iterations (default: 50, as the paper)")
    p.add_argument("--batch-size", type=cli_args.int_at_least(2), default=64,
                   help="fine-tuning batch (default: 64; at least 2, for the batch norms)")
    p.add_argument("--topo-weight", type=cli_args.non_negative_float, default=1.0,
                   help="lambda in BCE + lambda * E (default: 1)")
    p.add_argument("--n-eval", type=cli_args.int_at_least(2), default=512,
                   help="generated digits for the metrics (default: 512; at least 2)")
    p.add_argument("--wasserstein-samples", type=cli_args.positive_int, default=512,
                   help="of which in MMD/COV-Wass (default: 512; the GUDHI fallback takes about 0.3 ms a pair)")
    p.add_argument("--mnist-dir", default=None, help="MNIST raw idx files (default: $GPUPH_MNIST_DIR or "
                   "../shared/data/mnist; the embedded 64 digits when absent)")
    p.add_argument("--device", type=cli_args.device, default="cpu", help="torch device (default: cpu)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=cli_args.positive_int, default=None,
                   help="torch CPU threads (default: torch's choice; 1 is faster on a busy machine)")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    args = p.parse_args(argv)
    if args.mnist_dir is not None:
        from .apps.mnist import find_mnist_dir, missing_files

        found = find_mnist_dir(args.mnist_dir)
        if found is None:
            p.error(f"--mnist-dir {args.mnist_dir}: no MNIST idx files there (t10k-images-idx3-ubyte[.gz])")
        missing = missing_files(found)
        if missing:  # the demo reads both splits
            p.error(f"--mnist-dir {args.mnist_dir}: {', '.join(missing)} missing in {found} "
                    "(the demo needs the training and the test split)")

    from .apps import gan
    from .apps.classifier import load_pretrained_classifier
    from .apps.gan_metrics import wasserstein_backend
    from .apps.gan_report import compare_generators

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    device = torch.device(args.device)
    print(f"gpuph {gpuph.__version__}, torch {torch.__version__}, device {device}, "
          f"{torch.get_num_threads()} CPU threads")
    gan.seed_everything(args.seed)
    g, d, info = gan.load_pretrained_gan(device)
    classifier, cinfo = load_pretrained_classifier(device)
    train, reference, held_out, source = _reference(args.mnist_dir, args.n_eval)
    print(f"embedded generator {info['config']} ({sum(q.numel() for q in g.parameters()) / 1e3:.0f}k parameters); "
          f"classifier test accuracy {cinfo.get('test_accuracy')}")
    print(f"reference set: {len(reference)} {source}")

    before = gan.frozen_copy(g)
    g, d = gan.clone_for_training(g, d, device)
    if train is None:
        d.requires_grad_(False)
    t = time.perf_counter()
    hist = gan.finetune_topology(g, d, args.steps, args.batch_size, args.topo_weight, train, seed=args.seed + 1,
                                 progress=args.progress)
    tune_s = time.perf_counter() - t
    if hist:
        print(f"fine-tuning: {args.steps} iterations of batch {args.batch_size} in {tune_s:.1f} s "
              f"({1e3 * tune_s / args.steps:.0f} ms an iteration); topology loss E(1,0,2; PD0) (batch mean) "
              f"{hist[0]['topo']:.3f} -> {np.mean([h['topo'] for h in hist[-5:]]):.3f} (mean of the last 5)")

    backend = wasserstein_backend()
    t = time.perf_counter()
    res = compare_generators(
        {"before": before, "after": g}, reference, args.out, classifier, args.n_eval,
        args.wasserstein_samples, seed=args.seed + 1000,
        notes=[f"{args.n_eval} generated digits (fixed latent vectors) vs {len(reference)} {source}; "
               f"MMD/COV-Wass on the first {min(args.wasserstein_samples, args.n_eval)} generated and "
               f"{min(args.wasserstein_samples, len(reference))} reference digits (Wasserstein backend: {backend}).",
               f"after: {args.steps} iterations of BCE(D(G(z)), 1) + {args.topo_weight:g} * E(1,0,2; PD0).",
               f"IS: Inception score with gpuph's MNIST classifier (test accuracy {cinfo.get('test_accuracy')}).",
               *([f"real digits (held out): the next {len(held_out)} MNIST test digits, scored like a generator."]
                 if held_out is not None else [])],
        meta={"device": str(device), "steps": args.steps, "topo_weight": args.topo_weight,
              "batch_size": args.batch_size, "reference": source},
        real_samples=held_out,
    )
    report_s = time.perf_counter() - t
    gan.save_checkpoint(os.path.join(args.out, "generator_after.pt"), g, d,
                        extra={"steps": args.steps, "topo_weight": args.topo_weight, "seed": args.seed})
    m = res["metrics"]
    print()
    print(open(os.path.join(args.out, "metrics.md")).read())
    print(f"mean number of components (lifetime > 0.5): before {m['before']['components>0.5']:.2f}, "
          f"after {m['after']['components>0.5']:.2f}")
    for f in res["files"]:
        print(f"wrote {f}")
    print(f"done in {time.perf_counter() - t0:.1f} s (fine-tuning {tune_s:.1f} s, metrics and figures "
          f"{report_s:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
