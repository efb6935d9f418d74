#!/usr/bin/env bash
# The README's test command: installs what is needed, builds, and passes every test.
#   1. Release build (CPU reference, CLI, benchmarks; gpu/ compiled with nvcc when the CUDA toolkit is
#      present; GPU tests skip without a device) and all its tests.
#   2. Debug build with AddressSanitizer + UndefinedBehaviorSanitizer, CPU tests only.
# Usage: scripts/test.sh            (JOBS=N to override the build parallelism)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

jobs="${JOBS:-$(nproc)}"
gpu_flag=()
if [ -z "${CUDACXX:-}" ] && ! command -v nvcc >/dev/null && [ -x /usr/local/cuda/bin/nvcc ]; then
  export CUDACXX=/usr/local/cuda/bin/nvcc
fi
if command -v nvcc >/dev/null || [ -n "${CUDACXX:-}" ]; then
  gpu_flag=(-DRINGLAB_BUILD_GPU=ON)  # compile gpu/ whenever nvcc exists, so CI catches CUDA build breaks
fi

echo "== release build"
cmake --preset release "${gpu_flag[@]}" >/dev/null
cmake --build --preset release -j "$jobs"
echo "== release tests"
ctest --preset release -j "$jobs"

echo "== sanitizer build (ASan + UBSan)"
cmake --preset asan >/dev/null
cmake --build --preset asan -j "$jobs"
echo "== sanitizer tests"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --preset asan -j "$jobs"

echo "== Python bindings (pytest) and notebooks (nbclient)"
scripts/test_python.sh
