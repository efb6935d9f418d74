# Sourced by the multi-GPU ring test scripts: sets `ranks` from RANKS (default 2; exit 2 unless a whole number
# ≥ 2) and exits 77 (ctest's SKIP_RETURN_CODE), saying "$1 skipped", when this machine has fewer GPUs.
ranks=${RANKS:-2}
if ! [[ "$ranks" =~ ^[0-9]+$ ]] || ((ranks < 2)); then
  echo "RANKS='$ranks': a whole number of ranks, at least 2" >&2
  exit 2
fi
gpus=$( (nvidia-smi -L 2>/dev/null || true) | grep -c '^GPU')
if ((gpus < ranks)); then
  echo "$1 skipped: needs $ranks GPUs ($gpus here)"
  exit 77
fi
