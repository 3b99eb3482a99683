"""Shared helpers for gpuph's tests: conversion of ``Diagrams`` to the oracle's format, checks of the pinned
conventions (critical pixels, order), neighbourhoods for extremum counts, and input generators."""

from __future__ import annotations

import contextlib
import itertools
import random
import zlib

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, settings
from reference import _sorted_pairs, reference

import gpuph
from gpuph.apps.mnist import default_mnist_dir, read_idx

CONSTRUCTIONS = ("V", "T", "freudenthal")
DIRECTIONS = (True, False)
MNIST_DIR = default_mnist_dir()  # $GPUPH_MNIST_DIR, else ../shared/data/mnist

settings.register_profile(
    "gpuph", deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
settings.load_profile("gpuph")


@pytest.fixture(autouse=True)
def _seeded_per_test(request):
    """torch's, NumPy's and Python's global generators seeded from the test's id: a test that draws unseeded inputs
    (``torch.rand(...)``) draws the same ones in every run, alone or in any worker, so a failure reproduces."""
    seed = zlib.crc32(request.node.nodeid.encode())
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


@pytest.fixture
def two_threads():
    """torch's CPU pool at two threads for the test (the paths that split one image or batch over threads)."""
    old = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(old)


@contextlib.contextmanager
def setting(op, value: int):
    """Runs the block with one of the extension's test-only settings (``op(value)`` returns the previous value),
    restored after."""
    old = op(value)
    try:
        yield
    finally:
        op(old)


# ---------------------------------------------------------------------------------------------- conversion
def to_numpy64(x) -> np.ndarray:
    """The input's values as a float64 numpy array (exact: every half/bfloat16/float32 value is a float64 value)."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().to(torch.float64).numpy()
    return np.asarray(x, dtype=np.float64)


def ours_by_dim(dgm: gpuph.Diagrams, b: int = 0) -> dict[int, np.ndarray]:
    """Image ``b`` of ``dgm`` in the oracle's format: {dim: (n, 2) float64 array sorted by (birth, death)}.

    Built from the raw fields (not through ``to_numpy``), so that ``to_numpy`` is tested against it separately.
    """
    pairs = dgm.pairs.detach().cpu().to(torch.float64).numpy()
    dims = dgm.dim.cpu().numpy()
    batch = dgm.batch.cpu().numpy()
    return {k: _sorted_pairs(pairs[(batch == b) & (dims == k)]) for k in range(dgm.ndim)}


def assert_same_diagrams(ours: dict, ref: dict, what: str = "") -> None:
    assert sorted(ours) == sorted(ref), f"{what}: dimensions {sorted(ours)} != {sorted(ref)}"
    for k, r in ref.items():
        a = ours[k]
        if not np.array_equal(a, r):
            raise AssertionError(
                f"{what}: PD{k} differs from the oracle ({len(a)} pairs vs {len(r)} expected)\n"
                f"gpuph:\n{a}\noracle:\n{r}"
            )


# ---------------------------------------------------------------------------------------------- convention checks
def check_critical_pixels(x, dgm: gpuph.Diagrams, h0: bool = True) -> None:
    """Births and finite deaths are the input values at the reported pixels, bit for bit; essential deaths are
    exactly -inf (superlevel) / +inf (sublevel); exactly one essential class, in H0, per image when H0 was computed
    (``h0``), none otherwise."""
    xt = torch.as_tensor(x).detach()
    B, N = dgm.batch_size, int(np.prod(dgm.spatial_shape))
    flat = xt.reshape(B, N)
    pairs = dgm.pairs.detach()
    assert pairs.dtype == xt.dtype
    assert pairs.shape == (len(dgm), 2)
    for name in ("dim", "batch", "birth_index", "death_index"):
        t = getattr(dgm, name)
        assert t.dtype == torch.int64, name
        assert t.shape == (len(dgm),), name
    if len(dgm) == 0:
        assert not (h0 and B > 0), "H0 computed but no essential class"
        return
    assert int(dgm.batch.min()) >= 0 and int(dgm.batch.max()) < B
    assert int(dgm.birth_index.min()) >= 0 and int(dgm.birth_index.max()) < N
    assert int(dgm.death_index.min()) >= -1 and int(dgm.death_index.max()) < N
    assert int(dgm.dim.min()) >= 0 and int(dgm.dim.max()) < dgm.ndim
    assert torch.equal(flat[dgm.batch, dgm.birth_index], pairs[:, 0])
    fin = dgm.death_index >= 0
    assert torch.equal(flat[dgm.batch[fin], dgm.death_index[fin]], pairs[fin, 1])
    ess = ~fin
    want = -np.inf if dgm.superlevel else np.inf
    assert torch.equal(pairs[ess, 1], torch.full_like(pairs[ess, 1], want))
    # Essential classes: exactly one per image, in H0, when H0 is computed; none otherwise.
    assert torch.all(dgm.dim[ess] == 0)
    per_image = torch.bincount(dgm.batch[ess], minlength=B)
    assert torch.all(per_image == (1 if h0 else 0)), per_image
    # Superlevel: birth > death; sublevel: birth < death; never zero length, except the essential class of an image
    # whose values are all -inf (superlevel) / +inf (sublevel), which is born and dies at that value.
    p64 = pairs.to(torch.float64)
    birth, death = p64[:, 0], p64[:, 1]
    strict = birth > death if dgm.superlevel else birth < death
    allowed = ess & (birth == death) & torch.isinf(birth)
    assert torch.all(strict | allowed), p64[~(strict | allowed)]


def order_keys(dgm: gpuph.Diagrams) -> list[tuple]:
    """The pinned sort key of every row: (batch, dim, -lifetime, not essential, birth of an essential class in
    filtration order, birth_index, death_index), with the lifetime computed exactly in float64 (essential: +inf)."""
    p = dgm.pairs.detach().cpu().to(torch.float64).numpy()
    di = dgm.death_index.cpu().numpy()
    with np.errstate(invalid="ignore", over="ignore"):  # inf - inf (essential, replaced below); max - -max = inf
        life = np.where(di >= 0, np.abs(p[:, 0] - p[:, 1]), np.inf)
    born = np.where(di < 0, -p[:, 0] if dgm.superlevel else p[:, 0], 0.0)
    return list(
        zip(
            dgm.batch.cpu().tolist(),
            dgm.dim.cpu().tolist(),
            (-life).tolist(),
            (di >= 0).tolist(),
            born.tolist(),
            dgm.birth_index.cpu().tolist(),
            di.tolist(),
        )
    )


def check_order(dgm: gpuph.Diagrams) -> None:
    """Rows are sorted by the pinned key. Equal keys are possible (two classes of a 3D grid may share both critical
    pixels: several edges / squares have the same latest vertex), so the order is non-decreasing, not strict."""
    keys = order_keys(dgm)
    for i in range(len(keys) - 1):
        assert keys[i] <= keys[i + 1], f"rows {i} and {i + 1} out of the pinned order: {keys[i]} then {keys[i + 1]}"


def check_against_reference(x, construction: str, superlevel: bool, spatial_dims: int | None = None,
                            dims=None) -> gpuph.Diagrams:
    """Run gpuph on the batch ``x`` and compare every image with the GUDHI oracle (restricted to ``dims``); also
    checks the critical pixels and the order. Returns the diagrams."""
    dgm = gpuph.cubical_persistence(
        x, construction=construction, superlevel=superlevel, spatial_dims=spatial_dims, dims=dims
    )
    xt = torch.as_tensor(x) if not isinstance(x, torch.Tensor) else x
    sd = xt.dim() - 1 if spatial_dims is None else spatial_dims
    grid = tuple(xt.shape[xt.dim() - sd:])
    wanted = list(range(sd)) if dims is None else ([dims] if isinstance(dims, int) else list(dims))
    x64 = to_numpy64(xt).reshape(-1, *grid)
    assert dgm.batch_size == x64.shape[0]
    assert tuple(dgm.spatial_shape) == grid
    assert dgm.superlevel == superlevel
    assert dgm.construction == construction
    assert set(dgm.dim.tolist()) <= set(wanted)
    for b in range(x64.shape[0]):
        ref = reference(x64[b], construction, superlevel)
        ref = {k: (v if k in wanted else v[:0]) for k, v in ref.items()}
        assert_same_diagrams(ours_by_dim(dgm, b), ref, f"{construction} superlevel={superlevel} image {b} {grid}")
    check_critical_pixels(xt, dgm, h0=0 in wanted)
    check_order(dgm)
    return dgm


# ---------------------------------------------------------------------------------------------- neighbourhoods
def neighbour_offsets(construction: str, d: int) -> list[tuple[int, ...]]:
    """Offsets of the H0 neighbourhood: V 2/4/6, T 2/8/26, freudenthal 2/6/14 (v +- e for e in {0,1}^d minus 0)."""
    if construction == "V":
        offs = []
        for a in range(d):
            for s in (-1, 1):
                o = [0] * d
                o[a] = s
                offs.append(tuple(o))
        return offs
    if construction == "T":
        return [o for o in itertools.product((-1, 0, 1), repeat=d) if any(o)]
    if construction == "freudenthal":
        pos = [o for o in itertools.product((0, 1), repeat=d) if any(o)]
        return pos + [tuple(-c for c in o) for o in pos]
    raise ValueError(construction)


def count_strict_extrema(x: np.ndarray, offsets, maxima: bool) -> int:
    """Number of pixels strictly greater (maxima) / smaller (minima) than all their in-grid neighbours."""
    x = np.asarray(x, dtype=np.float64)
    fill = -np.inf if maxima else np.inf
    pad = np.pad(x, 1, constant_values=fill)
    core = tuple(slice(1, n + 1) for n in x.shape)
    ok = np.ones(x.shape, dtype=bool)
    for o in offsets:
        sl = tuple(slice(1 + c, n + 1 + c) for c, n in zip(o, x.shape))
        ok &= (pad[core] > pad[sl]) if maxima else (pad[core] < pad[sl])
    return int(ok.sum())


# ---------------------------------------------------------------------------------------------- inputs
def tie_free(shape, seed: int, dtype=torch.float64, scale: float = 1.0) -> torch.Tensor:
    """Distinct values (a random permutation of 0..n-1, spaced ``scale`` apart, shifted): no ties, gaps far above any
    finite-difference step."""
    g = torch.Generator().manual_seed(seed)
    n = int(np.prod(shape))
    return (torch.randperm(n, generator=g).to(dtype) * scale - n * scale / 3).reshape(shape)


def sidon_values(shape, seed: int, scale: float = 0.01, dtype=torch.float64) -> torch.Tensor:
    """Distinct values whose pairwise differences are distinct too (a Sidon set, Erdos-Turan: 2 p i + (i^2 mod p)),
    at least ``scale`` apart, at random pixels: neither the pairing nor the order by lifetime changes under a
    perturbation much smaller than ``scale`` (what gradcheck needs)."""
    n = int(np.prod(shape))
    p = next(q for q in itertools.count(max(n, 2)) if all(q % r for r in range(2, int(q**0.5) + 1)))
    i = np.arange(n)
    vals = 2 * p * i + (i * i) % p
    perm = np.random.default_rng(seed).permutation(n)
    return torch.from_numpy((vals[perm] - vals.mean()) * scale).to(dtype).reshape(shape)


def smooth_field(shape, seed: int, sigma: float = 1.5) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    return gaussian_filter(rng.standard_normal(shape), sigma=sigma, mode="nearest")


@contextlib.contextmanager
def poisoned_allocations():
    """torch's empty tensors filled (NaN, the integer maximum) instead of left as they were allocated: a kernel that
    reads memory nothing wrote then sees the poison, not the zeros of the CPU's fresh pages. (The fill comes with
    deterministic algorithms, in warn-only mode so that ops without a deterministic version still run.)"""
    old = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
           torch.utils.deterministic.fill_uninitialized_memory)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.utils.deterministic.fill_uninitialized_memory = True
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(old[0], warn_only=old[1])
        torch.utils.deterministic.fill_uninitialized_memory = old[2]


def load_mnist(n: int = 8, offset: int = 0) -> np.ndarray:
    """``n`` MNIST test digits as a (n, 28, 28) uint8 array; skips the test when the data is absent."""
    path = MNIST_DIR / "t10k-images-idx3-ubyte"
    if not any(p.exists() for p in (path, path.with_name(path.name + ".gz"))):
        pytest.skip(f"MNIST not found at {path}[.gz]")
    return read_idx(path, limit=offset + n)[offset:].copy()


def staircase(n: int) -> torch.Tensor:
    """A (1, 2n + 1) float64 signal whose minima deepen and whose maxima rise from left to right (minima n-1, ..., 0
    after a first one at -1): each maximum kills the minimum to its right, which the device's relaxed elder rule
    learns one maximum per iteration (about n iterations; kernels/merge_tree_steps.cuh)."""
    x = torch.empty(2 * n + 1, dtype=torch.float64)
    x[0::2] = torch.cat([torch.tensor([-1.0]), torch.arange(n - 1, -1, -1.0)])
    x[1::2] = 10.0 * n + torch.arange(n, dtype=torch.float64)
    return x[None]


@pytest.fixture(scope="session")
def fake_mnist(tmp_path_factory):
    """A tiny MNIST folder (tests/fake_mnist.py): the 64 embedded test digits, 4 times over as the training split."""
    from fake_mnist import write_sample_mnist

    return write_sample_mnist(tmp_path_factory.mktemp("mnist"))
