#!/usr/bin/env bash
# One process per local GPU, torchrun-style, for gpu::NcclRing programs (ringlab-ring):
#   scripts/launch_local.sh NPROC COMMAND [ARGS...]
# Each process i gets RANK=i, WORLD_SIZE=NPROC, LOCAL_RANK=i, NCCL_COMM_ID=127.0.0.1:PORT (rank 0 listens
# there; PORT from RINGLAB_PORT or a free one) and RINGLAB_PROGRESS_DIR (a fresh directory of heartbeat
# files, so a rank that times out can name a peer that died or stalled). NCCL_NVLS_ENABLE defaults to 0
# (../shared/guide/GPU.md: never NVLink multicast on the shared machines).
# Output lines are prefixed "[rank i]". When a process fails, the others get GRACE_S seconds (default 90)
# to finish or abort on their own, then are killed. Prints every rank's exit status; exits with the
# largest status (0 when all succeeded).
# Several nodes: run one copy of the program per GPU with the same variables from your launcher instead
# (docs/gpu-rings.md shows srun and mpirun lines).
set -u
if [[ $# -lt 2 || ! "$1" =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: scripts/launch_local.sh NPROC COMMAND [ARGS...]   (NPROC: a positive integer, got '${1:-}')" >&2
  exit 2
fi
nproc_requested=$1
shift
grace=${GRACE_S:-90}
port=${RINGLAB_PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
progress_dir=$(mktemp -d "${TMPDIR:-/tmp}/ringlab-progress.XXXXXX")
export WORLD_SIZE=$nproc_requested NCCL_COMM_ID="127.0.0.1:$port" RINGLAB_PROGRESS_DIR="$progress_dir"
export NCCL_NVLS_ENABLE=${NCCL_NVLS_ENABLE:-0}

pids=()
for ((i = 0; i < nproc_requested; i++)); do
  RANK=$i LOCAL_RANK=$i "$@" > >(sed -u "s/^/[rank $i] /") 2> >(sed -u "s/^/[rank $i] /" >&2) &
  pids+=($!)
done

declare -A status
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
  if [[ -n "$deadline" && $SECONDS -ge $deadline ]]; then
    for ((i = 0; i < nproc_requested; i++)); do
      if [[ -z "${status[$i]:-}" ]]; then
        echo "launch_local: rank $i still running after ${grace} s: killing it" >&2
        kill -9 "${pids[$i]}" 2>/dev/null
      fi
    done
  fi
  sleep 0.2
done
wait
worst=0
summary="launch_local:"
for ((i = 0; i < nproc_requested; i++)); do
  summary+=" rank $i=${status[$i]}"
  ((status[$i] > worst)) && worst=${status[$i]}
done
echo "$summary" >&2
rm -rf "$progress_dir"
exit "$worst"
