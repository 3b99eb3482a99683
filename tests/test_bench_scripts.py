"""The GAN-throughput and point-cloud benchmark scripts (bench/): a tiny run of each, the order of their rows (gpuph's
first, the CPU libraries' contrast after), their time limit, and the result files they rewrite after every row."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


def load(name: str):
    """bench/<name>.py as a module (the scripts import bench/common.py as ``common``)."""
    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(BENCH))
    return module


class LimitAfter:
    """A stand-in for gpuph.bench.timing.Deadline whose limit passes at the (calls + 1)-th check."""

    calls = 0

    def __init__(self, limit_s):
        self.limit_s, self.checks = limit_s, 0

    def passed(self) -> bool:
        self.checks += 1
        return self.checks > self.calls

    @property
    def note(self) -> str:
        return f"not run: the run's time limit of {self.limit_s:g} s was reached"


def watch_writes(monkeypatch, module, name: str) -> list[bool]:
    """The ``complete`` flag of every results.json the module writes through ``name``."""
    flags = []
    real = getattr(module, name)

    def spy(path, obj):
        flags.append(obj["meta"]["complete"])
        return real(path, obj)

    monkeypatch.setattr(module, name, spy)
    return flags


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_gan_throughput_runs_ours_first_and_stops_at_the_time_limit(tmp_path, monkeypatch):
    pytest.importorskip("cripser")
    gan = load("gan_throughput")
    monkeypatch.setattr(gan, "Deadline", type("Limit", (LimitAfter,), {"calls": 2}))
    flags = watch_writes(monkeypatch, gan, "write_json")
    args = ["--device", "cpu", "--batches2d", "2", "--no-3d", "--libraries", "cripser", "gpuph", "--repeats", "1",
            "--warmup", "1", "--budget", "0.01", "--time-limit", "60", "--out", str(tmp_path)]
    assert gan.main(args) == 0
    result = json.loads((tmp_path / "results.json").read_text())
    rows = {r["library"]: r for r in result["rows"]}
    assert [r["library"] for r in result["rows"]] == ["none", "gpuph", "cripser"]
    assert rows["none"]["median_ms"] > 0 and rows["gpuph"]["median_ms"] > 0
    assert "overhead_pct" in rows["gpuph"] and rows["gpuph"]["layer_ms"] > 0
    assert rows["cripser"]["skipped"] == "not run: the run's time limit of 60 s was reached"
    assert flags == [False, False, True] and result["meta"]["complete"] is True
    with pytest.raises(SystemExit):
        gan.main(["--time-limit", "-1"])


def test_point_cloud_bench_runs_ours_first_and_stops_at_the_time_limit(tmp_path, monkeypatch):
    pytest.importorskip("ripser")
    pc = load("bench_point_cloud")
    monkeypatch.setattr(pc, "Deadline", type("Limit", (LimitAfter,), {"calls": 3}))
    flags = watch_writes(monkeypatch, pc, "write_json")
    args = ["--cases", "rips-100", "alpha-1000", "--libraries", "ripser", "gpuph", "--repeats", "1",
            "--min-repeats", "1", "--budget", "0.01", "--device", "cpu", "--time-limit", "30", "--out", str(tmp_path)]
    assert pc.main(args) == 0
    result = json.loads((tmp_path / "results.json").read_text())
    order = [(r["case"], r["library"]) for r in result["rows"]]
    assert order == [("rips-100", "gpuph"), ("alpha-1000", "gpuph"), ("rips-100", "ripser"),
                     ("alpha-1000", "ripser")]
    ran = [r for r in result["rows"] if "median_ms" in r]
    assert len(ran) == 3 and ran[2]["library"] == "ripser" and ran[2]["agrees_with_gpuph"] is True
    assert result["rows"][3]["skipped"] == "not run: the run's time limit of 30 s was reached"
    assert flags == [False, False, False, True] and result["meta"]["complete"] is True
    assert "Incomplete" not in (tmp_path / "results.md").read_text()


def test_point_cloud_bench_skips_a_library_that_does_not_import(tmp_path, monkeypatch):
    """As the suite does: a reference library missing here is a skipped row, not a failed run (status 0)."""
    import builtins

    pc = load("bench_point_cloud")
    real_import = builtins.__import__

    def no_gph(name, *args, **kwargs):
        if name == "gph":
            raise ModuleNotFoundError("No module named 'gph'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_gph)
    args = ["--cases", "rips-100", "--libraries", "gpuph", "giotto-ph", "--repeats", "1", "--min-repeats", "1",
            "--budget", "0.01", "--device", "cpu", "--out", str(tmp_path)]
    assert pc.main(args) == 0
    rows = json.loads((tmp_path / "results.json").read_text())["rows"]
    assert [r["library"] for r in rows] == ["gpuph", "giotto-ph"] and "median_ms" in rows[0]
    assert rows[1]["skipped"].startswith("not importable (ModuleNotFoundError") and "error" not in rows[1]


def _ext_tree(root: Path) -> Path:
    for rel, text in (("setup.py", "setup()"), ("gpuph/csrc/ops.cpp", "int f();"), ("kernels/k.cu", "__global__")):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def test_prebuilt_digest_follows_the_extension_sources(tmp_path):
    prebuilt = load("prebuilt")
    root = _ext_tree(tmp_path)
    first = prebuilt.digest(root)
    (root / "kernels" / "__pycache__").mkdir()
    (root / "kernels" / "__pycache__" / "x.pyc").write_bytes(b"\0")
    (root / "gpuph" / "api.py").write_text("python is not an extension source")
    assert prebuilt.digest(root) == first
    (root / "kernels" / "k.cu").write_text("__global__ ")
    assert prebuilt.digest(root) != first
    (root / "kernels" / "k.cu").write_text("__global__")
    (root / "kernels" / "k.cu").rename(root / "kernels" / "j.cu")
    assert prebuilt.digest(root) != first


def test_prebuilt_extension_is_used_only_where_it_fits(tmp_path):
    """The manifest that write() keeps, and each reason install() refuses it: another Python, another torch,
    changed sources, a file that does not import (removed again, so that the build that follows starts clean)."""
    import sysconfig

    import torch

    prebuilt = load("prebuilt")
    root = _ext_tree(tmp_path / "tree")
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    so = tmp_path / f"_C{suffix}"
    so.write_bytes(b"not a shared object")  # strip fails on it: kept as it is
    out = tmp_path / "prebuilt"
    target = prebuilt.write(so, torch.__version__, root, out)
    manifest = json.loads((out / "manifest.json").read_text())
    assert target.read_bytes() == so.read_bytes() and manifest["file"] == so.name
    assert manifest["sources_sha256"] == prebuilt.digest(root) and manifest["torch"] == torch.__version__
    assert prebuilt.mismatch(manifest, torch.__version__, suffix, root) is None
    assert "another Python" in prebuilt.mismatch(manifest, torch.__version__, ".cpython-399-x86_64-linux-gnu.so", root)
    assert "this is 0.1" in prebuilt.mismatch(manifest, "0.1", suffix, root)
    (root / "setup.py").write_text("setup(name='x')")
    assert "sources changed" in prebuilt.install(out, root)
    assert not (root / "gpuph" / so.name).exists()
    (root / "setup.py").write_text("setup()")
    assert prebuilt.install(out, root).startswith("it does not import")
    assert not (root / "gpuph" / so.name).exists()
    assert prebuilt.install(tmp_path / "none", root).startswith("no ")
