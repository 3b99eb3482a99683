"""The CUDA extension built here for the lent GPUs, and its use there (no compile on the device's clock).

A lent GPU comes with 15 minutes of device time for a session, machine starts included, and every start is a bare
machine: compiling the extension there (``pip install -e .``: nvcc and the C++ sources, about a minute on 16 cores)
would cost that minute on each start. ``bench/gpu_prebuild.sh`` builds it here instead, for the GPUs' Python and torch
(nvcc needs no GPU), and this script keeps the result in ``.prebuilt/`` (git-ignored; carry it in the device call)
with a manifest of what it was built from. On the GPU, ``bench/gpu_session.sh``'s build stage asks ``install``: the
extension is put in place only where the manifest matches the tree's extension sources (a digest of ``setup.py``,
``gpuph/csrc/`` and ``kernels/``), the interpreter's extension suffix and torch's version, and it imports with its
CUDA kernels; otherwise the stage compiles as before.

    python3 bench/prebuilt.py digest [--root DIR]                  # the digest of DIR's extension sources
    python3 bench/prebuilt.py write SO --torch VERSION --root DIR  # (here) SO, built from DIR, into .prebuilt/
    python3 bench/prebuilt.py install                              # (there) status 0: in place; 1: build it

Standard library only: it runs before gpuph can be imported.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PREBUILT = REPO / ".prebuilt"
MANIFEST = "manifest.json"
# What the extension is built from (the Makefile's EXT_SOURCES): a change to any of them needs a new build.
SOURCE_FILES = ("setup.py",)
SOURCE_DIRS = ("gpuph/csrc", "kernels")


def digest(root: Path = REPO) -> str:
    """sha256 over the relative path and bytes of every extension source file under ``root``, in path order."""
    files = [root / f for f in SOURCE_FILES]
    for d in SOURCE_DIRS:
        files += [p for p in (root / d).rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    h = hashlib.sha256()
    for path in sorted(files, key=lambda p: p.relative_to(root).as_posix()):
        h.update(path.relative_to(root).as_posix().encode() + b"\0")
        h.update(path.read_bytes())
        h.update(b"\0")
    return h.hexdigest()


def write(so: Path, torch_version: str, root: Path, out: Path = PREBUILT) -> Path:
    """Copies ``so`` (built from ``root`` against torch ``torch_version``) into ``out``, without its debug sections
    (45 MB -> 3 MB: the device call carries at most 64 MiB), with the manifest ``install`` checks."""
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("_C.*"):
        old.unlink()
    target = out / so.name
    shutil.copy2(so, target)
    strip = shutil.which("strip")
    if strip and subprocess.run([strip, "--strip-debug", str(target)], capture_output=True).returncode != 0:
        print(f"strip failed on {target.name}: kept with its debug sections")
    manifest = {
        "file": so.name,
        "sources_sha256": digest(root),
        "torch": torch_version,
        "built": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "size_bytes": target.stat().st_size,
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return target


def mismatch(manifest: dict, torch_version: str, ext_suffix: str, root: Path = REPO) -> str | None:
    """Why the prebuilt extension of ``manifest`` does not fit this tree, interpreter and torch (None: it fits)."""
    if not manifest.get("file", "").endswith(ext_suffix):
        return f"built for another Python ({manifest.get('file')}; this one loads *{ext_suffix})"
    if manifest.get("torch") != torch_version:
        return f"built against torch {manifest.get('torch')}, this is {torch_version}"
    if manifest.get("sources_sha256") != digest(root):
        return "the extension's sources changed since it was built (run bench/gpu_prebuild.sh again)"
    return None


def install(prebuilt: Path = PREBUILT, root: Path = REPO) -> str | None:
    """Puts the prebuilt extension into ``root/gpuph`` where it fits and imports with its CUDA kernels; returns why
    not (None: done). A failed import removes the copy again, so the build that follows starts clean."""
    path = prebuilt / MANIFEST
    if not path.is_file():
        return f"no {path.relative_to(root) if path.is_relative_to(root) else path}"
    manifest = json.loads(path.read_text())
    try:
        import torch  # only here: digest and write need no torch
    except ImportError as err:
        return f"torch does not import: {err}"
    why = mismatch(manifest, torch.__version__, sysconfig.get_config_var("EXT_SUFFIX"), root)
    if why:
        return why
    target = root / "gpuph" / manifest["file"]
    shutil.copy2(prebuilt / manifest["file"], target)
    check = ("import gpuph._ext as e, sys; sys.exit(0 if e.has_cuda_kernels() else "
             "'imports, but without its CUDA kernels')")
    path = os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))
    proc = subprocess.run([sys.executable, "-c", check], cwd=root, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": path})
    if proc.returncode != 0:
        target.unlink()
        return "it does not import: " + (proc.stderr.strip().splitlines() or ["?"])[-1]
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/prebuilt.py", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("digest", help="print the digest of the extension sources")
    p.add_argument("--root", type=Path, default=REPO)
    p = sub.add_parser("write", help="keep a built extension in .prebuilt/ with its manifest")
    p.add_argument("so", type=Path)
    p.add_argument("--torch", required=True, help="the torch version it was built against")
    p.add_argument("--root", type=Path, default=REPO, help="the tree it was built from")
    sub.add_parser("install", help="put the prebuilt extension in place if it fits (status 1 if not)")
    args = parser.parse_args(argv)
    if args.command == "digest":
        print(digest(args.root))
    elif args.command == "write":
        target = write(args.so, args.torch, args.root)
        print(f"{target.relative_to(REPO)}: {target.stat().st_size / 2**20:.1f} MiB, torch {args.torch}")
    else:
        why = install()
        if why:
            print(f"prebuilt extension not used: {why}")
            return 1
        print("prebuilt extension in place: imports with its CUDA kernels")
    return 0


if __name__ == "__main__":
    sys.exit(main())
