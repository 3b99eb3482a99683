"""A DCGAN-style MNIST GAN and its fine-tuning with the topology loss :math:`E(1,0,2; PD_0)`.

This is the TopologyLayer paper's generative-model experiment (Bruel-Gabrielsson et al., "A Topology Layer for Machine
Learning", AISTATS 2020, Figures 10-13): a generator is first trained as a GAN on MNIST (the *baseline*), then trained
for 50 more batch iterations with a loss that, on the superlevel V-construction diagrams of its images, sums the
lifetimes of all connected components but the most persistent one:

.. math::
    E(1,0,2; PD_0) = \\sum_{i \\ge 2} |d_i - b_i|,

so that each generated digit becomes one connected component. The generator's loss during fine-tuning is

.. math::
    L_G = \\mathrm{BCE}(D(G(z)), 1) + \\lambda \\, \\frac{1}{B} \\sum_{b} E(1,0,2; PD_0(G(z_b))),

the usual non-saturating GAN loss plus ``topo_weight`` (:math:`\\lambda`, default 1) times the batch mean of the
topology loss; images are in ``[0, 1]``, so one spurious component costs at most 1. The discriminator keeps training
on real digits when they are given (as in the baseline), and is frozen otherwise.

Everything works on any device; with ``torch.distributed`` initialised and the models wrapped in
``DistributedDataParallel``, each rank generates and scores its own shard of the batch (see
``examples/gan_mnist.py``).
"""

from __future__ import annotations

import copy
import math
import os
import random
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

import gpuph

from .checkpoints import load_torch_file, save_torch_file, weights_only_payload
from .checkpoints import unwrap_model as _unwrap

__all__ = [
    "DATA_DIR",
    "Discriminator",
    "build_models",
    "clone_for_training",
    "frozen_copy",
    "generate",
    "make_optimizers",
    "real_batches",
    "GANConfig",
    "Generator",
    "PRETRAINED_GAN",
    "component_counts",
    "finetune_topology",
    "interpolate_latents",
    "latent_vectors",
    "load_checkpoint",
    "load_pretrained_gan",
    "save_checkpoint",
    "save_pretrained_gan",
    "seed_everything",
    "topology_loss",
    "train_gan",
    "train_step",
]

DATA_DIR = Path(__file__).resolve().parents[1] / "data"
PRETRAINED_GAN = DATA_DIR / "mnist_gan.pt"
CHECKPOINT_FORMAT = "gpuph-mnist-gan"


# ------------------------------------------------------------------------------------------------------------ models
@dataclass
class GANConfig:
    """Sizes of the generator and discriminator.

    ``nz``: latent dimension; ``ngf``/``ndf``: channels of the generator's last and the discriminator's first
    convolution. The paper-sized default is ``nz=100, ngf=64, ndf=64`` (DCGAN); the embedded small model uses
    ``nz=64, ngf=32, ndf=32``.
    """

    nz: int = 100
    ngf: int = 64
    ndf: int = 64

    def __post_init__(self) -> None:
        for name in ("nz", "ngf", "ndf"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"gpuph: GANConfig.{name} must be a positive int, got {v!r}")


class Generator(nn.Module):
    """DCGAN-style generator: ``z (B, nz)`` -> images ``(B, 1, 28, 28)`` in ``[0, 1]`` (a sigmoid output).

    A linear layer to ``2*ngf`` maps of 7x7, then two stride-2 transposed convolutions (7 -> 14 -> 28), batch norm and
    ReLU in between.
    """

    def __init__(self, nz: int = 100, ngf: int = 64) -> None:
        super().__init__()
        self.nz, self.ngf = nz, ngf
        self.project = nn.Sequential(
            nn.Linear(nz, 2 * ngf * 7 * 7, bias=False), nn.BatchNorm1d(2 * ngf * 7 * 7), nn.ReLU(inplace=True)
        )
        self.upsample = nn.Sequential(
            nn.ConvTranspose2d(2 * ngf, ngf, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ngf),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(ngf, 1, 4, 2, 1),
            nn.Sigmoid(),
        )

    def forward(self, z: Tensor) -> Tensor:
        if z.dim() != 2 or z.shape[1] != self.nz:
            raise ValueError(
                f"gpuph: the generator expects latent vectors of shape (B, {self.nz}), got {tuple(z.shape)}"
            )
        h = self.project(z).view(z.shape[0], 2 * self.ngf, 7, 7)
        return self.upsample(h)


