"""A small version of examples/point_cloud_shapes.py (the TopologyLayer paper's Figure 4): every loss decreases and
changes the feature it targets."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from gpuph.point_cloud import weak_alpha_persistence

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "point_cloud_shapes.py"


@pytest.fixture(scope="module")
def shapes():
    spec = importlib.util.spec_from_file_location("point_cloud_shapes", EXAMPLE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _features(x: torch.Tensor) -> dict[str, float]:
    dgm = weak_alpha_persistence(x.double())
    h0 = dgm.in_dim(0).finite().pairs[:, 1]
    h1 = dgm.in_dim(1).lifetimes()
    return {
        "h0_mean": float(h0.mean()),
        "h0_max": float(h0.max()),
        "h1_max": float(h1.max()) if len(h1) else 0.0,
        "h1_sum": float(h1.sum()),
    }


@pytest.mark.parametrize("key", ["a", "b", "c", "d", "e"])
def test_losses_reshape_the_cloud(shapes, key):
    # The example's cloud (100 points, seed 0) with fewer, larger steps. (d) is a race between closing the gaps of
    # PD0 and growing a hole; on 40 points the gaps win, on 100 (as in the paper) a hole does.
    x0 = shapes.initial_cloud(100, seed=0)
    x, hist = shapes.optimize(x0, shapes.LOSSES[key][1], steps=80, lr=0.02)
    assert hist[-1] < hist[0], f"({key}) loss did not decrease: {hist[0]} -> {hist[-1]}"
    assert x.min() >= 0 and x.max() <= 1  # projected onto the unit square
    f0, f1 = _features(x0), _features(x)
    if key == "a":  # the points spread out: longer H0 bars
        assert f1["h0_mean"] > 1.2 * f0["h0_mean"]
    elif key == "b":  # one dominant component: every finite H0 bar shrinks
        assert f1["h0_max"] < 0.3 * f0["h0_max"]
    elif key in ("c", "d"):  # a hole grows
        assert f1["h1_max"] > max(3 * f0["h1_max"], 0.1)
        if key == "d":  # ... while the points stay close together
            assert f1["h0_max"] < 0.5 * f0["h0_max"]
    else:  # the holes close
        assert f1["h1_sum"] < 0.2 * f0["h1_sum"]
