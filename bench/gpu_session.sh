#!/usr/bin/env bash
# The checks and benchmarks a session with a lent GPU runs first (CUDA tests, then the GPU benchmarks), in stages.
# A session has 15 minutes of device time in all, machine starts (a minute or more each, a bare machine every time)
# included, and a call may run 600 s. So everything is prepared here, and the GPU gets two calls:
#
#   here, first:  bash bench/gpu_wheels.sh     # the reference libraries' py3.12 wheels into .whl/ (38 MB)
#                 bash bench/gpu_prebuild.sh   # the extension built here for the GPUs' Python and torch, .prebuilt/
#   call 1 (timeout_s 330; carry .whl and .prebuilt; about 8 minutes of device time with the start):
#       GPU_SESSION_LIMIT=300 bash bench/gpu_session.sh build test goals
#   call 2, at once (the machine stays warm 30 s) where call 1 passed, with the time `status` says is left:
#       GPU_SESSION_LIMIT=<budget_left_s - 60, at most 560> bash bench/gpu_session.sh build gan suite breakdown points
#   where call 1 failed: fix here, run bench/gpu_prebuild.sh again if the extension's sources changed, and make
#   call 2 `build test goals breakdown` on a fresh machine (it needs 4 minutes of device time left to start).
#
# Stages: build (the prebuilt extension where bench/prebuilt.py finds it fits this tree, Python and torch; else
# pip install -e ., with the CUDA kernels, about a minute), test (the CUDA tests: tests/test_cuda*.py and the
# device-parametrized tests/test_distances.py; tests/test_gpu_pipeline.py runs the same pipeline on the CPU and is
# left to CI), test-all (the whole suite), goals (python -m gpuph.bench --goals: the CUDA issue's speed goals, gpuph
# alone), breakdown (python -m gpuph.bench.breakdown: 3D cases, kernel by kernel), union-find (the breakdown with
# each union-find mode, and of small images ordered by the sorts instead of by rank: the A/Bs that set the auto
# policies, and of the candidates' sort: torch's or the radix sort over double buffers), sanitize (compute-sanitizer
# memcheck over the CUDA tests' small cases; slow), suite (python -m gpuph.bench, GPU and CPU libraries), gan, points,
# large-volume (one 1024^3 volume, H0 and H2: time and peak memory).
#
# Time: the whole invocation stays within GPU_SESSION_LIMIT seconds (default 560; a device call is killed at its
# timeout_s and then returns only what is under $OUT). Each stage runs under `timeout` with the time left, or its
# own cap where it has one (test 210 s, gan 150 s, suite 200 s, breakdown 120 s, points 60 s), so that the stages
# after it keep theirs; the benchmarks get a --time-limit below that (they run gpuph's rows first and rewrite their
# result files as they go), and a stage that would start with less than its minimum is skipped.
#
# Output: only 8 files, at most 2 folders deep, come back from the machine, so everything (every stage's log, what
# the benchmarks wrote under bench/results/, nvidia-smi's answer) is packed into $OUT/gpu-session.tar.gz, and
# $OUT/summary.txt lists the stages with their status and seconds. Unpack the archive at the repository root here:
# the results land in bench/results/, to be committed; the logs in gpu-session-logs/.
#
# The reference libraries (gudhi, cripser, POT, ripser, giotto-ph, torch-topological) are not installed on the lent
# GPUs: carry .whl (bench/gpu_wheels.sh) and they are installed into /tmp/site.
set -uo pipefail
OUT="${OUT:-/tmp/gpu-session}"
LIMIT=${GPU_SESSION_LIMIT:-560}
LOGS=gpu-session-logs
mkdir -p "$OUT" "$LOGS"
touch "$LOGS/.start"
export PYTHONUNBUFFERED=1
SUMMARY="$OUT/summary.txt"
echo "gpu_session.sh $* (limit ${LIMIT} s) at $(date -Is) on $(hostname)" | tee "$SUMMARY"

if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi

# The stages run from the tree (the build stage may skip `pip install -e .`), bench/*.py scripts included.
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

