"""GAN training throughput with a topology loss: one step of a DCGAN-sized MNIST GAN (and of a 3D voxel GAN), with
and without E(1,0,2; PD0) on the superlevel V diagrams of the generated images, for gpuph and the CPU layers.

One *step* is what a GAN training loop does per batch: a discriminator step (forward of real and generated images,
backward, Adam) and a generator step (forward, ``BCE(D(G(z)), 1)`` [+ the topology loss], backward, Adam). The
overhead is ``(step with the loss - step without) / step without``. The CPU layers (cripser's ``compute_ph_torch``,
torch-topological's ``CubicalComplex``, TopologyLayer's ``LevelSetLayer2D`` when importable) loop over the images on
the CPU (on a GPU run, the generated images go to the host and the gradients come back): that is the contrast.

    python bench/gan_throughput.py                       # GPU when present: batches 64/256/1024 (2D), 16/64 (3D)
    python bench/gan_throughput.py --quick               # CPU-sized: 2D batches 64/256, 3D batch 16, 3 repeats
    python bench/gan_throughput.py --libraries gpuph --batches2d 256 --no-3d

Writes ``results.json`` and ``results.md`` to ``bench/results/<device>-<date>-gan/`` (``--out`` to change).
The 3D rows need ``gpuph.apps.voxel_gan`` (``VoxelGenerator``, ``VoxelDiscriminator``) and are skipped without it.
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's gpuph, installed or not

import gpuph  # noqa: E402
from gpuph.apps import gan as gan2d  # noqa: E402
from gpuph.bench.meta import collect, default_out_dir  # noqa: E402
from gpuph.bench.report import INCOMPLETE, fmt_ms, write_json  # noqa: E402
from gpuph.bench.report import table as markdown_table  # noqa: E402
from gpuph.bench.timing import Deadline  # noqa: E402

LIBRARIES = ("gpuph", "cripser", "torch-topological", "topologylayer")
GOALS = {("mnist", 256): 10.0, ("voxel", 64): 20.0}  # issue 6: overhead goals on an H100, in percent


# ---------------------------------------------------------------------------------------------------- topology losses
# Each returns fn(images) -> scalar: the batch mean of E(1,0,2; PD0) = the sum of the finite PD0 lifetimes of each
# image (superlevel), i.e. all components but the essential one.
def loss_gpuph(ndim: int) -> Callable:
    def fn(x):
        dgm = gpuph.cubical_persistence(x, dims=0, spatial_dims=ndim, superlevel=True, construction="V")
        return gpuph.losses.persistence_energy(dgm, dim=0, p=1, q=0, i0=2)

    return fn


def loss_cripser(ndim: int) -> Callable:
    cripser = importlib.import_module("cripser")

    def fn(x):
        flat = x.reshape(-1, *x.shape[-ndim:])
        host = flat.cpu()  # cripser runs on the CPU: the images go to the host, the gradients come back
        total = host.new_zeros((), dtype=torch.float64)
        for img in host:
            ph = cripser.compute_ph_torch(-img, filtration="V", maxdim=0)  # sublevel of -x = superlevel of x
            finite = ph[:, 2] < 1e300  # essential classes die at DBL_MAX
            total = total + (ph[finite, 2] - ph[finite, 1]).sum()
        return (total / len(host)).to(x.device, x.dtype)

    return fn


def _patch_torch_topological() -> None:
    """torch-topological 0.1.9 hands a torch tensor to ``gudhi.CubicalComplex``, which GUDHI >= 3.12 (nanobind)
    rejects; give GUDHI a NumPy copy instead (what older GUDHI did implicitly). The algorithm is unchanged."""
    mod = importlib.import_module("torch_topological.nn.cubical_complex")
    gudhi = importlib.import_module("gudhi")
    if getattr(mod.gudhi, "_gpuph_shim", False):
        return

    class Shim:
        _gpuph_shim = True

        @staticmethod
        def CubicalComplex(dimensions, top_dimensional_cells):  # noqa: N802 - GUDHI's name
            cells = top_dimensional_cells
            if isinstance(cells, torch.Tensor):
                cells = cells.detach().cpu().double().numpy()
            return gudhi.CubicalComplex(dimensions=list(dimensions), top_dimensional_cells=cells)

    mod.gudhi = Shim


def loss_torch_topological(ndim: int) -> Callable:
    tt = importlib.import_module("torch_topological.nn")
    _patch_torch_topological()
    layer = tt.CubicalComplex(superlevel=True, dim=ndim)  # T construction (GUDHI top cells): 8/26-connectivity

    def flatten(obj):
        if hasattr(obj, "diagram"):
            yield obj
        elif isinstance(obj, (list, tuple)):
            for o in obj:
                yield from flatten(o)

    def fn(x):
        host = x.reshape(-1, *x.shape[-ndim:]).cpu()
        total = host.new_zeros(())
        for info in flatten(layer(host)):
            if info.dimension != 0:
                continue
            d = info.diagram
            finite = torch.isfinite(d).all(1)
            total = total + (d[finite, 0] - d[finite, 1]).abs().sum()
        return (total / len(host)).to(x.device, x.dtype)

    return fn


def loss_topologylayer(ndim: int) -> Callable:
    if ndim != 2:
        raise ImportError("TopologyLayer has no 3D image layer")
    tl = importlib.import_module("topologylayer.nn")

    def fn(x):
        host = x.reshape(-1, *x.shape[-2:]).cpu()
        layer = tl.LevelSetLayer2D(size=tuple(host.shape[-2:]), maxdim=0, sublevel=False)
        energy = tl.PartialSumBarcodeLengths(dim=0, skip=1)
        # One layer call per image: the layer keeps one complex, so the images cannot share a forward.
        total = sum(energy(layer(img)) for img in host)
        return (total / len(host)).to(x.device, x.dtype)

    return fn


FACTORIES = {"gpuph": loss_gpuph, "cripser": loss_cripser, "torch-topological": loss_torch_topological,
             "topologylayer": loss_topologylayer}


# ---------------------------------------------------------------------------------------------------- models and steps
def mnist_models(device):
    torch.manual_seed(0)
    g, d = gan2d.build_models(gan2d.GANConfig(nz=100, ngf=64, ndf=64), device)
    return g, d, g.nz, (1, 28, 28)


def voxel_models(device):
    vox = importlib.import_module("gpuph.apps.voxel_gan")
    torch.manual_seed(0)
    g, d = vox.VoxelGenerator(nz=64).to(device), vox.VoxelDiscriminator().to(device)
    return g, d, getattr(g, "nz", 64), (1, 32, 32, 32)


def make_step(g, d, nz, shape, batch, device, topo: Callable | None):
    """A training step without host syncs of its own (no ``.item()``), so that only the topology layer's syncs
    count."""
    opt_g = torch.optim.Adam(g.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999))
    gen = torch.Generator(device="cpu").manual_seed(1)
    real = torch.rand(batch, *shape, generator=gen).to(device)
    z = torch.randn(batch, nz, generator=gen).to(device)
    ones, zeros = torch.ones(batch, device=device), torch.zeros(batch, device=device)

    def bce(logits, target):
        return F.binary_cross_entropy_with_logits(logits.reshape(-1), target)

    def step():
        fake = g(z)
        logits = d(torch.cat([real, fake.detach()])).reshape(-1)
        loss_d = bce(logits[:batch], ones * 0.9) + bce(logits[batch:], zeros)
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        loss_g = bce(d(fake), ones)
        if topo is not None:
            loss_g = loss_g + topo(fake)
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()

    return step, z


def time_step(step, device, warmup: int, repeats: int, budget_s: float) -> list[float]:
    """Milliseconds of ``repeats`` steps after ``warmup`` (fewer repeats, at least 2, when they would take longer
    than ``budget_s``); CUDA events on the GPU."""
    for _ in range(warmup):
        step()
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.synchronize(device)
    times = []
    t_end = time.perf_counter() + budget_s
    for i in range(repeats):
        if cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            step()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        else:
            t = time.perf_counter()
            step()
            times.append((time.perf_counter() - t) * 1e3)
        if i >= 1 and time.perf_counter() > t_end:
            break
    return times


def pd0_pairs_per_image(x: torch.Tensor, ndim: int) -> float:
    dgm = gpuph.cubical_persistence(x.detach(), dims=0, spatial_dims=ndim, superlevel=True, construction="V")
    return len(dgm) / max(dgm.batch_size, 1)


# ---------------------------------------------------------------------------------------------------- main
def run(args) -> int:
    device = torch.device(args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out) if args.out else default_out_dir(device.type == "cuda", "-gan")
    out.mkdir(parents=True, exist_ok=True)
    models = [("mnist", mnist_models, 2, args.batches2d)]
    skipped = {}
    if not args.no_3d:
        try:
            importlib.import_module("gpuph.apps.voxel_gan")
            models.append(("voxel", voxel_models, 3, args.batches3d))
        except ImportError as exc:
            skipped["voxel"] = f"gpuph.apps.voxel_gan not importable: {exc}"
    rows = []
    try:
        from tqdm.auto import tqdm
    except ImportError:
        tqdm = None
    # The plain step and gpuph's first, for every model and batch; the CPU layers' contrast after them, so that a
    # time limit (--time-limit) cuts the contrast, not the measurements the goals need.
    ours = [lib for lib in ("none", "gpuph") if lib == "none" or lib in args.libraries]
    jobs = [(m, b, lib) for m in models for b in m[3] for lib in ours]
    jobs += [(m, b, lib) for m in models for b in m[3] for lib in args.libraries if lib not in ours]
    bar = tqdm(jobs, desc="GAN steps", dynamic_ncols=True) if tqdm else jobs
    reference_loss = {}
    deadline = Deadline(args.time_limit)
    for (name, build, ndim, _), batch, lib in bar:
        if hasattr(bar, "set_postfix_str"):
            bar.set_postfix_str(f"{name} batch {batch} {lib}")
        if rows:  # the files after every row (incomplete until the end): a run killed from outside keeps them
            write_results(out, rows, skipped, device, args, complete=False)
        if deadline.passed():
            rows.append({"model": name, "batch": batch, "library": lib, "skipped": deadline.note})
            continue
        try:
            topo = None if lib == "none" else FACTORIES[lib](ndim)
        except ImportError as exc:
            skipped[f"{lib} ({ndim}D)"] = str(exc).splitlines()[0]
            continue
        if lib not in ("none", "gpuph") and batch > (args.cpu_layer_max_batch2d if ndim == 2
                                                      else args.cpu_layer_max_batch3d):
            rows.append({"model": name, "batch": batch, "library": lib, "skipped": "batch above --cpu-layer-max-batch"})
            continue
        g, d, nz, shape = build(device)
        g.train()
        d.train()
        step, z = make_step(g, d, nz, shape, batch, device, topo)
        row = {"model": name, "batch": batch, "library": lib, "device": str(device), "grid": list(shape[1:])}
        try:
            if topo is not None:
                with torch.no_grad():
                    imgs = g(z)
                value = float(topo(imgs))
                row["loss_value"] = value
                if lib == "gpuph":
                    reference_loss[(name, batch)] = value
                    row["pd0_pairs_per_image"] = round(pd0_pairs_per_image(imgs, ndim), 1)
                elif (name, batch) in reference_loss:
                    ref = reference_loss[(name, batch)]
                    row["loss_agrees_with_gpuph"] = abs(value - ref) <= 1e-4 * max(1.0, abs(ref))
            times = time_step(step, device, args.warmup, args.repeats, args.budget)
            if topo is not None:
                # The loss alone (forward + backward into the images), which is what the step adds; steadier than
                # the difference of two noisy step medians.
                leaf = imgs.detach().clone().requires_grad_(True)

                def layer(leaf=leaf, topo=topo):
                    leaf.grad = None
                    topo(leaf).backward()

                lt = time_step(layer, device, 1, args.repeats, args.budget)
                row["layer_ms"] = round(statistics.median(lt), 3)
        except Exception as exc:  # noqa: BLE001 - one failing library must not stop the others
            row["error"] = f"{type(exc).__name__}: {exc}"
            rows.append(row)
            continue
        row.update({"median_ms": round(statistics.median(times), 3), "min_ms": round(min(times), 3),
                    "max_ms": round(max(times), 3), "repeats": len(times)})
        rows.append(row)
        del g, d, step
        if device.type == "cuda":
            torch.cuda.empty_cache()

    write_results(out, rows, skipped, device, args, complete=True)
    print((out / "results.md").read_text())
    print(f"wrote {out / 'results.json'} and {out / 'results.md'}")
    return 1 if any("error" in r for r in rows) else 0


def write_results(out: Path, rows: list[dict], skipped: dict, device: torch.device, args, complete: bool) -> None:
    """The overheads, the goals and the meta of ``rows``, into ``results.json`` and ``results.md`` (rewritten after
    every row: ``meta.complete`` is false until the run has finished)."""
    # overheads against the step without the loss
    base = {(r["model"], r["batch"]): r["median_ms"] for r in rows if r["library"] == "none" and "median_ms" in r}
    for r in rows:
        if r["library"] != "none" and "median_ms" in r and (r["model"], r["batch"]) in base:
            b = base[(r["model"], r["batch"])]
            r["overhead_ms"] = round(r["median_ms"] - b, 3)
            r["overhead_pct"] = round(100.0 * (r["median_ms"] - b) / b, 1)
            if "layer_ms" in r:
                r["layer_pct"] = round(100.0 * r["layer_ms"] / b, 1)
    goals = []
    for (m, b), pct in GOALS.items():
        r = next((r for r in rows if r["model"] == m and r["batch"] == b and r["library"] == "gpuph"
                  and "overhead_pct" in r), None)
        if r is not None:
            goals.append({"model": m, "batch": b, "goal_pct": pct, "overhead_pct": r["overhead_pct"],
                          "layer_pct": r.get("layer_pct"), "met": r["overhead_pct"] <= pct,
                          "applies": device.type == "cuda"})
    meta = collect(device.type == "cuda")
    meta.update({"device": str(device), "device_name": torch.cuda.get_device_name(device) if device.type == "cuda"
                 else meta["machine"]["cpu"], "args": vars(args), "skipped": skipped,
                 "models": {"mnist": "gpuph.apps.gan Generator(nz=100, ngf=64) / Discriminator(ndf=64), DCGAN init",
                            "voxel": "gpuph.apps.voxel_gan VoxelGenerator(nz=64) / VoxelDiscriminator()"},
                 "step": "D: forward(real+fake), BCE, backward, Adam; G: forward, BCE(D(G(z)),1) [+ E(1,0,2;PD0) "
                         "batch mean], backward, Adam; no host syncs besides the topology layer's"})
    meta["complete"] = complete
    write_json(out / "results.json", {"meta": meta, "rows": rows, "goals": goals})
    (out / "results.md").write_text(markdown(rows, goals, meta, device))


def markdown(rows, goals, meta, device) -> str:
    head = ["model", "batch", "topology loss", "step, median (ms)", "min - max (ms)", "overhead (ms)", "overhead %",
            "loss alone (ms)", "loss alone %", "PD0 pairs / image", "loss = gpuph's"]
    table = []
    for r in rows:
        if "skipped" in r:
            table.append([r["model"], str(r["batch"]), r["library"], "skipped"] + [""] * 7)
            continue
        if "error" in r:
            table.append([r["model"], str(r["batch"]), r["library"], "error: " + r["error"][:60]] + [""] * 7)
            continue
        lib = "none (plain GAN step)" if r["library"] == "none" else r["library"]
        agrees = {True: "yes", False: "no"}.get(r.get("loss_agrees_with_gpuph"), "")
        if r["library"] == "torch-topological":
            agrees = "n/a (T construction)"
        table.append([
            r["model"], str(r["batch"]), lib, fmt_ms(r["median_ms"]),
            f"{fmt_ms(r['min_ms'])} - {fmt_ms(r['max_ms'])} ({r['repeats']}x)",
            fmt_ms(r["overhead_ms"]) if "overhead_ms" in r else "",
            f"{r['overhead_pct']:+.1f}%" if "overhead_pct" in r else "",
            fmt_ms(r["layer_ms"]) if "layer_ms" in r else "",
            f"{r['layer_pct']:.1f}%" if "layer_pct" in r else "",
            str(r.get("pd0_pairs_per_image", "")), agrees,
        ])
    v = meta["versions"]
    lines = [
        f"# GAN training step with the topology loss E(1,0,2; PD0): {meta['device_name']}",
        "",
        f"{meta['date']}; torch {v['torch']} ({meta['torch_threads']} CPU threads), gpuph {v['gpuph']} "
        f"({(meta['gpuph_git']['commit'] or '')[:10]}), cripser {v.get('cripser')}, torch-topological "
        f"{v.get('torch-topological')}, TopologyLayer {v.get('topologylayer') or 'not installed'}; load average "
        f"{', '.join(f'{x:.1f}' for x in meta['load_average'] or [])}.",
        "",
        "One step = discriminator step + generator step (Adam), see bench/gan_throughput.py. MNIST: DCGAN-sized "
        "generator (nz=100, ngf=64) and discriminator (ndf=64), 28x28. Voxel: gpuph.apps.voxel_gan at 32^3. "
        "Randomly initialised models; overhead = step with the loss minus the plain step (two noisy medians); "
        "loss alone = forward + backward of the loss on a fixed batch of generated images, in ms and in percent of "
        "the plain step (the steadier estimate of the overhead).",
        "",
        markdown_table(head, table),
        "",
    ]
    if not meta.get("complete", True):
        lines += [INCOMPLETE, ""]
    if goals:
        lines.append("Goals of issue 6 (on an H100): " + "; ".join(
            f"{g['model']} batch {g['batch']}: {g['overhead_pct']:+.1f}% (loss alone {g['layer_pct']}%; goal <= "
            f"{g['goal_pct']:.0f}%"
            + (f", {'met' if g['met'] else 'missed'})" if g["applies"] else ", not applicable on this device)")
            for g in goals))
    if meta["skipped"]:
        lines.append("")
        lines.append("Skipped: " + "; ".join(f"{k}: {v}" for k, v in meta["skipped"].items()))
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--batches2d", type=int, nargs="+", default=[64, 256, 1024])
    p.add_argument("--batches3d", type=int, nargs="+", default=[16, 64])
    p.add_argument("--libraries", nargs="+", default=list(LIBRARIES), choices=LIBRARIES)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--budget", type=float, default=30.0, help="seconds of timed repeats per row (at least 2 repeats)")
    p.add_argument("--cpu-layer-max-batch2d", type=int, default=1024, help="skip the CPU layers above this batch")
    p.add_argument("--cpu-layer-max-batch3d", type=int, default=64)
    p.add_argument("--no-3d", action="store_true")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--quick", action="store_true", help="CPU-sized: 2D batches 64 256, 3D batch 16, 3 repeats")
    p.add_argument("--time-limit", type=float, default=None, metavar="S",
                   help="no new row starts after S seconds (gpuph's rows run first; the CPU layers' contrast last)")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    if args.time_limit is not None and args.time_limit <= 0:
        p.error("--time-limit must be positive")
    if args.quick:
        args.batches2d, args.batches3d, args.repeats, args.warmup = [64, 256], [16], 3, 1
    return run(args)


if __name__ == "__main__":
    raise SystemExit(main())
