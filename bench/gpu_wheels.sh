#!/usr/bin/env bash
# Downloads into .whl/ the Python 3.12 x86-64 wheels of the reference libraries that the lent GPUs lack (gudhi,
# cripser, POT, ripser, giotto-ph, torch-topological: about 40 MB; their other needs are installed there), for
# bench/gpu_session.sh: carry .whl in the device call. Run here, from the repository root (.whl/ is git-ignored).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 \
  manylinux1_x86_64 any; do
  platforms+=(--platform "$p")
done
mkdir -p .whl
"$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  "${platforms[@]}" -d .whl gudhi cripser pot ripser giotto-ph torch-topological
ls -l .whl
du -sh .whl