left() { echo $((LIMIT - SECONDS)); }
# The seconds a stage with cap CAP may take: the time left, at most CAP.
stage_time() { local l; l=$(left); echo $((l < $1 ? l : $1)); }
status=0
last_rc=0
# run_capped NAME MIN_SECONDS CAP CMD...: CMD under `timeout` with the time left (at most CAP seconds), logged to
# $LOGS/NAME.log; skipped when less than MIN_SECONDS are left.
run_capped() {
  local name=$1 min=$2 cap=$3
  shift 3
  local t0=$SECONDS budget
  budget=$(stage_time "$cap")
  if [ "$budget" -lt "$min" ]; then
    echo "=== $name: skipped, ${budget} s left (needs ${min})" | tee -a "$SUMMARY"
    status=1
    return
  fi
  echo "=== $name: $* (at most ${budget} s)"
  timeout --kill-after=10 "$budget" "$@" 2>&1 | tee "$LOGS/$name.log"
  local rc=${PIPESTATUS[0]}
  local word=ok
  [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ] && word="TIMED OUT"
  [ "$rc" -ne 0 ] && [ "$word" = ok ] && word="FAILED (status $rc)"
  echo "=== $name: $word after $((SECONDS - t0)) s" | tee -a "$SUMMARY"
  [ "$rc" -eq 0 ] || status=1
  last_rc=$rc
}
run() { local name=$1 min=$2; shift 2; run_capped "$name" "$min" 100000 "$@"; }
# The --time-limit of a benchmark stage with cap CAP: its time less RESERVE seconds (its gpuph rows, the files, the
# archive), at least 30.
bench_limit() { local s=$(($(stage_time "$1") - $2)); [ "$s" -lt 30 ] && s=30; echo "$s"; }

pytest_args=(-q -p no:warnings -p no:cacheprovider --durations=15)  # the slowest tests: for planning the next call
python3 -c "import xdist" 2>/dev/null && pytest_args+=(-n 8)
python3 -c "import pytest_timeout" 2>/dev/null && pytest_args+=(--timeout 120)  # a hung kernel fails its test only
cuda_tests=(tests/test_cuda*.py tests/test_distances.py)

