"""Metrics of generated MNIST digits, as in the TopologyLayer paper's Figure 13.

- **MMD** and **COV**: the *minimum matching distance* and *coverage* of Achlioptas et al., "Learning
  Representations and Generative Models for 3D Point Clouds" (ICML 2018), which the TopologyLayer authors cite for
  these columns. For generated samples :math:`S_g` and reference (real) samples :math:`S_r` and a distance :math:`d`,

  .. math::
      \\mathrm{MMD}(S_g, S_r) = \\frac{1}{|S_r|} \\sum_{y \\in S_r} \\min_{x \\in S_g} d(x, y), \\qquad
      \\mathrm{COV}(S_g, S_r) = \\frac{|\\{\\arg\\min_{y \\in S_r} d(x, y) : x \\in S_g\\}|}{|S_r|}.

  Lower MMD is better (every real digit has a close generated one: fidelity), higher COV is better (the generated
  digits' nearest real digits spread over the reference set: diversity). This MMD is not the *kernel* maximum mean
  discrepancy that Xu et al. ("An empirical study on evaluation metrics of generative adversarial networks", 2018)
  study under the same acronym. ``-L2`` uses the Euclidean distance between images (pixels in ``[0, 1]``), ``-Wass``
  the 1-Wasserstein distance between the images' PD0 (superlevel, V construction).
- **Inception score** (Salimans et al., 2016) with an MNIST classifier in place of the Inception network:
  :math:`\\exp(\\mathbb{E}_x \\mathrm{KL}(p(y|x) \\| p(y)))`, between 1 and 10, higher is better.
- **Connected components**: the mean number of PD0 classes with lifetime above a threshold.

The MMD/COV functions take a distance matrix, so any distance works; :func:`l2_distance_matrix` and
:func:`wasserstein_distance_matrix` build the two of the paper.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

import gpuph

__all__ = [
    "coverage",
    "evaluate_samples",
    "inception_score",
    "l2_distance_matrix",
    "mean_component_count",
    "minimum_matching_distance",
    "pd0_diagrams",
    "wasserstein_backend",
    "wasserstein_distance_matrix",
]


def _check_matrix(dist: Tensor) -> Tensor:
    dist = torch.as_tensor(dist)
    if dist.dim() != 2:
        raise ValueError(f"gpuph: expected a (generated, reference) distance matrix, got shape {tuple(dist.shape)}")
    if dist.shape[0] == 0 or dist.shape[1] == 0:
        raise ValueError(f"gpuph: both sample sets must be non-empty, got a {tuple(dist.shape)} distance matrix")
    if torch.isnan(dist).any():
        raise ValueError("gpuph: the distance matrix contains NaN")
    return dist


def minimum_matching_distance(dist: Tensor) -> float:
    """MMD: the mean over reference samples of the distance to their nearest generated sample.

    Args:
        dist: ``(G, R)`` distances, ``dist[i, j] = d(generated_i, reference_j)``.
    """
    dist = _check_matrix(dist)
    return float(dist.min(dim=0).values.double().mean())


def coverage(dist: Tensor) -> float:
    """COV: the fraction of reference samples that are the nearest reference of at least one generated sample (ties
    go to the first reference).

    Args:
        dist: ``(G, R)`` distances, ``dist[i, j] = d(generated_i, reference_j)``.
    """
    dist = _check_matrix(dist)
    return float(torch.unique(dist.argmin(dim=1)).numel() / dist.shape[1])


def l2_distance_matrix(a: Tensor, b: Tensor) -> Tensor:
    """``(Na, Nb)`` float64 Euclidean distances between the flattened images of ``a (Na, ...)`` and ``b (Nb, ...)``
    (computed from differences, not the ``|a|^2 + |b|^2 - 2ab`` expansion, so that equal images are at distance 0)."""
    a = torch.as_tensor(a).reshape(len(a), -1).double()
    b = torch.as_tensor(b).reshape(len(b), -1).double().to(a.device)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"gpuph: images of {a.shape[1]} and {b.shape[1]} pixels cannot be compared")
    return torch.cdist(a, b, compute_mode="donot_use_mm_for_euclid_dist")


def pd0_diagrams(images: Tensor) -> gpuph.Diagrams:
    """PD0 of the superlevel V-construction filtration of ``(B, 1, H, W)`` or ``(B, H, W)`` images (detached)."""
    return gpuph.cubical_persistence(torch.as_tensor(images).detach(), dims=0, spatial_dims=2, superlevel=True,
                                     construction="V")


@functools.cache
def wasserstein_backend() -> str | None:
    """``"gpuph"`` when :func:`gpuph.distances.pairwise_wasserstein` works (tried once on a tiny input), else
    ``"gudhi"`` (the per-pair fallback of :func:`wasserstein_distance_matrix`; needs GUDHI and POT) when importable,
    else None."""
    try:
        from gpuph.distances import pairwise_wasserstein

        d = pd0_diagrams(torch.tensor([[[0.0, 1.0], [0.5, 0.2]]]))
        pairwise_wasserstein(d, d, dim=0, p=1.0)
        return "gpuph"
    except Exception:  # noqa: BLE001 - missing module, or a build whose extension lacks the op: use the fallback
        pass
    try:
        import gudhi.wasserstein  # noqa: F401  (imports POT)
    except ImportError:
        return None
    return "gudhi"


def _gudhi_matrix(a: gpuph.Diagrams, b: gpuph.Diagrams, dim: int, p: float) -> Tensor:
    from gudhi.wasserstein import wasserstein_distance

    # GUDHI expects birth <= death: superlevel diagrams are negated (an isometry of the plane that maps the diagonal to
    # itself), so distances are unchanged and the essential class (b, -inf) becomes (-b, +inf).
    def side(d: gpuph.Diagrams) -> list[np.ndarray]:
        return [-x[dim] if d.superlevel else x[dim] for x in d.to_numpy()]

    da, db = side(a), side(b)
    out = np.empty((len(da), len(db)))
    with warnings.catch_warnings():
        # POT warns ("problem infeasible") when neither diagram has a finite point; GUDHI's answer (the essential
        # classes' cost alone) is still right.
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        for i, x in enumerate(da):
            for j, y in enumerate(db):
                out[i, j] = wasserstein_distance(x, y, order=p, internal_p=math.inf, keep_essential_parts=True)
    return torch.from_numpy(out)


def wasserstein_distance_matrix(a: gpuph.Diagrams, b: gpuph.Diagrams, dim: int = 0, p: float = 1.0,
                                backend: str = "auto") -> Tensor:
    """``(Ba, Bb)`` float64 matrix of p-Wasserstein distances between the dimension-``dim`` diagrams of every image
    of ``a`` and every image of ``b`` (on the CPU).

    Args:
        a, b: diagrams of two batches.
        dim: homology dimension; p: the Wasserstein order (the paper's metric: 1).
        backend: ``"gpuph"`` (``gpuph.distances.pairwise_wasserstein``), ``"gudhi"`` (one
            ``gudhi.wasserstein.wasserstein_distance`` call per pair: exact optimal transport with POT, the
            :math:`L_\\infty` ground metric, essential classes matched among themselves) or ``"auto"`` (gpuph when
            ``gpuph.distances`` is available, else gudhi; see :func:`wasserstein_backend`).

    Raises:
        ValueError, TypeError: as :func:`gpuph.distances.pairwise_wasserstein`, whatever the backend.
    """
    # Both backends refuse what gpuph.distances refuses (a dimension not computed, p outside [1, inf), superlevel
    # against sublevel): the fallback must not return numbers where the default raises.
    from gpuph.distances import _check_diagrams, _check_dim, _check_orders

    _check_diagrams(a, b, same_batch=False)
    dim = _check_dim(a, b, dim)
    p, _ = _check_orders(p, math.inf)
    if backend == "auto":
        backend = wasserstein_backend()
        if backend is None:
            raise ImportError("gpuph: neither gpuph.distances nor GUDHI with POT (pip install gudhi pot) is available "
                              "for Wasserstein distances")
    if backend == "gpuph":
        from gpuph.distances import pairwise_wasserstein

        return torch.as_tensor(pairwise_wasserstein(a, b, dim=dim, p=p)).detach().double().cpu()
    if backend == "gudhi":
        return _gudhi_matrix(a, b, dim, p)
    raise ValueError(f"gpuph: backend must be 'auto', 'gpuph' or 'gudhi', got {backend!r}")


def inception_score(probs: Tensor, splits: int = 1) -> tuple[float, float]:
    """Inception score :math:`\\exp(\\mathbb{E}_x \\mathrm{KL}(p(y|x) \\| p(y)))` of class probabilities.

    Args:
        probs: ``(N, C)`` rows of class probabilities (each row sums to 1), e.g. from
            :func:`gpuph.apps.classifier.predict_proba`.
        splits: the samples are cut into this many equal consecutive parts (the remainder is dropped), the score is
            computed on each, as Salimans et al. do (they use 10).

    Returns:
        ``(mean, std)`` over the splits (std 0 for one split).
    """
    probs = torch.as_tensor(probs).double()
    if probs.dim() != 2 or probs.shape[0] == 0:
        raise ValueError(f"gpuph: probs must be a non-empty (N, C) matrix, got shape {tuple(probs.shape)}")
    if splits < 1 or splits > probs.shape[0]:
        raise ValueError(f"gpuph: splits must be in 1..{probs.shape[0]}, got {splits}")
    if (probs < 0).any() or not torch.allclose(probs.sum(1), torch.ones_like(probs[:, 0]), atol=1e-4):
        raise ValueError("gpuph: probs rows must be probability vectors (nonnegative, summing to 1)")
    n = probs.shape[0] // splits
    scores = []
    for s in range(splits):
        part = probs[s * n:(s + 1) * n]
        marginal = part.mean(0, keepdim=True)
        # 0 * log 0 = 0: xlogy handles p(y|x) = 0 exactly.
        kl = (torch.xlogy(part, part) - torch.xlogy(part, marginal.expand_as(part))).sum(1)
        scores.append(math.exp(float(kl.mean())))
    t = torch.tensor(scores, dtype=torch.float64)
    return float(t.mean()), float(t.std(unbiased=False)) if splits > 1 else 0.0


def mean_component_count(images_or_dgm, threshold: float = 0.5) -> float:
    """Mean number, over the images, of PD0 classes (superlevel, V construction) with lifetime ``> threshold``,
    essential class included (a digit in one piece counts 1). Takes images ``(B, 1, H, W)`` or their PD0 diagrams."""
    dgm = images_or_dgm if isinstance(images_or_dgm, gpuph.Diagrams) else pd0_diagrams(images_or_dgm)
    if dgm.batch_size == 0:
        raise ValueError("gpuph: no images")
    d = dgm.in_dim(0)
    keep = d.lifetimes() > threshold
    return float(torch.bincount(d.batch[keep], minlength=d.batch_size).double().mean())


# The smallest split of the Inception score in evaluate_samples: a split of m samples scores at most m, so splits of
# a few samples measure their size, not the samples (16 samples in 10 splits scored exactly 1).
IS_MIN_SPLIT = 50


def evaluate_samples(
    samples: Tensor,
    reference: Tensor,
    classifier: torch.nn.Module | None = None,
    thresholds: Sequence[float] = (0.5, 0.1),
    wasserstein_samples: int | None = None,
    is_splits: int = 10,
    backend: str = "auto",
) -> dict[str, float]:
    """All the metrics of generated ``samples`` against real ``reference`` digits.

    Args:
        samples: ``(G, 1, 28, 28)`` generated images in ``[0, 1]``; reference: ``(R, 1, 28, 28)`` real ones.
        classifier: an MNIST classifier for the Inception score (skipped when None).
        thresholds: lifetimes for the component counts.
        wasserstein_samples: use only the first this many samples and references for MMD-Wass/COV-Wass (the
            per-pair gudhi fallback is slow; ``>= 1``); default all.
        is_splits: the most splits of the Inception score; fewer when a split would hold fewer than
            ``IS_MIN_SPLIT`` (50) samples (one split below 100 samples).
        backend: of :func:`wasserstein_distance_matrix`; with ``"auto"`` and no backend available, MMD-Wass and
            COV-Wass are left out (with a warning).

    Returns:
        ``{"MMD-L2", "COV-L2", "MMD-Wass", "COV-Wass", "IS", "IS-std", "IS-splits", "components>t", ...}``.

    Raises:
        ValueError: ``wasserstein_samples`` or ``is_splits`` below 1.
    """
    if wasserstein_samples is not None and wasserstein_samples < 1:
        raise ValueError(f"gpuph: wasserstein_samples must be >= 1 (or None: all), got {wasserstein_samples}")
    if is_splits < 1:
        raise ValueError(f"gpuph: is_splits must be >= 1, got {is_splits}")
    samples, reference = samples.detach().cpu(), reference.detach().cpu()
    out: dict[str, float] = {}
    dl2 = l2_distance_matrix(samples, reference)
    out["MMD-L2"] = minimum_matching_distance(dl2)
    out["COV-L2"] = coverage(dl2)
    k = len(samples) if wasserstein_samples is None else min(wasserstein_samples, len(samples))
    r = len(reference) if wasserstein_samples is None else min(wasserstein_samples, len(reference))
    dg = pd0_diagrams(samples)
    if backend == "auto" and wasserstein_backend() is None:
        warnings.warn("gpuph: no Wasserstein backend (gpuph.distances, or gudhi with POT): MMD-Wass and COV-Wass "
                      "are left out", stacklevel=2)
    else:
        dw = wasserstein_distance_matrix(pd0_diagrams(samples[:k]), pd0_diagrams(reference[:r]), dim=0, p=1.0,
                                         backend=backend)
        out["MMD-Wass"] = minimum_matching_distance(dw)
        out["COV-Wass"] = coverage(dw)
    if classifier is not None:
        from .classifier import predict_proba

        splits = max(1, min(is_splits, len(samples) // IS_MIN_SPLIT))
        out["IS"], out["IS-std"] = inception_score(predict_proba(classifier, samples).cpu(), splits=splits)
        out["IS-splits"] = splits
    for t in thresholds:
        out[f"components>{t:g}"] = mean_component_count(dg, t)
    return out
