#!/usr/bin/env bash
# Builds the Release benchmark, runs it, and records the printed tables with the run's provenance (date,
# machine, compiler, commit, exact command) in bench/results/reference-cpu-<YYYY-MM-DD>.md.
#
#   scripts/bench_reference.sh                      # the full run of issue 2 §5 (~4 minutes on 2 cores)
#   scripts/bench_reference.sh --sizes 1024,2048    # any extra arguments go to ringlab_bench_reference
#   BUILD_DIR=build/bench scripts/bench_reference.sh   # another build directory (default build/release)
#   RESULTS=/tmp/x.md scripts/bench_reference.sh       # another results file
#   QUIET_WAIT=0 scripts/bench_reference.sh             # do not wait for a quiet machine (default: up to 300 s)
#
# The benchmark exits non-zero when a result is wrong; the results file is written either way.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
build_dir=${BUILD_DIR:-build/release}
results=${RESULTS:-bench/results/reference-cpu-$(date -u +%Y-%m-%d).md}
target=ringlab_bench_reference

echo "bench_reference: configuring and building $target in $build_dir (Release)" >&2
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DRINGLAB_BUILD_BENCH=ON >/dev/null
cmake --build "$build_dir" --target "$target" >/dev/null
binary="$build_dir/bench/$target"
if [ ! -x "$binary" ]; then
  echo "bench_reference: $binary was not built (is Google Benchmark installed? the root CMakeLists adds bench/ only then)" >&2
  exit 2
fi

# CPU time other processes used over one second, so a busy machine shows in the record.
cpu_busy_percent() {  # /proc/stat cpu: user nice system idle iowait irq softirq steal
  local u1 n1 s1 i1 w1 q1 f1 t1 u2 n2 s2 i2 w2 q2 f2 t2 busy idle
  read -r _ u1 n1 s1 i1 w1 q1 f1 t1 _ < /proc/stat
  sleep 1
  read -r _ u2 n2 s2 i2 w2 q2 f2 t2 _ < /proc/stat
  busy=$(( (u2 + n2 + s2 + q2 + f2 + t2) - (u1 + n1 + s1 + q1 + f1 + t1) ))
  idle=$(( (i2 + w2) - (i1 + w1) ))
  echo $(( 100 * busy / (busy + idle + 1) ))
}

command_line="$binary${*:+ $*}"
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git status --porcelain 2>/dev/null)" ]; then tree=dirty; else tree=clean; fi
model=$(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1)
cores=$(nproc)
compiler=$(sed -n 's/^CMAKE_CXX_COMPILER:[A-Z]*=//p' "$build_dir/CMakeCache.txt")
compiler_version=$("$compiler" --version | head -1)
# Timings are only worth keeping on a quiet machine: wait (up to QUIET_WAIT seconds, default 300) until other
# processes use under 10% of the CPU, then run anyway and record how busy it was.
quiet_wait=${QUIET_WAIT:-300}
waited=0
busy_before=$(cpu_busy_percent)
while [ "$busy_before" -ge 10 ] && [ "$waited" -lt "$quiet_wait" ]; do
  [ "$waited" -eq 0 ] && echo "bench_reference: machine ${busy_before}% busy; waiting up to ${quiet_wait}s for it to go quiet" >&2
  sleep 4
  waited=$((waited + 5))
  busy_before=$(cpu_busy_percent)
done

echo "bench_reference: running $command_line (machine ${busy_before}% busy before the run)" >&2
output=$(mktemp)
trap 'rm -f "$output"' EXIT
start=$(date -u +"%Y-%m-%d %H:%M:%S UTC")
status=0
"$binary" "$@" | tee "$output" || status=$?
busy_after=$(cpu_busy_percent)

mkdir -p "$(dirname "$results")"
{
  echo "# Reference CPU benchmark, $(date -u +%Y-%m-%d)"
  echo
  echo "Issue 2 §5: forward GFLOP/s of the exact CPU reference beside the Eigen GEMM rate, and the blockwise"
  echo "forward's memory at N = 65536. bench/README.md explains every column and formula."
  echo
  echo "- date: $start"
  echo "- machine: $model, $cores cores ($(uname -m), $(uname -r))"
  echo "- compiler: $compiler_version"
  echo "- commit: $commit ($tree tree)"
  echo "- command: \`scripts/bench_reference.sh${*:+ $*}\` → \`$command_line\`"
  echo "- other load: ${busy_before}% CPU busy in the second before the run (after waiting ${waited}s for < 10%)," \
    "${busy_after}% in the second after"
  echo "- exit status: $status"
  echo
  echo '```'
  cat "$output"
  echo '```'
} > "$results"
echo "bench_reference: wrote $results" >&2
exit "$status"
