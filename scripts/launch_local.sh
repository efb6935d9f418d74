#!/usr/bin/env bash
# One process per local GPU, torchrun-style, for gpu::NcclRing programs (ringlab-ring):
#   scripts/launch_local.sh NPROC COMMAND [ARGS...]
# Each process i gets RANK=i, WORLD_SIZE=NPROC, LOCAL_RANK=i, NCCL_COMM_ID=127.0.0.1:PORT (rank 0 listens
# there; PORT from RINGLAB_PORT or a free one) and RINGLAB_PROGRESS_DIR (a fresh directory of heartbeat
# files, so a rank that times out can name a peer that died or stalled). NCCL_NVLS_ENABLE defaults to 0
# (../shared/guide/GPU.md: never NVLink multicast on the shared machines).
# Output (stdout and stderr together) is prefixed "[rank i]". When a process fails, the others get GRACE_S
# seconds (default 90) to finish or abort on their own, then are killed; TIMEOUT_S (default 0 = none) bounds
# the whole run. Interrupting the launcher kills every rank. Prints every rank's exit status; exits with the
# largest status (0 when all succeeded).
# Several nodes: run one copy of the program per GPU with the same variables from your launcher instead
# (docs/gpu-rings.md shows srun and mpirun lines).
set -u
usage() {
  echo "usage: [GRACE_S=s] [TIMEOUT_S=s] scripts/launch_local.sh NPROC COMMAND [ARGS...]   ($1)" >&2
  exit 2
}
[[ $# -ge 2 ]] || usage "NPROC and a COMMAND are required"
[[ "$1" =~ ^[1-9][0-9]*$ ]] || usage "NPROC must be a positive integer, got '$1'"
nproc_requested=$1
shift
grace=${GRACE_S:-90}
timeout=${TIMEOUT_S:-0}
[[ "$grace" =~ ^[0-9]+$ ]] || usage "GRACE_S must be a whole number of seconds, got '$grace'"
[[ "$timeout" =~ ^[0-9]+$ ]] || usage "TIMEOUT_S must be a whole number of seconds, got '$timeout'"
if [[ -n "${RINGLAB_PORT:-}" ]]; then
  port=$RINGLAB_PORT
else
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null ||
    echo $((20000 + RANDOM % 20000)))
fi
[[ "$port" =~ ^[0-9]+$ ]] || usage "RINGLAB_PORT must be a port number, got '$port'"
progress_dir=$(mktemp -d "${TMPDIR:-/tmp}/ringlab-progress.XXXXXX")
export WORLD_SIZE=$nproc_requested NCCL_COMM_ID="127.0.0.1:$port" RINGLAB_PROGRESS_DIR="$progress_dir"
export NCCL_NVLS_ENABLE=${NCCL_NVLS_ENABLE:-0}

set -m  # every rank in its own process group: killing a rank kills its whole pipeline
pids=()
declare -A status
cleanup() {
  for ((i = 0; i < ${#pids[@]}; i++)); do
    [[ -z "${status[$i]:-}" ]] && kill -9 -- "-${pids[$i]}" 2>/dev/null
  done
  rm -rf "$progress_dir"
}
trap cleanup EXIT
trap 'echo "launch_local: interrupted: killing every rank" >&2; exit 130' INT TERM

for ((i = 0; i < nproc_requested; i++)); do
  # The subshell's status is the program's (pipefail), and it ends only when sed has printed everything.
  (set -o pipefail; RANK=$i LOCAL_RANK=$i "$@" 2>&1 | sed -u "s/^/[rank $i] /") &
  pids+=($!)
done

remaining=$nproc_requested
deadline=""
while ((remaining > 0)); do
  for ((i = 0; i < nproc_requested; i++)); do
    [[ -n "${status[$i]:-}" ]] && continue
    if ! kill -0 "${pids[$i]}" 2>/dev/null; then
      wait "${pids[$i]}"
      status[$i]=$?
      remaining=$((remaining - 1))
      echo "launch_local: rank $i exited after $SECONDS s with status ${status[$i]}" >&2
      if [[ ${status[$i]} -ne 0 && -z "$deadline" ]]; then
        deadline=$((SECONDS + grace))
        echo "launch_local: rank $i failed; the others get ${grace} s" >&2
      fi
    fi
  done
  if [[ -z "$deadline" && $timeout -gt 0 && $SECONDS -ge $timeout ]]; then
    echo "launch_local: TIMEOUT_S = $timeout s reached" >&2
    deadline=$SECONDS
  fi
  if [[ -n "$deadline" && $SECONDS -ge $deadline ]]; then
    for ((i = 0; i < nproc_requested; i++)); do
      if [[ -z "${status[$i]:-}" ]]; then
        echo "launch_local: rank $i still running: killing it" >&2
        kill -9 -- "-${pids[$i]}" 2>/dev/null
      fi
    done
  fi
  sleep 0.2
done
worst=0
summary="launch_local:"
for ((i = 0; i < nproc_requested; i++)); do
  summary+=" rank $i=${status[$i]}"
  ((status[$i] > worst)) && worst=${status[$i]}
done
echo "$summary" >&2
exit "$worst"
