"""A 3D-GAN-style voxel generator and discriminator, their training on :mod:`gpuph.apps.voxel_shapes`, and
fine-tuning with a topology loss (the TopologyLayer paper's 3D experiment, its Figure 14).

Architecture (Wu et al., "Learning a Probabilistic Latent Space of Object Shapes via 3D Generative-Adversarial
Modeling", 2016, scaled to 32^3): the generator maps ``z`` to ``4^3 x 4ch`` with a transposed convolution, then three
stride-2 transposed convolutions (kernel 4) with batch norm and ReLU double the grid to ``32^3 x 1``, ending in a
sigmoid; the discriminator mirrors it with stride-2 convolutions, batch norm and leaky ReLU, and a final ``4^3``
convolution to one logit. The GAN loss is the non-saturating logistic loss; as in 3D-GAN, the discriminator is updated
only while its accuracy on the current batch is below ``d_acc_max`` (it otherwise overwhelms the generator).

Topology loss (fine-tuning): ``topology_loss(v) = E(1, 0, 2; PD0)`` of the superlevel V-construction diagrams of the
generated grids, the sum of the lifetimes of all 0-dimensional classes but the most persistent one, averaged over the
batch. With 6-connectivity, every component of ``{v >= t}`` besides the main one that lives over a range of levels
pays its lifetime, so the loss pushes the generator towards one connected solid. The fine-tuning objective of the
generator is ``L_GAN + topo_weight * E`` (E averaged over the batch); the discriminator keeps its usual update. E is
not normalised: a generator that scatters hundreds of small blobs has E in the hundreds while ``L_GAN`` is about 1,
so ``topo_weight`` sets the trade-off. On the CPU baseline of ``docs/gan_voxels.md`` (E ~ 370), ``0.01`` (the
example's default) cut the components 9x while keeping the occupancy; ``1`` cut them 80x but the topology term
overrode the GAN loss and the shapes degenerated into a few slabs.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import losses
from ..cubical import cubical_persistence
from .checkpoints import load_torch_file, save_torch_file, unwrap_model

__all__ = [
    "VoxelDiscriminator",
    "VoxelGenerator",
    "count_components",
    "count_pd0_components",
    "gan_step",
    "load_checkpoint",
    "sample_latents",
    "save_checkpoint",
    "topology_loss",
    "train",
]


def _dcgan_init(module: nn.Module) -> None:
    """DCGAN's initialisation: convolution weights N(0, 0.02), batch-norm scales N(1, 0.02), biases 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv3d, nn.ConvTranspose3d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm3d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


class VoxelGenerator(nn.Module):
    """3D-GAN-style generator: ``(B, nz)`` latent vectors to ``(B, 1, 32, 32, 32)`` occupancies in ``[0, 1]``.

    Args:
        nz: latent dimension.
        ch: width; the layers have ``4ch, 2ch, ch`` channels (3D-GAN at 64^3 used 512, 256, 128, 64).

    Shape:
        input ``(B, nz)`` (or ``(B, nz, 1, 1, 1)``), any float dtype; output ``(B, 1, 32, 32, 32)``, after a sigmoid.
    """

    def __init__(self, nz: int = 64, ch: int = 32) -> None:
        super().__init__()
        if nz < 1 or ch < 1:
            raise ValueError(f"gpuph: nz and ch must be >= 1, got nz={nz}, ch={ch}")
        self.nz, self.ch = int(nz), int(ch)

        def up(cin: int, cout: int) -> list[nn.Module]:
            return [nn.ConvTranspose3d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm3d(cout), nn.ReLU(True)]

        self.net = nn.Sequential(
            nn.ConvTranspose3d(nz, 4 * ch, 4, 1, 0, bias=False), nn.BatchNorm3d(4 * ch), nn.ReLU(True),  # 4^3
            *up(4 * ch, 2 * ch),  # 8^3
            *up(2 * ch, ch),  # 16^3
            nn.ConvTranspose3d(ch, 1, 4, 2, 1),  # 32^3
        )
        _dcgan_init(self)
        # start near the data's occupancy (a few percent of voxels are solid) instead of 0.5 everywhere
        nn.init.constant_(self.net[-1].bias, -3.0)

    def forward(self, z: Tensor) -> Tensor:
        shape = tuple(z.shape)
        if z.dim() == 2:
            z = z[:, :, None, None, None]
        if z.dim() != 5 or z.shape[1] != self.nz or z.shape[2:] != (1, 1, 1):
            raise ValueError(f"gpuph: expected latents of shape (B, {self.nz}), got {shape}")
        return torch.sigmoid(self.net(z))


