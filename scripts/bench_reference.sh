#!/usr/bin/env bash
# Builds the Release benchmark, runs it, and records the printed tables with the run's provenance (date,
# machine, compiler, commit, exact command) in bench/results/reference-cpu-<YYYY-MM-DD>.md.
#
#   scripts/bench_reference.sh                      # the full run of issue 2 §5 (~4 minutes on 2 cores)
#   scripts/bench_reference.sh --sizes 1024,2048    # any extra arguments go to ringlab_bench_reference
#   BUILD_DIR=build/bench scripts/bench_reference.sh   # another build directory (default build/release)
#   RESULTS=/tmp/x.md scripts/bench_reference.sh       # another results file
#   QUIET_WAIT=0 scripts/bench_reference.sh             # do not wait for a quiet machine (default: up to 300 s)
#   SOURCE_COMMIT="abc1234 (dirty)" scripts/bench_reference.sh   # record this commit (for a tree copied without .git)
#   CMAKE_ARGS="-DRINGLAB_BUILD_GPU=OFF" scripts/bench_reference.sh # extra configure arguments
#
# The benchmark exits non-zero when a result is wrong; the results file is written either way.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
build_dir=${BUILD_DIR:-build/release}
results=${RESULTS:-bench/results/reference-cpu-$(date -u +%Y-%m-%d).md}
target=ringlab_bench_reference

echo "bench_reference: configuring and building $target in $build_dir (Release)" >&2
generator=()
if [ ! -f "$build_dir/CMakeCache.txt" ] && command -v ninja >/dev/null; then generator=(-G Ninja); fi
# shellcheck disable=SC2086  # CMAKE_ARGS is a list of words on purpose
cmake -S . -B "$build_dir" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DRINGLAB_BUILD_BENCH=ON ${CMAKE_ARGS:-} >/dev/null
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
if [ -n "${SOURCE_COMMIT:-}" ]; then  # a copied tree without .git (e.g. a GPU machine): the caller says which
  commit=$SOURCE_COMMIT tree="as given by SOURCE_COMMIT"
elif commit=$(git rev-parse --short HEAD 2>/dev/null); then
  if [ -n "$(git status --porcelain)" ]; then tree="dirty tree"; else tree="clean tree"; fi
else
  commit=unknown tree="not a git checkout"
fi
model=$(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1)
cores=$(nproc)
compiler=$(sed -n 's/^CMAKE_CXX_COMPILER:[A-Z]*=//p' "$build_dir/CMakeCache.txt")
compiler_version=$("$compiler" --version | head -1)
# Timings are only worth keeping on a quiet machine: wait (up to QUIET_WAIT seconds, default 300) until other
# processes have used under 10% of the CPU for 5 seconds in a row, then run anyway and record how busy it was.
# (The benchmark itself also retakes a call that another process disturbed; see bench/README.md.)
quiet_wait=${QUIET_WAIT:-300}
busy_before=$(cpu_busy_percent)
waited=1
quiet_seconds=0
if [ "$busy_before" -lt 10 ]; then
  quiet_seconds=1
elif [ "$quiet_wait" -gt 0 ]; then
  echo "bench_reference: machine ${busy_before}% busy; waiting up to ${quiet_wait}s for it to go quiet" >&2
fi
while [ "$quiet_seconds" -lt 5 ] && [ "$waited" -lt "$quiet_wait" ]; do
  busy_before=$(cpu_busy_percent)
  waited=$((waited + 1))
  if [ "$busy_before" -lt 10 ]; then quiet_seconds=$((quiet_seconds + 1)); else quiet_seconds=0; fi
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
  echo "The reference benchmark of issue 2 §5 (ringlab_bench_reference); bench/README.md explains every column"
  echo "and formula."
  echo
  echo "- date: $start"
  echo "- machine: $model, $cores cores ($(uname -m), $(uname -r))"
  echo "- compiler: $compiler_version"
  echo "- commit: $commit ($tree)"
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
