#!/usr/bin/env bash
# SLURM multi-node GPU job: one task per node, `jax.distributed.initialize()` reads the SLURM environment.
#   launch/slurm.sh --nodes 4 --gpus-per-node 8 --config configs/qwen2_5_vl_7b.py --workdir /shared/runs/7b \
#       [--partition P] [--time 24:00:00] [--dry-run] [-- --config.key=value ...]
# --dry-run prints the batch script instead of submitting it with sbatch.
set -euo pipefail
nodes= gpus= config= workdir= partition= time_limit=24:00:00 dry=0
while [ $# -gt 0 ]; do
  case "$1" in
    --nodes) nodes=$2; shift 2 ;;
    --gpus-per-node) gpus=$2; shift 2 ;;
    --config) config=$2; shift 2 ;;
    --workdir) workdir=$2; shift 2 ;;
    --partition) partition=$2; shift 2 ;;
    --time) time_limit=$2; shift 2 ;;
    --dry-run) dry=1; shift ;;
    --) shift; break ;;
    *) echo "slurm.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
for name in nodes gpus config workdir; do
  [ -n "${!name}" ] || { echo "slurm.sh: --${name/gpus/gpus-per-node} is required" >&2; exit 2; }
done
extra=$(printf '%q ' "$@")
script="#!/usr/bin/env bash
#SBATCH --job-name=vlatent
#SBATCH --nodes=$nodes
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=$gpus
#SBATCH --time=$time_limit
${partition:+#SBATCH --partition=$partition
}#SBATCH --output=$workdir/slurm-%j.out
srun python3 -m vlatent_jax.train --config $config --workdir $workdir $extra"
if [ "$dry" = 1 ]; then echo "$script"; else mkdir -p "$workdir"; echo "$script" | sbatch; fi
