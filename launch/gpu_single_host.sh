#!/usr/bin/env bash
# Single-host multi-GPU run: one JAX process drives every local GPU (the mesh spans them).
#   launch/gpu_single_host.sh --config configs/qwen2_5_vl_3b.py --workdir runs/3b [--gpus 0,1,2,3] \
#       [--dry-run] [-- --config.key=value ...]
set -euo pipefail
config= workdir= gpus= dry=0
while [ $# -gt 0 ]; do
  case "$1" in
    --config) config=$2; shift 2 ;;
    --workdir) workdir=$2; shift 2 ;;
    --gpus) gpus=$2; shift 2 ;;
    --dry-run) dry=1; shift ;;
    --) shift; break ;;
    *) echo "gpu_single_host.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
for name in config workdir; do
  [ -n "${!name}" ] || { echo "gpu_single_host.sh: --$name is required" >&2; exit 2; }
done
env_vars=(XLA_PYTHON_CLIENT_MEM_FRACTION=0.92)
[ -n "$gpus" ] && env_vars+=(CUDA_VISIBLE_DEVICES="$gpus")
cmd=(env "${env_vars[@]}" python3 -m vlatent_jax.train --config "$config" --workdir "$workdir" "$@")
if [ "$dry" = 1 ]; then printf '%q ' "${cmd[@]}"; echo; else exec "${cmd[@]}"; fi
