"""setup.py's choice of GPU architectures where no GPU is visible (a container or build host)."""

import ast
import os
from pathlib import Path

import pytest
import torch.utils.cpp_extension as cpp_extension

SETUP = Path(__file__).resolve().parents[1] / "setup.py"


def _default_cuda_arches():
    """setup.py's default_cuda_arches, taken from its source (importing setup.py would run setup())."""
    tree = ast.parse(SETUP.read_text())
    (fn,) = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "default_cuda_arches"]
    scope: dict = {}
    exec(compile(ast.Module(body=[fn], type_ignores=[]), str(SETUP), "exec"), scope)
    return scope["default_cuda_arches"]


@pytest.mark.parametrize(
    ("cuda", "want"),
    [
        ("13.0", ["7.5", "8.0", "9.0", "10.0", "12.0+PTX"]),
        ("12.8", ["7.5", "8.0", "9.0", "10.0", "12.0+PTX"]),
        ("12.6", ["7.5", "8.0", "9.0+PTX"]),
        ("11.8", ["7.5", "8.0", "9.0+PTX"]),
        ("11.7", ["7.5", "8.0+PTX"]),
    ],
)
def test_default_cuda_arches_follow_what_the_cuda_version_compiles(cuda, want):
    """Turing to the newest architecture the toolkit knows (Hopper from 11.8, Blackwell from 12.8), PTX of the
    newest only: the list torch would otherwise take from the visible GPUs, and fail on none."""
    assert _default_cuda_arches()(cuda).split(";") == want


def test_default_cuda_arches_are_valid_for_torch(monkeypatch):
    """torch's extension builder accepts the list (an arch it does not know is a ValueError there) and turns it into
    one -gencode per architecture, plus the PTX of the newest."""
    arch_flags = getattr(cpp_extension, "_get_cuda_arch_flags", None)
    if arch_flags is None:
        pytest.skip("this torch has no _get_cuda_arch_flags")
    monkeypatch.setitem(os.environ, "TORCH_CUDA_ARCH_LIST", _default_cuda_arches()("13.0"))
    flags = arch_flags()
    assert "-gencode=arch=compute_75,code=sm_75" in flags
    assert "-gencode=arch=compute_120,code=sm_120" in flags
    assert [f for f in flags if "code=compute_" in f] == ["-gencode=arch=compute_120,code=compute_120"]
    assert len(flags) == 6