class Discriminator(nn.Module):
    """DCGAN-style discriminator: images ``(B, 1, 28, 28)`` in ``[0, 1]`` -> logits ``(B,)``.

    Two stride-2 convolutions with LeakyReLU(0.2) and a linear layer. No batch norm, so that real and generated images
    can share one forward pass (one DistributedDataParallel forward per backward).
    """

    def __init__(self, ndf: int = 64) -> None:
        super().__init__()
        self.ndf = ndf
        self.net = nn.Sequential(
            nn.Conv2d(1, ndf, 4, 2, 1),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf, 2 * ndf, 4, 2, 1),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Flatten(),
            nn.Linear(2 * ndf * 7 * 7, 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or tuple(x.shape[1:]) != (1, 28, 28):
            raise ValueError(f"gpuph: the discriminator expects images of shape (B, 1, 28, 28), got {tuple(x.shape)}")
        return self.net(x * 2 - 1).squeeze(1)  # [0, 1] -> [-1, 1]


def build_models(config: GANConfig, device: torch.device | str = "cpu") -> tuple[Generator, Discriminator]:
    """A freshly initialised (DCGAN init: N(0, 0.02) weights, N(1, 0.02) norm scales) generator and discriminator."""
    g = Generator(config.nz, config.ngf)
    d = Discriminator(config.ndf)
    for m in list(g.modules()) + list(d.modules()):
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
    return g.to(device), d.to(device)


# ------------------------------------------------------------------------------------------------------------ seeds
def seed_everything(seed: int) -> None:
    """Seeds Python's, NumPy's and torch's (all devices) random generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def latent_vectors(n: int, nz: int, seed: int, device: torch.device | str = "cpu") -> Tensor:
    """``(n, nz)`` standard normal latent vectors drawn from their own seeded generator (on the CPU, then moved), so
    that the same seed gives the same vectors on every device and does not disturb the global random state."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, nz, generator=g).to(device)


def interpolate_latents(z0: Tensor, z1: Tensor, steps: int) -> Tensor:
    """``(P, steps, nz)`` linear interpolations from each row of ``z0 (P, nz)`` to the same row of ``z1``."""
    if z0.shape != z1.shape or z0.dim() != 2:
        raise ValueError(f"gpuph: z0 and z1 must both be (P, nz), got {tuple(z0.shape)} and {tuple(z1.shape)}")
    if steps < 2:
        raise ValueError(f"gpuph: steps must be >= 2, got {steps}")
    t = torch.linspace(0, 1, steps, dtype=z0.dtype, device=z0.device).view(1, steps, 1)
    return z0[:, None] * (1 - t) + z1[:, None] * t


# ------------------------------------------------------------------------------------------------------------ topology
def topology_loss(images: Tensor, i0: int = 2, reduction: str = "mean") -> Tensor:
    """:math:`E(1,0,i_0; PD_0)` of the superlevel V-construction diagrams of a batch of images: per image, the sum of
    the lifetimes of all connected components but the ``i0 - 1`` most persistent ones (the essential class is closed
    at the image minimum when ``i0 == 1``).

    Args:
        images: ``(B, 1, H, W)`` or ``(B, H, W)`` floating tensor, any device; differentiable.
        i0: first rank summed (1-based); 2 keeps one component free.
        reduction: ``"mean"`` over the images, ``"sum"`` or ``"none"`` (a ``(B,)`` tensor).
    """
    dgm = gpuph.cubical_persistence(images, dims=0, spatial_dims=2, superlevel=True, construction="V")
    return gpuph.losses.persistence_energy(dgm, dim=0, p=1, q=0, i0=i0, reduction=reduction)


@torch.no_grad()
def component_counts(images: Tensor | np.ndarray, threshold: float = 0.5) -> Tensor:
    """``(B,)`` int64 number of connected components of each image's superlevel sets that live longer than
    ``threshold``: PD0 classes (superlevel, V construction, 4-connectivity) with lifetime ``> threshold``, the essential
    class (infinite lifetime) included, so that a one-piece digit counts 1."""
    dgm = gpuph.cubical_persistence(torch.as_tensor(images).detach(), dims=0, spatial_dims=2, superlevel=True,
                                    construction="V")
    keep = dgm.lifetimes() > threshold
    return torch.bincount(dgm.batch[keep], minlength=dgm.batch_size)


# ------------------------------------------------------------------------------------------------------------ training
def _bce(logits: Tensor, target: float) -> Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def train_step(
    generator: nn.Module,
    discriminator: nn.Module,
    opt_g: torch.optim.Optimizer,
    opt_d: torch.optim.Optimizer | None,
    z: Tensor,
    real: Tensor | None = None,
    topo_weight: float = 0.0,
    real_label: float = 0.9,
    topo_fn: Callable[[Tensor], Tensor] | None = None,
) -> dict[str, float]:
    """One GAN training step: a discriminator step on ``real`` vs ``G(z)`` (skipped when ``real`` or ``opt_d`` is
    None), then a generator step on ``BCE(D(G(z)), 1) + topo_weight * topology_loss(G(z))``.

    Args:
        generator, discriminator: the models (possibly wrapped in DistributedDataParallel).
        opt_g, opt_d: their optimizers.
        z: ``(B, nz)`` latent vectors of this rank.
        real: ``(B', 1, 28, 28)`` real images in ``[0, 1]`` of this rank, or None.
        topo_weight: :math:`\\lambda`; 0 skips the persistence computation (a plain GAN step).
        real_label: target of real images for the discriminator (one-sided label smoothing).
        topo_fn: the topology loss of a batch of generated images (a scalar); default :func:`topology_loss` (2D).

    Returns:
        the step's losses as floats: ``d_loss`` (nan when skipped), ``g_adv``, ``topo`` (nan when not computed).
    """
    fake = generator(z)
    d_loss = float("nan")
    if real is not None and opt_d is not None:
        # One forward for both halves: a DDP-wrapped discriminator then sees one forward per backward.
        logits = discriminator(torch.cat([real, fake.detach()]))
        loss_d = _bce(logits[: len(real)], real_label) + _bce(logits[len(real):], 0.0)
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        d_loss = float(loss_d.detach())
    g_adv = _bce(discriminator(fake), 1.0)
    loss_g = g_adv
    topo = float("nan")
    if topo_weight:
        t = (topology_loss if topo_fn is None else topo_fn)(fake)
        loss_g = loss_g + topo_weight * t
        topo = float(t.detach())
    opt_g.zero_grad(set_to_none=True)
    loss_g.backward()
    opt_g.step()
    return {"d_loss": d_loss, "g_adv": float(g_adv.detach()), "topo": topo}


def make_optimizers(generator: nn.Module, discriminator: nn.Module | None, lr: float = 2e-4,
                    betas: tuple[float, float] = (0.5, 0.999)):
    """Adam for both models, DCGAN's settings (``lr=2e-4, betas=(0.5, 0.999)``); ``opt_d`` is None without a
    discriminator or when all its parameters are frozen."""
    opt_g = torch.optim.Adam(generator.parameters(), lr=lr, betas=betas)
    params = [p for p in discriminator.parameters() if p.requires_grad] if discriminator is not None else []
    opt_d = torch.optim.Adam(params, lr=lr, betas=betas) if params else None
    return opt_g, opt_d


def _rank_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def real_batches(images: Tensor | np.ndarray, batch_size: int, seed: int,
                 device: torch.device | str = "cpu") -> Iterator[Tensor]:
    """Endless shuffled batches of real images, as ``(b, 1, 28, 28)`` float32 in ``[0, 1]`` on ``device``.

    ``images``: ``(N, 28, 28)`` uint8 (0..255) or floating (``[0, 1]``), a tensor or a numpy array (as
    :func:`gpuph.apps.mnist.load_mnist` returns). ``batch_size`` is the global batch: under ``torch.distributed``,
    each rank gets its own ``batch_size // world_size`` images of the same seeded permutation.
    """
    images = torch.as_tensor(images)
    rank, world = _rank_world()
    if batch_size % world:
        raise ValueError(f"gpuph: batch_size {batch_size} is not divisible by the world size {world}")
    if len(images) < batch_size:
        raise ValueError(f"gpuph: {len(images)} real images are fewer than one batch of {batch_size}")
    g = torch.Generator().manual_seed(seed)
    scale = 255.0 if images.dtype == torch.uint8 else 1.0
    while True:
        perm = torch.randperm(len(images), generator=g)
        for i in range(len(images) // batch_size):
            idx = perm[i * batch_size:(i + 1) * batch_size][rank::world]
            yield (images[idx].to(device=device, dtype=torch.float32) / scale).unsqueeze(1)


def _progress(iterable, total: int, desc: str, disable: bool):
    try:
        from tqdm.auto import tqdm
    except ImportError:  # tqdm is optional for the library
        return iterable
    return tqdm(iterable, total=total, desc=desc, disable=disable, dynamic_ncols=True, mininterval=1.0)


def _run(generator, discriminator, opt_g, opt_d, steps, batch_size, nz, real_iter, topo_weight, seed, device, desc,
         progress) -> list[dict[str, float]]:
    rank, world = _rank_world()
    if batch_size % world:
        raise ValueError(f"gpuph: batch_size {batch_size} is not divisible by the world size {world}")
    g = torch.Generator().manual_seed(seed * 1000 + rank + 1)
    history = []
    bar = _progress(range(steps), steps, desc, disable=not progress or rank != 0)
    for _ in bar:
        z = torch.randn(batch_size // world, nz, generator=g).to(device)
        real = next(real_iter) if real_iter is not None else None
        stats = train_step(generator, discriminator, opt_g, opt_d, z, real, topo_weight)
        history.append(stats)
        if hasattr(bar, "set_postfix") and (len(history) % 10 == 0 or len(history) == steps):
            bar.set_postfix({k: f"{v:.3f}" for k, v in stats.items() if not math.isnan(v)}, refresh=False)
    return history


def train_gan(
    generator: nn.Module,
    discriminator: nn.Module,
    images: Tensor | np.ndarray,
    steps: int,
    batch_size: int = 64,
    lr: float = 2e-4,
    seed: int = 0,
    progress: bool = True,
) -> list[dict[str, float]]:
    """Baseline GAN training: ``steps`` alternating discriminator/generator steps (non-saturating loss, Adam).

    Args:
        generator, discriminator: models on the training device (possibly DDP-wrapped).
        images: ``(N, 28, 28)`` real digits, uint8 or floats in ``[0, 1]``, on any device (or a numpy array).
        steps: number of batch iterations; ``batch_size``: the global batch (split over the ranks).
        lr, seed: Adam's learning rate; seed of the latent vectors and of the order of the real images.
        progress: show a tqdm bar (rank 0 only).

    Returns:
        one dict of losses per step (see :func:`train_step`).
    """
    device = next(_unwrap(generator).parameters()).device
    nz = _unwrap(generator).nz
    opt_g, opt_d = make_optimizers(generator, discriminator, lr)
    real_iter = real_batches(images, batch_size, seed, device)
    generator.train()
    return _run(generator, discriminator, opt_g, opt_d, steps, batch_size, nz, real_iter, 0.0, seed, device,
                "baseline GAN", progress)


def finetune_topology(
    generator: nn.Module,
    discriminator: nn.Module | None,
    steps: int = 50,
    batch_size: int = 64,
    topo_weight: float = 1.0,
    images: Tensor | np.ndarray | None = None,
    lr: float = 2e-4,
    seed: int = 1,
    progress: bool = True,
) -> list[dict[str, float]]:
    """The paper's fine-tuning: ``steps`` batch iterations (50 in the paper) of the generator with the loss
    ``BCE(D(G(z)), 1) + topo_weight * E(1,0,2; PD0)`` (batch mean).

    With real ``images`` the discriminator keeps training on them, as in :func:`train_gan`; without, it is frozen and
    only scores the generated images. With ``discriminator=None`` the generator is trained on the topology loss alone.
    ``topo_weight=0`` gives the control run (plain GAN steps). Other arguments as in :func:`train_gan`.
    """
    if topo_weight < 0:
        raise ValueError(f"gpuph: topo_weight must be >= 0, got {topo_weight}")
    device = next(_unwrap(generator).parameters()).device
    nz = _unwrap(generator).nz
    if discriminator is None:
        discriminator = _ZeroCritic()
    trainable_d = images is not None and any(p.requires_grad for p in discriminator.parameters())
    opt_g, opt_d = make_optimizers(generator, discriminator if trainable_d else None, lr)
    real_iter = real_batches(images, batch_size, seed, device) if trainable_d else None
    generator.train()
    return _run(generator, discriminator, opt_g, opt_d, steps, batch_size, nz, real_iter, topo_weight, seed, device,
                "topology fine-tuning", progress)


class _ZeroCritic(nn.Module):
    """Stands in for a missing discriminator: constant logits, so the adversarial term has no gradient."""

    def forward(self, x: Tensor) -> Tensor:
        return x.sum(dim=(1, 2, 3)) * 0.0


# ------------------------------------------------------------------------------------------------------------ files
def _state(model: nn.Module, half: bool) -> dict[str, Tensor]:
    sd = _unwrap(model).state_dict()
    return {k: (v.detach().cpu().half() if half and v.is_floating_point() else v.detach().cpu().clone())
            for k, v in sd.items()}


def plain_metadata(extra: dict[str, Any] | None) -> dict[str, Any]:
    """``extra`` with only what ``torch.load(weights_only=True)`` reads back: tensors (on the CPU), numbers, strings
    and dicts/lists/tuples of them; anything else (e.g. ``torch.__version__``, a ``TorchVersion``, or a ``Path``)
    becomes its ``str`` (:func:`gpuph.apps.checkpoints.weights_only_payload`)."""
    return weights_only_payload(dict(extra or {}))


def save_checkpoint(
    path: str | os.PathLike,
    generator: nn.Module,
    discriminator: nn.Module | None = None,
    config: GANConfig | None = None,
    extra: dict[str, Any] | None = None,
    half: bool = False,
) -> None:
    """Saves the models' weights (``half=True``: floating tensors as float16, half the size) with their
    :class:`GANConfig` and ``extra`` metadata (tensors, numbers, strings and containers of them: :func:`plain_metadata`)
    to one file, through a temporary file renamed into place; :func:`load_checkpoint` reads it."""
    g = _unwrap(generator)
    if config is None:
        config = GANConfig(nz=g.nz, ngf=g.ngf, ndf=_unwrap(discriminator).ndf if discriminator is not None else 64)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": 1,
        "config": asdict(config),
        "generator": _state(generator, half),
        "discriminator": _state(discriminator, half) if discriminator is not None else None,
        "extra": plain_metadata(extra),
    }
    save_torch_file(payload, path)  # never leaves a half-written checkpoint behind


def load_checkpoint(
    path: str | os.PathLike, device: torch.device | str = "cpu"
) -> tuple[Generator, Discriminator | None, dict[str, Any]]:
    """The generator, discriminator (None when not saved) and the file's metadata (``config``, ``extra``), with
    float32 weights on ``device``, in eval mode.

    Raises:
        FileNotFoundError: no such file. ValueError: not a gpuph MNIST GAN checkpoint.
    """
    payload = load_torch_file(path, "a gpuph MNIST GAN checkpoint", map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"gpuph: {path} is not a gpuph MNIST GAN checkpoint (written by save_checkpoint)")

    def restore(model: nn.Module, state: dict[str, Tensor]) -> None:
        ref = model.state_dict()
        model.load_state_dict({k: v.to(ref[k].dtype) if k in ref else v for k, v in state.items()})

    try:  # the format tag is right but the contents may not be: a damaged or hand-edited file
        config = GANConfig(**payload["config"])
        g, d = build_models(config)
        restore(g, payload["generator"])
        if payload["discriminator"] is not None:
            restore(d, payload["discriminator"])
        else:
            d = None
    except (KeyError, TypeError, ValueError, AttributeError, RuntimeError) as err:
        raise ValueError(f"gpuph: {path} is a damaged gpuph MNIST GAN checkpoint ({type(err).__name__}: {err})") \
            from err
    g.to(device).eval()
    if d is not None:
        d.to(device).eval()
    return g, d, {"config": config, "extra": payload.get("extra", {})}


def load_pretrained_gan(device: torch.device | str = "cpu") -> tuple[Generator, Discriminator, dict[str, Any]]:
    """The small generator and discriminator embedded in the package (``gpuph/data/mnist_gan.pt``; how they were
    trained: ``gpuph/data/README.md``), as :func:`load_checkpoint` returns them."""
    if not PRETRAINED_GAN.exists():
        raise FileNotFoundError(f"gpuph: the embedded generator {PRETRAINED_GAN} is missing from this installation")
    return load_checkpoint(PRETRAINED_GAN, device)


def save_pretrained_gan(path: str | os.PathLike, generator: nn.Module, discriminator: nn.Module,
                        extra: dict[str, Any] | None = None) -> None:
    """Writes the embedded-model file: :func:`save_checkpoint` with float16 weights."""
    save_checkpoint(path, generator, discriminator, extra=extra, half=True)


def frozen_copy(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` (unwrapped from DDP) in eval mode with gradients off, e.g. the baseline generator kept
    for before/after comparisons."""
    m = copy.deepcopy(_unwrap(model)).eval()
    for p in m.parameters():
        p.requires_grad_(False)
    return m


def clone_for_training(generator: nn.Module, discriminator: nn.Module | None,
                       device: torch.device | str | None = None) -> tuple[nn.Module, nn.Module | None]:
    """Deep copies of the models (unwrapped from DDP) with gradients on, in train mode, on ``device`` (default: where
    they are), e.g. to fine-tune several times from one baseline."""
    out = []
    for m in (generator, discriminator):
        if m is None:
            out.append(None)
            continue
        c = copy.deepcopy(_unwrap(m)).train()
        for p in c.parameters():
            p.requires_grad_(True)
        out.append(c.to(device) if device is not None else c)
    return out[0], out[1]


@torch.no_grad()
def generate(generator: nn.Module, z: Tensor, batch_size: int = 1024) -> Tensor:
    """Images of the latent vectors ``z (n, nz)`` in eval mode (batch-norm running statistics), in chunks;
    ``(n, 1, 28, 28)`` on the generator's device. The generator's train/eval mode is restored."""
    g = _unwrap(generator)
    was_training = g.training
    g.eval()
    try:
        device = next(g.parameters()).device
        out = [g(z[i:i + batch_size].to(device)) for i in range(0, len(z), batch_size)]
    finally:
        g.train(was_training)
    return torch.cat(out) if out else z.new_zeros((0, 1, 28, 28))
