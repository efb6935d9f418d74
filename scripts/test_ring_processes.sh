#!/usr/bin/env bash
# The NCCL ring with one process per GPU (scripts/launch_local.sh), checked against the single-GPU kernel
# (`ringlab-ring --mode check`) with each transport: NCCL send/recv, and the copy engines over CUDA IPC.
# Cases (N = 4099): zigzag causal GQA (H = 4, Hkv = 2), striped causal (H = 3), contiguous non-causal (Hkv = 1);
# and LongNet dilation 512:1,1024:2,2048:4 (N = 8192).
# Usage: [RANKS=2] scripts/test_ring_processes.sh PATH/TO/ringlab-ring
# Exit 0: every rank of every case ok; 1: a case failed; 77: skipped (fewer than RANKS GPUs; ctest SKIP_RETURN_CODE).
set -u
ring_binary=${1:?usage: scripts/test_ring_processes.sh PATH/TO/ringlab-ring}
here=$(cd "$(dirname "$0")" && pwd)
source "$here/ring_test_ranks.sh" "process-per-GPU ring check"
cases=(
  "--seq 4099 --layout zigzag --causal --heads 4 --kv-heads 2"
  "--seq 4099 --layout striped --causal --heads 3 --kv-heads 3"
  "--seq 4099 --layout contiguous --no-causal --heads 4 --kv-heads 1"
  "--seq 8192 --layout contiguous --causal --heads 4 --kv-heads 4 --dilation 512:1,1024:2,2048:4"
)
failures=0
for transport in nccl copy-engine; do
  for case in "${cases[@]}"; do
    log=$(mktemp)
    # shellcheck disable=SC2086  # the case is a list of options
    TIMEOUT_S=120 GRACE_S=20 "$here/launch_local.sh" "$ranks" "$ring_binary" --mode check --transport "$transport" \
      --head-dim 128 $case >"$log" 2>&1
    status=$?
    oks=$(grep -c "vs single-GPU kernel.* ok$" "$log")
    echo "---- $transport, $case: exit $status, $oks of $ranks ranks ok ----"
    grep "vs single-GPU kernel\|RING FAULT\|invalid\|error" "$log"
    if ((status != 0 || oks != ranks)); then
      echo "FAIL ($transport, $case)"
      cat "$log"
      failures=$((failures + 1))
    fi
    rm -f "$log"
  done
done
exit $((failures > 0))