class VoxelDiscriminator(nn.Module):
    """3D-GAN-style discriminator: ``(B, 1, 32, 32, 32)`` grids to ``(B,)`` logits (real > 0).

    Args:
        ch: width; the layers have ``ch, 2ch, 4ch`` channels.
    """

    def __init__(self, ch: int = 32) -> None:
        super().__init__()
        if ch < 1:
            raise ValueError(f"gpuph: ch must be >= 1, got {ch}")
        self.ch = int(ch)

        def down(cin: int, cout: int, norm: bool = True) -> list[nn.Module]:
            layers: list[nn.Module] = [nn.Conv3d(cin, cout, 4, 2, 1, bias=not norm)]
            return layers + ([nn.BatchNorm3d(cout)] if norm else []) + [nn.LeakyReLU(0.2, True)]

        self.net = nn.Sequential(
            *down(1, ch, norm=False),  # 16^3
            *down(ch, 2 * ch),  # 8^3
            *down(2 * ch, 4 * ch),  # 4^3
            nn.Conv3d(4 * ch, 1, 4, 1, 0),  # 1
        )
        _dcgan_init(self)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 5 or x.shape[1:] != (1, 32, 32, 32):
            raise ValueError(f"gpuph: expected grids of shape (B, 1, 32, 32, 32), got {tuple(x.shape)}")
        return self.net(x).view(-1)


# ------------------------------------------------------------------------------------------------- topology
def topology_loss(v: Tensor, reduction: str = "mean") -> Tensor:
    """``E(1, 0, 2; PD0)`` of the superlevel V-construction diagrams of voxel grids: the total lifetime of all
    0-dimensional classes but the most persistent one (essential classes closed at the grid's minimum).

    Only H0 is computed (``dims=0``): the loss needs no more, and H1 of 3D grids is by far the costliest part.

    Args:
        v: ``(B, 1, D, H, W)`` or ``(B, D, H, W)`` float grids, differentiable.
        reduction: ``"mean"`` (over the batch), ``"sum"`` or ``"none"`` (a ``(B,)`` tensor).
    """
    dgm = cubical_persistence(v, dims=0, spatial_dims=3, superlevel=True, construction="V")
    return losses.persistence_energy(dgm, dim=0, p=1, q=0, i0=2, reduction=reduction)


@torch.no_grad()
def count_pd0_components(v: Tensor, threshold: float = 0.5) -> Tensor:
    """``(B,)`` int64: number of superlevel PD0 classes (V construction, 6-connectivity) with lifetime
    ``> threshold``, the essential class included (infinite lifetime): the components that persist over more than
    ``threshold`` of the value range."""
    dgm = cubical_persistence(v.detach(), dims=0, spatial_dims=3, superlevel=True, construction="V")
    keep = dgm.lifetimes() > threshold
    return torch.bincount(dgm.batch[keep], minlength=dgm.batch_size)


def count_components(v: Tensor, level: float = 0.5) -> Tensor:
    """``(B,)`` int64: number of 6-connected components of ``{v >= level}`` per grid (``scipy.ndimage.label`` with
    the 3D cross structuring element ``generate_binary_structure(3, 1)``; needs scipy; runs on the CPU).

    Args:
        v: ``(B, 1, D, H, W)`` or ``(B, D, H, W)`` grids.
    """
    from scipy import ndimage  # optional dependency, only for this metric

    grids = (v.detach() >= level).reshape(v.shape[0], *v.shape[-3:]).cpu().numpy()
    structure = ndimage.generate_binary_structure(3, 1)
    return torch.tensor([ndimage.label(g, structure=structure)[1] for g in grids], dtype=torch.int64)


# ------------------------------------------------------------------------------------------------- training
def sample_latents(n: int, nz: int, seed: int, device: torch.device | str | None = None) -> Tensor:
    """``(n, nz)`` standard normal latents drawn on the CPU from ``seed`` (the same on every device)."""
    return torch.randn(n, nz, generator=torch.Generator().manual_seed(int(seed))).to(device)


