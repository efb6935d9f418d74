#!/usr/bin/env bash
# The NCCL ring's fault handling (issue 6) on RANKS GPUs (default 2), one process each (scripts/launch_local.sh):
#   kill:  rank 1 exits before forward step 1  → rank 0 aborts and exits 3 within 60 s, naming rank 1;
#   stall: rank 1 sleeps before forward step 1 → the same, rank 1 reported as not responding.
# Usage: [RANKS=4] scripts/test_nccl_faults.sh PATH/TO/ringlab-ring [RINGLAB-RING OPTIONS...]
#   (for example --transport copy-engine: the same faults with copy-engine transfers)
# Exit 0: both passed; 1: a check failed; 77: skipped (fewer than RANKS GPUs; ctest SKIP_RETURN_CODE).
set -u
ring_binary=${1:?usage: scripts/test_nccl_faults.sh PATH/TO/ringlab-ring [RINGLAB-RING OPTIONS...]}
shift
extra_args=("$@")
here=$(cd "$(dirname "$0")" && pwd)
source "$here/ring_test_ranks.sh" "NCCL fault test"
failures=0
run_case() {  # kind, expected word in rank 0's message
  local kind=$1 expected=$2 log
  log=$(mktemp)
  local start=$SECONDS
  GRACE_S=30 "$here/launch_local.sh" "$ranks" "$ring_binary" --inject "$kind@1:1" --timeout-s 10 \
    --seq 4099 --heads 2 --kv-heads 1 --head-dim 128 --causal --layout zigzag ${extra_args[@]+"${extra_args[@]}"} >"$log" 2>&1
  local elapsed=$((SECONDS - start))
  echo "---- $kind on $ranks ranks ${extra_args[*]-}: ${elapsed} s ----"
  cat "$log"
  local ok=1
  grep -q "rank 0=3" "$log" || { echo "FAIL ($kind): rank 0 did not exit with status 3 (ring fault)"; ok=0; }
  grep -q "\[rank 0\].*RING FAULT" "$log" || { echo "FAIL ($kind): rank 0 printed no RING FAULT"; ok=0; }
  grep -q "rank 1: $expected" "$log" || { echo "FAIL ($kind): rank 0's message does not say 'rank 1: $expected'"; ok=0; }
  # The issue's bound is 60 s from the fault; the whole run (start-up, 10 s stall timeout, abort) must stay
  # under it. The launcher kills the stalled rank 30 s after rank 0 exits, so only rank 0's exit is timed:
  # its status line comes first.
  local rank0_s
  rank0_s=$(grep -o "rank 0 exited after [0-9]* s" "$log" | grep -o "[0-9]* s" | head -1 | tr -d ' s')
  [[ -n "$rank0_s" ]] && elapsed=$rank0_s
  ((elapsed < 60)) || { echo "FAIL ($kind): took ${elapsed} s (bound 60 s)"; ok=0; }
  ((ok)) && echo "PASS ($kind): rank 0 aborted and named rank 1 in ${elapsed} s (whole run)"
  ((ok)) || failures=$((failures + 1))
  rm -f "$log"
}
run_case kill EXITED
run_case stall "NOT RESPONDING"
exit $((failures > 0))
