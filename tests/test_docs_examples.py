"""The Python blocks of the README and the other guides, and the docstrings' examples, run as written.

Each block runs in a fresh namespace; the names a block leaves to the reader (a generator, a target diagram, a mesh)
are defined by a prelude keyed by the block's first line, so a new or edited block without one fails here with the
names it is missing instead of rotting unnoticed. A block whose last line is `print(...)  # expected` must print
that.
"""

from __future__ import annotations

import contextlib
import doctest
import io
import re
import sys
from pathlib import Path

import pytest
import torch

import gpuph

ROOT = Path(__file__).resolve().parents[1]
GUIDES = [ROOT / "README.md", ROOT / "bench" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

# Stand-ins for what the README leaves to the reader, by the first line of the block that needs them.
_GAN_STANDINS = """
import torch, gpuph
generator = torch.nn.Sequential(torch.nn.Linear(8, 28 * 28), torch.nn.Sigmoid(), torch.nn.Unflatten(1, (1, 28, 28)))
discriminator = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(28 * 28, 1))
adversarial_loss = lambda logits: torch.nn.functional.softplus(-logits).mean()
z, lam = torch.randn(4, 8), 0.1
"""
PRELUDES = {
    "import gpuph": """
import torch, gpuph
x = torch.rand(4, 1, 28, 28, requires_grad=True)
dgm_target = gpuph.cubical_persistence(torch.rand(4, 1, 28, 28), spatial_dims=2)
dgm_fake, dgm_real = dgm_target.detach(), gpuph.cubical_persistence(torch.rand(3, 1, 28, 28), spatial_dims=2)
""",
    'topo = gpuph.nn.TopologyLoss(dim=0, p=1, q=0, i0=2, superlevel=True, construction="V", spatial_dims=2)':
        _GAN_STANDINS,
    "from gpuph.apps.voxel_shapes import make_shapes, VoxelShapes": "import torch\nz = torch.randn(2, 64)\n",
    "faces = torch.as_tensor(mesh_faces)": """
import torch, gpuph
mesh_faces = [[0, 1, 2], [0, 2, 3], [0, 3, 1], [1, 3, 2], [4, 5, 6]]   # a tetrahedron's surface and a triangle
n_vertices = 8                                                         # and an isolated vertex
""",
    'dgm = gpuph.cubical_persistence(x, dims=0, spatial_dims=2, superlevel=True, construction="V")':
        "import torch, gpuph\nx = torch.rand(4, 1, 28, 28)\n",
    "from gpuph.apps import regularization as reg": """
import torch
x = torch.rand(4, 28, 28)
target = torch.tensor([1, 2, 3, 4])
""",
}


def _blocks() -> list[tuple[str, int, str]]:
    """(guide, block number in it, code) of every Python block of the guides."""
    out = []
    for path in GUIDES:
        found = re.findall(r"```python\n(.*?)```", path.read_text(encoding="utf-8"), re.S)
        out += [(str(path.relative_to(ROOT)), i + 1, code) for i, code in enumerate(found)]
    return out


def _first_line(block: str) -> str:
    return block.strip().splitlines()[0].split("#")[0].strip()


def test_guides_have_python_blocks_and_every_prelude_is_used():
    blocks = _blocks()
    assert sum(guide == "README.md" for guide, _, _ in blocks) >= 8
    firsts = {_first_line(code) for _, _, code in blocks}
    assert set(PRELUDES) <= firsts, f"preludes for blocks the guides no longer have: {set(PRELUDES) - firsts}"


@pytest.mark.parametrize("guide,number,code", _blocks(), ids=[f"{g}:{n}" for g, n, _ in _blocks()])
def test_guide_block_runs(guide, number, code, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # a block that writes files writes them here
    torch.manual_seed(number)
    namespace: dict = {"__name__": "guide_block"}
    exec(PRELUDES.get(_first_line(code), ""), namespace)
    printed = io.StringIO()
    before = set(sys.modules)
    try:
        with contextlib.redirect_stdout(printed):
            exec(compile(code, f"{guide} python block {number}", "exec"), namespace)
    except NameError as e:  # pragma: no cover - the message is the point
        pytest.fail(f"{guide} block {number} needs a prelude in PRELUDES for {e.name!r}: {e}")
    finally:
        # Aliases a block registered (the TopologyLayer shim's `topologylayer`) must not leak into later tests,
        # which would take them for the real library.
        for name in set(sys.modules) - before:
            if getattr(sys.modules[name], "__name__", name) != name:
                del sys.modules[name]
    last = code.strip().splitlines()[-1]
    if last.startswith("print(") and "#" in last:
        assert printed.getvalue().strip() == last.rsplit("#", 1)[1].strip()


@pytest.mark.parametrize("module", ["gpuph.cubical", "gpuph.point_cloud", "gpuph.lower_star", "gpuph.nn"])
def test_docstring_examples_run(module):
    mod = __import__(module, fromlist=["_"])
    namespace: dict = {"torch": torch, "gpuph": gpuph}
    exec(_GAN_STANDINS, namespace)
    finder = doctest.DocTestFinder(exclude_empty=True)
    tests = [t for t in finder.find(mod, globs=namespace) if t.examples]
    assert tests, f"{module} has no docstring examples"
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for t in tests:
        runner.run(t, clear_globs=False)
    assert runner.summarize(verbose=False).failed == 0
