#!/usr/bin/env bash
# Runs ON a GPU machine: builds ringlab's GPU kernels, checks them (the GPU tests must pass), then times
# them beside PyTorch SDPA (flash and cuDNN backends) and writes bench/results/gpu-<date>-<gpu>.md.
#
# Usage: scripts/bench_gpu.sh [--quick] [--variants] [--repeats N]   (arguments go to bench_attention.py)
# Environment: BUILD_DIR (default build/gpu-bench), PYTHON (default /opt/torch/.venv/bin/python3),
#              SKIP_BUILD=1 to use binaries already in BUILD_DIR, RINGLAB_COMMIT to record in the results.
set -euo pipefail
cd "$(dirname "$0")/.."

build="${BUILD_DIR:-build/gpu-bench}"
python="${PYTHON:-/opt/torch/.venv/bin/python3}"
[ -x "$python" ] || python=python3
jobs="$(nproc)"

if [ "${SKIP_BUILD:-0}" != 1 ]; then
  generator="Unix Makefiles"
  command -v ninja >/dev/null && generator=Ninja
  echo "== build ($generator, $build)"
  cmake -S . -B "$build" -G "$generator" -DCMAKE_BUILD_TYPE=Release -DRINGLAB_BUILD_GPU=ON \
    -DRINGLAB_BUILD_VIZ=OFF -DRINGLAB_BUILD_BENCH=OFF -DCMAKE_CUDA_ARCHITECTURES=90 >/dev/null
  cmake --build "$build" -j "$jobs" --target ringlab_gpu_tests ringlab_gpu_capi
fi

echo "== GPU tests (correctness first)"
"$build/tests/ringlab_gpu_tests"

echo "== benchmark"
"$python" bench/gpu/bench_attention.py --lib "$build/gpu/libringlab_gpu_capi.so" --results bench/results \
  --command "scripts/bench_gpu.sh $*" "$@"
