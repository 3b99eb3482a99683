"""GUDHI: the generic ``CubicalComplex`` (V via ``vertices=``, T via ``top_dimensional_cells=``), its fast 2D path."""

from __future__ import annotations

import importlib

import numpy as np

from ..agreement import canonical, from_negated_sublevel
from .base import FORWARD, Runner, Unavailable


def _import(name: str):
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise Unavailable(f"not installed ({exc})") from exc


def _generic(gudhi, construction: str) -> Runner:
    keyword = "vertices" if construction == "V" else "top_dimensional_cells"

    def run(arrays: list[np.ndarray]):
        out = []
        for a in arrays:
            cc = gudhi.CubicalComplex(**{keyword: a})
            # Z/2 as gpuph and cripser: GUDHI's default Z/11 gives other (equally valid) H1 diagrams of some 3D grids
            cc.compute_persistence(homology_coeff_field=2)
            out.append([cc.persistence_intervals_in_dimension(k) for k in range(a.ndim)])
        return out

    def diagrams(out, _):
        res = []
        for per_dim in out:
            dims = np.concatenate([np.full(len(iv), k) for k, iv in enumerate(per_dim)])
            iv = np.concatenate([np.asarray(i, np.float64).reshape(-1, 2) for i in per_dim])
            res.append(from_negated_sublevel(dims, iv[:, 0], iv[:, 1]))
        return res

    return Runner(
        library="gudhi",
        construction=construction,
        mode=FORWARD,
        prepare=lambda x: [np.ascontiguousarray(-img, dtype=np.float64) for img in x],
        run=run,
        diagrams=diagrams,
        note=(
            f"CubicalComplex({keyword}=-x), compute_persistence(homology_coeff_field=2) and the intervals of every "
            f"dim, image by image ({construction} construction, Z/2, 1 thread; -x as float64 prepared untimed)"
        ),
    )


def _fast2d(ext) -> Runner:
    fast = ext._persistence_on_rectangle_from_top_cells  # (float64 2D top cells, min_persistence) -> [PD0, PD1]

    def prepare(x: np.ndarray):
        # Duality (DESIGN.md section 2): V-superlevel PD_k(x) = T-sublevel PD_{1-k}(x padded with -inf), birth and death
        # swapped, minus the one (-inf, +inf) bar.
        return [np.pad(img.astype(np.float64), 1, constant_values=-np.inf) for img in x]

    def diagrams(out, _):
        res = []
        for pd0, pd1 in out:
            pd0 = np.asarray(pd0, np.float64).reshape(-1, 2)
            pd1 = np.asarray(pd1, np.float64).reshape(-1, 2)
            pd0 = pd0[~(np.isneginf(pd0[:, 0]) & np.isposinf(pd0[:, 1]))]
            dims = np.concatenate([np.ones(len(pd0)), np.zeros(len(pd1))])
            res.append(canonical(dims, np.concatenate([pd0[:, 1], pd1[:, 1]]), np.concatenate([pd0[:, 0], pd1[:, 0]])))
        return res

    return Runner(
        library="gudhi-fast2d",
        construction="V",
        mode=FORWARD,
        prepare=prepare,
        run=lambda arrays: [fast(a, 0.0) for a in arrays],
        diagrams=diagrams,
        ndims=(2,),
        note=(
            "gudhi._pers_cub_low_dim_ext._persistence_on_rectangle_from_top_cells(pad(x, -inf), 0.0) image by image: "
            "the T construction without critical pixels, which gives V-superlevel diagrams by duality; 2D only; "
            "padded float64 prepared untimed"
        ),
    )


def runners(modes: tuple[str, ...], constructions: tuple[str, ...], library: str) -> list[Runner]:
    if FORWARD not in modes:
        return []
    if library == "gudhi":
        gudhi = _import("gudhi")
        return [_generic(gudhi, c) for c in ("V", "T") if c in constructions]
    if library == "gudhi-fast2d":
        ext = _import("gudhi._pers_cub_low_dim_ext")
        if not hasattr(ext, "_persistence_on_rectangle_from_top_cells"):
            raise Unavailable("this GUDHI has no _persistence_on_rectangle_from_top_cells")
        return [_fast2d(ext)] if "V" in constructions else []
    raise ValueError(library)
