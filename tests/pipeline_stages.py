"""The device pipeline's intermediate buffers (the test-only op ``gpuph::_pipeline_stages``), made comparable, and the
first stage at which two runs of it part: on a GPU, the CUDA kernels against their CPU emulation, so that a failing
CUDA test names the kernel to look at, not only the diagram that came out wrong."""

from __future__ import annotations

import numpy as np
import torch

CODES = {"V": 0, "T": 1, "freudenthal": 2}
# The op's outputs, in its order (gpuph/csrc/cubical_pipeline.h, pipeline_stages).
STAGES = ("keys", "ptr0", "ptr1", "flag", "order", "ncand", "first", "pairs", "counts",
          "vkey", "pixel_order", "ekey", "col_key", "row_oldest", "status", "birth", "death")
APPARENT_PAIR = 1  # mid::kApparentPair: the status under which birth and death are written


def pipeline_stages(x: torch.Tensor, spatial_dims: int, construction: str, superlevel: bool,
                    dims_mask: int) -> dict[str, np.ndarray]:
    """The stages of one call on ``x``'s device, as host arrays in a form that does not depend on the order in which
    threads ran nor on bytes nothing writes: the float64 keys without their padding, each union-find run's pairs
    sorted (only its first ``counts`` are written, in any order), and the apparent pairs' birth and death pixels -1
    where no apparent pair wrote them."""
    out = torch.ops.gpuph._pipeline_stages(x, spatial_dims, CODES[construction], superlevel, dims_mask)
    assert len(out) == len(STAGES), len(out)
    s = {name: t.cpu().numpy() for name, t in zip(STAGES, out)}
    if s["keys"].ndim == 2 and s["keys"].shape[1] == 2:  # Key64 (value, uint32 index) and 4 bytes of padding
        s["keys"][:, 1] &= 0xFFFFFFFF
    if s["pairs"].size:
        counts = s["counts"].astype(np.int64)
        runs = s["pairs"].reshape(counts.size, -1, 2)
        s["pairs"] = np.concatenate([np.sort(runs[r, :counts[r]].view(np.int64).ravel()) for r in range(counts.size)])
    if s["status"].size:
        written = s["status"] == APPARENT_PAIR
        s["birth"] = np.where(written, s["birth"], -1)
        s["death"] = np.where(written, s["death"], -1)
    return s


def stage_differences(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> list[str]:
    """One line per stage that differs (shape, or how many entries, the first of them, both values), in pipeline
    order: the first line is the first stage at which ``got`` parts from ``want``."""
    lines = []
    for name in STAGES:
        a, b = got[name], want[name]
        if a.shape != b.shape or a.dtype != b.dtype:
            lines.append(f"{name}: shape/dtype {a.shape} {a.dtype} vs {b.shape} {b.dtype}")
            continue
        diff = np.flatnonzero((a != b).ravel())
        if diff.size:
            i = int(diff[0])
            where = np.unravel_index(i, a.shape) if a.ndim else ()
            lines.append(f"{name}: {diff.size} of {a.size} entries differ, first at {tuple(int(w) for w in where)}: "
                         f"{a.ravel()[i]} vs {b.ravel()[i]}")
    return lines