def gan_step(
    gen: VoxelGenerator,
    disc: VoxelDiscriminator,
    opt_g: torch.optim.Optimizer,
    opt_d: torch.optim.Optimizer,
    real: Tensor,
    z: Tensor,
    topo_weight: float = 0.0,
    d_acc_max: float = 0.8,
) -> dict[str, float]:
    """One GAN iteration: a discriminator update (skipped while its accuracy exceeds ``d_acc_max``), then a
    generator update on ``L_GAN + topo_weight * topology_loss(fake)``.

    Returns:
        ``{"d_loss", "g_loss", "topo", "d_acc", "d_updated"}`` as floats (``topo`` is the mean topology loss of the
        batch, computed only when ``topo_weight > 0``, else NaN).
    """
    ones = torch.ones(len(real), device=real.device)
    zeros = torch.zeros(len(z), device=real.device)
    fake = gen(z)
    logit_real, logit_fake = disc(real), disc(fake.detach())
    d_loss = (F.binary_cross_entropy_with_logits(logit_real, ones)
              + F.binary_cross_entropy_with_logits(logit_fake, zeros))
    d_acc = 0.5 * ((logit_real > 0).float().mean() + (logit_fake < 0).float().mean()).item()
    updated = d_acc < d_acc_max
    if updated:
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
    g_loss = F.binary_cross_entropy_with_logits(disc(fake), torch.ones(len(z), device=real.device))
    total = g_loss
    topo = math.nan
    if topo_weight > 0:
        t = topology_loss(fake)
        total = total + topo_weight * t
        topo = t.item()
    opt_g.zero_grad(set_to_none=True)
    total.backward()
    opt_g.step()
    return {"d_loss": d_loss.item(), "g_loss": g_loss.item(), "topo": topo, "d_acc": d_acc, "d_updated": float(updated)}


def _batches(data: Tensor, batch_size: int, generator: torch.Generator) -> Iterator[Tensor]:
    """Endless shuffled batches of ``data`` (one epoch after another, last incomplete batch dropped)."""
    while True:
        perm = torch.randperm(len(data), generator=generator)
        for s in range(0, len(data) - batch_size + 1, batch_size):
            yield data[perm[s:s + batch_size]]


