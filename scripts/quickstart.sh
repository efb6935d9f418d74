#!/usr/bin/env bash
# The README's first command: installs what is needed, builds, and runs the main job on a built-in default.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
if [ -z "${CUDACXX:-}" ] && ! command -v nvcc >/dev/null && [ -x /usr/local/cuda/bin/nvcc ]; then
  export CUDACXX=/usr/local/cuda/bin/nvcc
fi
cmake --preset release >/dev/null
cmake --build --preset release -j "$(nproc)"
ringlab=build/release/tools/ringlab
echo
echo "== ringlab simulate: the built-in teaching scenario (causal ring attention, 8 devices, zigzag)"
"$ringlab" simulate --trace build/quickstart-trace.json --force