for stage in "$@"; do
  case "$stage" in
    build)
      if python3 bench/prebuilt.py install 2>&1 | tee "$LOGS/prebuilt.log"; then
        echo "=== build: the prebuilt extension after $SECONDS s" | tee -a "$SUMMARY"
      else
        run build 60 python3 -m pip install --no-build-isolation --no-deps -e .
      fi ;;
    test)
      run_capped test 60 210 python3 -m pytest "${pytest_args[@]}" "${cuda_tests[@]}"
      # On a failure, the first failing test again, one process, launches synchronous: a fault inside a kernel is
      # then reported by the launch that made it (the stage's name in gpuph's message), not by a later copy, and
      # does not poison the tests after it as it does in a pytest worker.
      if [ "$last_rc" -ne 0 ]; then
        run_capped test-blocking 30 60 env CUDA_LAUNCH_BLOCKING=1 python3 -m pytest -q -p no:warnings \
          -p no:cacheprovider -x "${cuda_tests[@]}"
      fi ;;
    test-all) run test-all 120 python3 -m pytest "${pytest_args[@]}" tests ;;
    sanitize)
      # compute-sanitizer's memcheck (out-of-bounds and misaligned accesses, leaks of device memory) on the CUDA tests'
      # small inputs: every kernel of the pipeline runs under it (slow: one process, small cases only).
      run sanitize 90 compute-sanitizer --tool memcheck --error-exitcode 1 --print-limit 20 \
        python3 -m pytest -q -p no:warnings -x tests/test_cuda.py -k "equals_cpu or h1_of_3d or nan_and_empty" ;;
    union-find)
      # One thread per run is hopeless on one large grid: serial only where the batch gives it runs side by side.
      run union-find-batches 60 python3 -m gpuph.bench.breakdown --cases 256x28x28 64x256x256 64x32^3 \
        --union-find serial serial-ring host relaxed --out-suffix=-union-find-batches
      run union-find-large 60 python3 -m gpuph.bench.breakdown --cases 1x1024x1024 1x128^3 --union-find host relaxed \
        --out-suffix=-union-find-large
      # The pinned order of small images' rows by the sorts instead of by rank (A/B with the batches above).
      run order-by-sorts 30 python3 -m gpuph.bench.breakdown --cases 256x28x28 64x64x64 --ranked-order-limit 0 \
        --out-suffix=-union-find-order-by-sorts
      # The candidates sorted by the radix sort over double buffers instead of torch's sort on cases that take
      # torch's by default (A/B with the runs above), and 1x256^3 the other way round (against the breakdown stage).
      run buffer-sort 30 python3 -m gpuph.bench.breakdown --cases 256x28x28 64x256x256 1x1024x1024 64x32^3 1x128^3 \
        --buffer-sort-cells 0 --out-suffix=-union-find-buffer-sort
      run torch-sort 30 python3 -m gpuph.bench.breakdown --cases 1x256^3 --buffer-sort-cells 4611686018427387904 \
        --out-suffix=-union-find-torch-sort
      # The relaxed rule's cap on an input that needs more iterations than its first value (chirp: 62 on 1024^2):
      # pinned at 32, every call runs the sequential fallback; learned (the warm-up calls teach it), none does.
      run relaxed-cap-pinned 30 python3 -m gpuph.bench.breakdown --cases 1x1024x1024 --fields chirp \
        --union-find relaxed --relaxed-iterations 32 --repeats 3 --out-suffix=-union-find-chirp-32
      run relaxed-cap-learned 30 python3 -m gpuph.bench.breakdown --cases 1x1024x1024 --fields chirp \
        --union-find relaxed --repeats 3 --out-suffix=-union-find-chirp-learned ;;
    large-volume)
      # The largest input the CUDA issue names: one 1024^3 volume, H0 and H2 (H1 of 3D at this size needs more memory
      # than an H100 has), its time and peak memory. At most 180 s, so that the stages after it keep their time (were
      # the relaxed union-find not to converge, its fallback, one thread a phase, would not end in a call's time).
      run large-volume 90 timeout 180 python3 -m gpuph.bench.breakdown --cases 1x1024^3 --fields noise --dims 0,2 \
        --repeats 1 --out-suffix=-large-volume ;;
    goals) run goals 45 python3 -m gpuph.bench --goals --no-progress --budget 1 --cap 5 ;;
    suite) run_capped suite 120 200 python3 -m gpuph.bench --no-progress --budget 2 --cap 5 \
             --time-limit "$(bench_limit 200 60)" ;;
    gan) run_capped gan 90 150 python3 bench/gan_throughput.py --budget 5 --time-limit "$(bench_limit 150 40)" ;;
    breakdown) run_capped breakdown 60 120 python3 -m gpuph.bench.breakdown ;;
    points) run_capped points 45 60 python3 bench/bench_point_cloud.py --budget 3 --time-limit "$(bench_limit 60 20)" ;;
    *) echo "unknown stage $stage (build, test, test-all, goals, breakdown, union-find, sanitize, suite, gan," \
         "points, large-volume)" \
         | tee -a "$SUMMARY"
       status=2 ;;
  esac
done

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv >"$LOGS/gpu.csv" 2>/dev/null || true
python3 -c "import torch; print(torch.__version__, torch.version.cuda, torch.cuda.get_device_name())" \
  >"$LOGS/torch.txt" 2>&1 || true
# Everything written since the start (logs, new result files) in one archive: the only way it all comes back.
find "$LOGS" bench/results -type f -newer "$LOGS/.start" -print0 2>/dev/null \
  | tar --null -T - -czf "$OUT/gpu-session.tar.gz" 2>/dev/null
echo "packed $(tar -tzf "$OUT/gpu-session.tar.gz" 2>/dev/null | wc -l) files into gpu-session.tar.gz" \
  "($(du -h "$OUT/gpu-session.tar.gz" | cut -f1)); $((SECONDS)) s in all" | tee -a "$SUMMARY"
exit $status
