#!/usr/bin/env bash
# The checks and benchmarks a session with a lent GPU runs first (CUDA tests, then the GPU benchmarks), in stages
# that each fit one device call (600 s). Run from the repository root on the GPU machine:
#
#   bash bench/gpu_session.sh build        # build the extension with its CUDA kernels (pip install -e .)
#   bash bench/gpu_session.sh test         # tests/test_cuda.py and tests/test_gpu_pipeline.py
#   bash bench/gpu_session.sh breakdown    # python -m gpuph.bench.breakdown: 3D cases, kernel by kernel
#   bash bench/gpu_session.sh union-find   # the breakdown of the issue's cases with each union-find mode (A/B), and
#                                          # of small images with their rows ordered by the sorts instead of by rank
#   bash bench/gpu_session.sh suite        # python -m gpuph.bench on the issue's cases (GPU and CPU libraries)
#   bash bench/gpu_session.sh gan          # bench/gan_throughput.py
#   bash bench/gpu_session.sh points       # bench/bench_point_cloud.py
#   bash bench/gpu_session.sh build test breakdown   # several stages in one call
#
# The reference libraries (gudhi, cripser, POT, ripser) are not installed on the lent GPUs: carry their Python 3.12
# wheels in .whl/ (the device tool's README says how); they are installed into /tmp/site when present. Logs go to
# $OUT (the device tool's output folder; default /tmp/gpu-session), and so do copies of the new files under
# bench/results/, which are to be committed.
set -uo pipefail
OUT="${OUT:-/tmp/gpu-session}"
mkdir -p "$OUT"
touch "$OUT/.start"
export PYTHONUNBUFFERED=1
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
status=0
run() {  # run NAME CMD...: log to $OUT/NAME.log, remember a failure
  local name=$1
  shift
  echo "=== $name: $*"
  "$@" 2>&1 | tee "$OUT/$name.log"
  local rc=${PIPESTATUS[0]}
  [ "$rc" -eq 0 ] || { echo "=== $name failed with status $rc"; status=1; }
}
for stage in "$@"; do
  case "$stage" in
    build) run build python3 -m pip install --no-build-isolation --no-deps -e . ;;
    test) run test python3 -m pytest -q -p no:warnings tests/test_cuda.py tests/test_gpu_pipeline.py ;;
    breakdown) run breakdown python3 -m gpuph.bench.breakdown ;;
    union-find)
      # One thread per run is hopeless on one large grid: serial only where the batch gives it runs side by side.
      run union-find-batches python3 -m gpuph.bench.breakdown --cases 256x28x28 64x256x256 64x32^3 \
        --union-find serial host relaxed --out "bench/results/union-find-$(date +%F)-batches"
      run union-find-large python3 -m gpuph.bench.breakdown --cases 1x1024x1024 1x128^3 --union-find host relaxed \
        --out "bench/results/union-find-$(date +%F)-large"
      # The pinned order of small images' rows by the sorts instead of by rank (A/B with the batches above).
      run order-by-sorts python3 -m gpuph.bench.breakdown --cases 256x28x28 64x64x64 --ranked-order-limit 0 \
        --out "bench/results/union-find-$(date +%F)-order-by-sorts" ;;
    suite) run suite python3 -m gpuph.bench --no-progress ;;
    gan) run gan python3 bench/gan_throughput.py ;;
    points) run points python3 bench/bench_point_cloud.py ;;
    *) echo "unknown stage $stage (build, test, breakdown, union-find, suite, gan, points)"; status=2 ;;
  esac
done
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv >"$OUT/gpu.csv" 2>/dev/null || true
# What the benchmarks wrote under bench/results/ this time, copied to $OUT (only $OUT comes back from the machine).
find bench/results -type f -newer "$OUT/.start" -print0 2>/dev/null | while IFS= read -r -d '' f; do
  mkdir -p "$OUT/$(dirname "$f")" && cp "$f" "$OUT/$f"
done
exit $status
