#!/usr/bin/env bash
# TPU pod job: the same training command on every worker of a TPU VM pod; JAX auto-detects the pod.
#   launch/tpu_pod.sh --tpu NAME --zone ZONE --config configs/qwen2_5_vl_3b.py --workdir gs://bucket/run \
#       [--repo ~/vlatent-jax] [--dry-run] [-- --config.key=value ...]
set -euo pipefail
tpu= zone= config= workdir= repo='~/vlatent-jax' dry=0
while [ $# -gt 0 ]; do
  case "$1" in
    --tpu) tpu=$2; shift 2 ;;
    --zone) zone=$2; shift 2 ;;
    --config) config=$2; shift 2 ;;
    --workdir) workdir=$2; shift 2 ;;
    --repo) repo=$2; shift 2 ;;
    --dry-run) dry=1; shift ;;
    --) shift; break ;;
    *) echo "tpu_pod.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
for name in tpu zone config workdir; do
  [ -n "${!name}" ] || { echo "tpu_pod.sh: --$name is required" >&2; exit 2; }
done
train="cd $repo && python3 -m vlatent_jax.train --config $config --workdir $workdir $*"
cmd=(gcloud compute tpus tpu-vm ssh "$tpu" --zone "$zone" --worker=all --command "$train")
if [ "$dry" = 1 ]; then printf '%q ' "${cmd[@]}"; echo; else exec "${cmd[@]}"; fi