def train(
    gen: VoxelGenerator,
    disc: VoxelDiscriminator,
    data: Tensor,
    iters: int,
    *,
    batch_size: int = 32,
    lr_g: float = 2e-4,
    lr_d: float = 2e-4,
    topo_weight: float = 0.0,
    d_acc_max: float = 0.8,
    seed: int = 0,
    opt_state: dict | None = None,
    progress: bool = True,
    desc: str = "train",
) -> tuple[list[dict[str, float]], dict]:
    """``iters`` GAN iterations (:func:`gan_step`) on shuffled batches of ``data``; Adam with betas (0.5, 0.999).

    Args:
        gen, disc: the models, on the device to train on (trained in place).
        data: ``(N, 1, 32, 32, 32)`` training grids, any dtype (uint8 occupancies are converted per batch) and device.
        iters: number of iterations (batches).
        topo_weight: weight of :func:`topology_loss` in the generator's objective (0: plain GAN training).
        seed: seeds the batch order and the latents.
        opt_state: optimizer states from a previous call (the returned dict) to resume from: Adam's moments and step
            counts carry on, at this call's ``lr_g`` and ``lr_d``.
        progress: show a tqdm progress bar.

    Returns:
        the per-iteration logs of :func:`gan_step`, and ``{"opt_g": ..., "opt_d": ...}`` optimizer state dicts.
    """
    from tqdm.auto import tqdm

    if data.dim() != 5 or data.shape[1:] != (1, 32, 32, 32):
        raise ValueError(f"gpuph: data must have shape (N, 1, 32, 32, 32), got {tuple(data.shape)}")
    if len(data) < batch_size:
        raise ValueError(f"gpuph: need at least batch_size={batch_size} training grids, got {len(data)}")
    device = next(gen.parameters()).device
    opt_g = torch.optim.Adam(gen.parameters(), lr=lr_g, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(disc.parameters(), lr=lr_d, betas=(0.5, 0.999))
    if opt_state is not None:
        opt_g.load_state_dict(opt_state["opt_g"])
        opt_d.load_state_dict(opt_state["opt_d"])
        # load_state_dict also restores the saved learning rates: the moments resume, the rates are this call's
        for opt, lr in ((opt_g, lr_g), (opt_d, lr_d)):
            for group in opt.param_groups:
                group["lr"] = lr
    g = torch.Generator().manual_seed(int(seed))
    batches = _batches(data, batch_size, g)
    gen.train()
    disc.train()
    logs = []
    bar = tqdm(range(iters), desc=desc, disable=not progress, dynamic_ncols=True)
    for _ in bar:
        real = next(batches).to(device=device, dtype=torch.float32, non_blocking=True)
        z = torch.randn(batch_size, gen.nz, generator=g).to(device)
        log = gan_step(gen, disc, opt_g, opt_d, real, z, topo_weight=topo_weight, d_acc_max=d_acc_max)
        logs.append(log)
        post = {k: f"{log[k]:.3f}" for k in ("d_loss", "g_loss", "d_acc")}
        if topo_weight > 0:
            post["topo"] = f"{log['topo']:.3f}"
        bar.set_postfix(post)
    return logs, {"opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict()}


# ------------------------------------------------------------------------------------------------- checkpoints
def save_checkpoint(path: str | Path, gen: VoxelGenerator, disc: VoxelDiscriminator, **extra) -> None:
    """Saves both models' weights and sizes, and ``extra`` (e.g. optimizer states, logs, arguments), with
    ``torch.save`` through a temporary file renamed into place. ``extra`` keeps tensors, numbers, strings and
    dicts/lists/tuples of them; other objects are saved as their ``str``
    (:func:`gpuph.apps.checkpoints.weights_only_payload`), so that :func:`load_checkpoint` needs no unpickling of
    arbitrary objects."""
    gen, disc = unwrap_model(gen), unwrap_model(disc)
    state = {"nz": gen.nz, "ch_g": gen.ch, "ch_d": disc.ch, "gen": gen.state_dict(), "disc": disc.state_dict(),
             "extra": extra}
    save_torch_file(state, path)  # through a temporary file: never half-written


def load_checkpoint(
    path: str | Path, map_location: torch.device | str | None = "cpu"
) -> tuple[VoxelGenerator, VoxelDiscriminator, dict]:
    """Rebuilds the models saved by :func:`save_checkpoint`; returns ``(gen, disc, extra)``, the models and the
    tensors of ``extra`` on ``map_location`` (None: the CPU).

    The file is read with ``torch.load(weights_only=True)``: a file holding other pickled objects is refused, not
    executed. It is read onto the CPU (where :func:`save_checkpoint` put every tensor), then moved: a device that
    this machine lacks is torch's error about that device, not a claim that the file is no checkpoint.

    Raises:
        FileNotFoundError: no such file. ValueError: not a checkpoint written by :func:`save_checkpoint`.
    """
    state = load_torch_file(path, "a voxel GAN checkpoint", map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or any(k not in state for k in ("nz", "ch_g", "ch_d", "gen", "disc", "extra")):
        raise ValueError(f"gpuph: {path} is not a voxel GAN checkpoint (written by save_checkpoint)")
    try:  # the keys are there but the contents may not fit: a damaged or hand-edited file
        gen = VoxelGenerator(state["nz"], state["ch_g"])
        disc = VoxelDiscriminator(state["ch_d"])
        gen.load_state_dict(state["gen"])
        disc.load_state_dict(state["disc"])
    except (TypeError, ValueError, AttributeError, RuntimeError) as err:
        raise ValueError(f"gpuph: {path} is a damaged voxel GAN checkpoint ({type(err).__name__}: {err})") from err
    device = torch.device("cpu" if map_location is None else map_location)

    def move(obj):
        if isinstance(obj, Tensor):
            return obj.to(device)
        if isinstance(obj, dict):
            return {k: move(v) for k, v in obj.items()}
        if isinstance(obj, (list, tuple)):
            return type(obj)(move(v) for v in obj)
        return obj

    return gen.to(device), disc.to(device), move(state["extra"])
