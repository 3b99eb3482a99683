"""Oracle-free invariants: extremum counts, V/T duality, symmetries of the grid, consistency across dims."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from conftest import (
    CONSTRUCTIONS,
    DIRECTIONS,
    assert_same_diagrams,
    count_strict_extrema,
    neighbour_offsets,
    ours_by_dim,
    smooth_field,
    tie_free,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import _sorted_pairs

import gpuph


# ---------------------------------------------------------------------------------------------- extremum counts
def _check_extrema(x: torch.Tensor, construction: str, superlevel: bool) -> None:
    """Tie-free input: every strict local maximum (superlevel) / minimum (sublevel) in the construction's H0
    neighbourhood births one component; all but the essential one die with a nonzero lifetime."""
    d = x.dim() - 1
    dgm = gpuph.cubical_persistence(x, construction=construction, superlevel=superlevel)
    offs = neighbour_offsets(construction, d)
    h0 = dgm.in_dim(0)
    for b in range(x.shape[0]):
        n_finite = int(((h0.batch == b) & (h0.death_index >= 0)).sum())
        n_ext = count_strict_extrema(x[b].numpy(), offs, maxima=superlevel)
        assert n_finite + 1 == n_ext, f"{construction} {d}D superlevel={superlevel} image {b}"
        # Births of H0 are exactly the extrema.
        births = set(h0.birth_index[h0.batch == b].tolist())
        assert len(births) == n_ext


@pytest.mark.parametrize("superlevel", DIRECTIONS, ids=["super", "sub"])
@pytest.mark.parametrize("construction", CONSTRUCTIONS)
@pytest.mark.parametrize("shape", [(50,), (17, 23), (32, 32), (6, 9, 7), (12, 12, 12)], ids=str)
def test_h0_count_equals_local_extrema(construction, superlevel, shape):
    x = torch.stack([tie_free(shape, s) for s in range(3)])
    _check_extrema(x, construction, superlevel)


@settings(max_examples=40, deadline=None)
@given(
    shape=st.lists(st.integers(1, 10), min_size=1, max_size=3).map(tuple),
    seed=st.integers(0, 2**31),
    construction=st.sampled_from(CONSTRUCTIONS),
    superlevel=st.booleans(),
)
def test_h0_count_equals_local_extrema_property(shape, seed, construction, superlevel):
    _check_extrema(tie_free(shape, seed)[None], construction, superlevel)


def test_extremum_neighbourhood_sizes():
    # The helper itself: 4/6 (V), 8/26 (T), 6/14 (freudenthal).
    sizes = {(c, d): len(neighbour_offsets(c, d)) for c in CONSTRUCTIONS for d in (1, 2, 3)}
    assert sizes == {("V", 1): 2, ("V", 2): 4, ("V", 3): 6, ("T", 1): 2, ("T", 2): 8, ("T", 3): 26,
                     ("freudenthal", 1): 2, ("freudenthal", 2): 6, ("freudenthal", 3): 14}


# ---------------------------------------------------------------------------------------------- duality
def _dual_diagrams(x: np.ndarray, src: str, dst: str, superlevel: bool) -> None:
    """src-superlevel PD_k of x == dst-sublevel PD_{d-1-k} of x padded with -inf, birth and death swapped, minus the
    single (-inf, +inf) bar (and the mirror statement for sublevel, padding with +inf)."""
    d = x.ndim
    pad_value = -np.inf if superlevel else np.inf
    padded = np.pad(x, 1, constant_values=pad_value)
    a = gpuph.cubical_persistence(torch.from_numpy(x)[None], construction=src, superlevel=superlevel)
    b = gpuph.cubical_persistence(torch.from_numpy(padded)[None], construction=dst, superlevel=not superlevel)
    ours, dual = ours_by_dim(a), ours_by_dim(b)
    assert len(b.essential()) == 1
    ess = b.essential().pairs.detach().numpy()
    assert ess[0, 0] == pad_value and ess[0, 1] == -pad_value
    expected = {}
    for k in range(d):
        swapped = dual[d - 1 - k][:, ::-1]
        drop = (swapped[:, 0] == -pad_value) & (swapped[:, 1] == pad_value)
        assert int(drop.sum()) == (1 if k == d - 1 else 0)
        expected[k] = _sorted_pairs(swapped[~drop])
    assert_same_diagrams(ours, expected, f"{src}->{dst} {d}D superlevel={superlevel}")


@pytest.mark.parametrize("superlevel", DIRECTIONS, ids=["super", "sub"])
@pytest.mark.parametrize("src,dst", [("V", "T"), ("T", "V")])
@pytest.mark.parametrize("kind", ["noise", "smooth", "ties", "binary"])
@pytest.mark.parametrize("shape", [(19, 23), (9, 8, 7), (1, 7), (1, 1, 5), (2, 2, 2)], ids=str)
def test_v_t_duality(shape, kind, src, dst, superlevel):
    rng = np.random.default_rng(len(shape))
    if kind == "noise":
        x = rng.random(shape)
    elif kind == "smooth":
        x = smooth_field(shape, 4, 1.5)
    elif kind == "ties":
        x = rng.integers(0, 4, size=shape).astype(np.float64)
    else:
        x = (rng.random(shape) < 0.5).astype(np.float64)
    _dual_diagrams(x, src, dst, superlevel)


@settings(max_examples=30, deadline=None)
@given(
    shape=st.lists(st.integers(1, 8), min_size=2, max_size=3).map(tuple),
    levels=st.integers(1, 5),
    seed=st.integers(0, 2**31),
    src=st.sampled_from(["V", "T"]),
    superlevel=st.booleans(),
)
def test_v_t_duality_property(shape, levels, seed, src, superlevel):
    x = np.random.default_rng(seed).integers(0, levels + 1, size=shape).astype(np.float64)
    _dual_diagrams(x, src, "T" if src == "V" else "V", superlevel)


# ---------------------------------------------------------------------------------------------- symmetries
def _symmetries(d: int, construction: str):
    """Grid symmetries that map the construction's complex to itself: all axis permutations and flips for V and T;
    for the Freudenthal triangulation (cut along the all-ones diagonal), axis permutations and the flip of all axes."""
    perms = list(itertools.permutations(range(d)))
    if construction == "freudenthal":
        flips = [(), tuple(range(d))]
    else:
        flips = [f for r in range(d + 1) for f in itertools.combinations(range(d), r)]
    return [(p, f) for p in perms for f in flips]


@pytest.mark.parametrize("superlevel", DIRECTIONS, ids=["super", "sub"])
@pytest.mark.parametrize("construction", CONSTRUCTIONS)
@pytest.mark.parametrize("shape", [(31,), (14, 9), (6, 5, 4)], ids=str)
def test_grid_symmetries_keep_diagrams(construction, superlevel, shape):
    d = len(shape)
    rng = np.random.default_rng(d)
    x = torch.from_numpy(np.stack([rng.random(shape), rng.integers(0, 3, size=shape).astype(np.float64)]))
    base = gpuph.cubical_persistence(x, construction=construction, superlevel=superlevel)
    for perm, flip in _symmetries(d, construction):
        y = x.permute(0, *(a + 1 for a in perm))
        if flip:
            y = y.flip([a + 1 for a in flip])
        dgm = gpuph.cubical_persistence(y, construction=construction, superlevel=superlevel)
        for b in range(2):
            assert_same_diagrams(ours_by_dim(dgm, b), ours_by_dim(base, b), f"perm={perm} flip={flip}")


def test_freudenthal_is_not_flip_symmetric():
    # Sanity check of the triangulation's orientation: flipping one axis changes the complex. In this 2x2 image the
    # diagonal (0,0)-(1,1) joins the two maxima in one triangulation but not in the other.
    x = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    a = gpuph.cubical_persistence(x, construction="freudenthal")
    b = gpuph.cubical_persistence(x.flip(2), construction="freudenthal")
    assert len(a.in_dim(0)) == 1  # the maxima are neighbours along the diagonal
    assert len(b.in_dim(0)) == 2  # they are not: a second class dies at 0
    v = gpuph.cubical_persistence(x, construction="V")
    t = gpuph.cubical_persistence(x, construction="T")
    assert len(v.in_dim(0)) == 2 and len(t.in_dim(0)) == 1


# ---------------------------------------------------------------------------------------------- consistency
@pytest.mark.parametrize("construction", CONSTRUCTIONS)
@pytest.mark.parametrize("d", [1, 2, 3])
def test_dims_subset_is_a_filter_of_all_dims(construction, d):
    shape = {1: (40,), 2: (15, 13), 3: (7, 6, 5)}[d]
    x = torch.randint(0, 5, (3, *shape)).double()
    for superlevel in DIRECTIONS:
        full = gpuph.cubical_persistence(x, construction=construction, superlevel=superlevel)
        for r in range(1, d + 1):
            for dims in itertools.combinations(range(d), r):
                sub = gpuph.cubical_persistence(x, construction=construction, superlevel=superlevel, dims=dims)
                keep = torch.isin(full.dim, torch.tensor(dims))
                for f in ("pairs", "dim", "batch", "birth_index", "death_index"):
                    assert torch.equal(getattr(sub, f), getattr(full, f)[keep]), (dims, f)


@pytest.mark.parametrize("construction", CONSTRUCTIONS)
def test_shift_and_scale_of_values(construction):
    # Adding a constant / scaling by a power of two is exact for these values: pairs follow, pixels stay.
    x = torch.randint(-4, 5, (2, 9, 11)).double() / 4
    a = gpuph.cubical_persistence(x, construction=construction)
    for y, f in [(x + 3, lambda p: p + 3), (x * 8, lambda p: p * 8)]:
        b = gpuph.cubical_persistence(y, construction=construction)
        assert torch.equal(b.pairs, f(a.pairs))
        assert torch.equal(b.birth_index, a.birth_index)
        assert torch.equal(b.death_index, a.death_index)
