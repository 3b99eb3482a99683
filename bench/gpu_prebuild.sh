#!/usr/bin/env bash
# The extension for the lent GPUs, built here (nvcc and a CUDA build of torch; no GPU needed) into .prebuilt/, so that
# a device call need not compile it on its clock (bench/prebuilt.py says why and how it is checked there). Run from
# the repository root before the first device call, and again after any change to setup.py, gpuph/csrc/ or kernels/
# (a stale build is refused there, and the call compiles instead); carry .prebuilt in the call.
#
# The GPUs' interpreter is Python 3.12 with torch 2.11.0+cu130 (the device tool's KINDS.md): PYTHON312 names a 3.12
# interpreter here (default: python3.12 on PATH, else pyenv's), CUDA_TORCH_VERSION the torch (default 2.11.0). The
# steps are .ci/check-cuda-build's (its venv and copy of the tree under build/gpu-prebuild/), without its tests.
set -euo pipefail
cd "$(dirname "$0")/.."
# The first candidate that runs as 3.12 (pyenv's shim of python3.12 is on PATH but fails unless 3.12 is selected).
py312=
for candidate in ${PYTHON312:-} python3.12 "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.12*/bin/python3.12; do
  if "$candidate" -c "import sys; assert sys.version_info[:2] == (3, 12)" >/dev/null 2>&1; then
    py312=$candidate
    break
  fi
done
if [ -z "$py312" ]; then
  echo "no Python 3.12 here (set PYTHON312): the lent GPUs' Python is 3.12, an extension for another one won't load"
  exit 1
fi
command -v nvcc >/dev/null 2>&1 || { echo "no nvcc here: cannot build the CUDA kernels"; exit 1; }
dir=build/gpu-prebuild
PYTHON=$py312 CUDA_CHECK_DIR=$dir CUDA_CHECK_BUILD_ONLY=1 .ci/check-cuda-build
so=$(ls "$dir"/src/gpuph/_C.cpython-312-*.so 2>/dev/null) || { echo "the build left no extension (see above)"; exit 1; }
torch_version=$("$dir/venv/bin/python" -c "import torch; print(torch.__version__)")
python3 bench/prebuilt.py write "$so" --torch "$torch_version" --root "$dir/src"
