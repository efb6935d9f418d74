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
echo "== causal ring attention on 8 devices, contiguous vs zigzag layout (ringlab schedule)"
"$ringlab" schedule --seq 8192 --ring 8 --heads 8 --head-dim 64 --causal --layout contiguous | tail -n 12
"$ringlab" schedule --seq 8192 --ring 8 --heads 8 --head-dim 64 --causal --layout zigzag | tail -n 12
echo
echo "== a golden case, checked against itself"
out=$(mktemp -d)
"$ringlab" golden --out "$out/case" --seq 97 --heads 6 --kv-heads 2 --causal --ring 4 --layout zigzag
mkdir -p "$out/outputs" && cp "$out"/case/{o,lse,dq,dk,dv}.npy "$out/outputs/"
"$ringlab" check "$out/case" --outputs "$out/outputs"
