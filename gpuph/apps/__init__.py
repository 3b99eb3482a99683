"""Applications built on gpuph's public API (library code behind ``examples/``).

Submodules are imported on demand, so that ``import gpuph`` stays light:

- :mod:`gpuph.apps.mnist`: reader of MNIST's raw idx files (gzip or not).
- :mod:`gpuph.apps.gan`: a DCGAN-style MNIST generator and discriminator, baseline training, fine-tuning with the
  topology loss :math:`E(1,0,2; PD_0)`, checkpoints, the embedded pre-trained models.
- :mod:`gpuph.apps.classifier`: a small MNIST CNN (for an Inception-style score).
- :mod:`gpuph.apps.gan_metrics`: minimum matching distance and coverage (L2 and PD0 Wasserstein), Inception score,
  component counts.
- :mod:`gpuph.apps.gan_report`: before/after figures and the metrics table of a fine-tuning.
- :mod:`gpuph.apps.voxel_shapes`: a procedural dataset of 32^3 voxel shapes (chairs, tables, lamps, tori, blobs).
- :mod:`gpuph.apps.regularization`: regression penalties (L1, L2, TV, Top1/Top2 on weak-Alpha or superlevel PD0)
  and the batched cross-validated regression experiment.
- :mod:`gpuph.apps.directional`: directional-sweep persistence features of images; :mod:`gpuph.apps.topmodel`:
  TopModel, an MLP and a CNN, and the targeted gradient attack.
- :mod:`gpuph.apps.voxel_gan`: a 3D-GAN-style voxel generator and discriminator with the same topology fine-tuning.
"""

__all__ = [
    "classifier",
    "directional",
    "gan",
    "gan_metrics",
    "gan_report",
    "mnist",
    "regularization",
    "topmodel",
    "voxel_gan",
    "voxel_shapes",
]
