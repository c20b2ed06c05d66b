"""Launch scripts: --dry-run prints the exact command each would run; missing arguments fail clearly."""

import os
import shlex
import subprocess

import pytest

LAUNCH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "launch")


def _run(script, *args):
  return subprocess.run(["bash", os.path.join(LAUNCH, script), *args], capture_output=True, text=True)


def test_tpu_pod_runs_the_same_command_on_every_worker():
  out = _run("tpu_pod.sh", "--tpu", "pod1", "--zone", "z1", "--config", "configs/qwen2_5_vl_3b.py",
             "--workdir", "gs://b/run", "--dry-run", "--", "--config.train.steps=10")
  assert out.returncode == 0, out.stderr
  argv = shlex.split(out.stdout)
  assert argv[:6] == ["gcloud", "compute", "tpus", "tpu-vm", "ssh", "pod1"] and "--worker=all" in argv
  remote = argv[argv.index("--command") + 1]
  assert remote.endswith("python3 -m vlatent_jax.train --config configs/qwen2_5_vl_3b.py --workdir gs://b/run "
                         "--config.train.steps=10")


def test_gpu_single_host():
  out = _run("gpu_single_host.sh", "--config", "configs/tiny.py", "--workdir", "runs/x", "--gpus", "0,1",
             "--dry-run")
  assert out.returncode == 0, out.stderr
  argv = shlex.split(out.stdout)
  assert "CUDA_VISIBLE_DEVICES=0,1" in argv
  assert argv[argv.index("python3"):] == ["python3", "-m", "vlatent_jax.train", "--config", "configs/tiny.py",
                                          "--workdir", "runs/x"]


def test_slurm_batch_script():
  out = _run("slurm.sh", "--nodes", "4", "--gpus-per-node", "8", "--config", "configs/qwen2_5_vl_7b.py",
             "--workdir", "/shared/r", "--partition", "gpu", "--dry-run", "--", "--config.train.seed=3")
  assert out.returncode == 0, out.stderr
  lines = out.stdout.splitlines()
  for directive in ("--nodes=4", "--ntasks-per-node=1", "--gpus-per-node=8", "--partition=gpu"):
    assert f"#SBATCH {directive}" in lines
  assert lines[-1].rstrip() == ("srun python3 -m vlatent_jax.train --config configs/qwen2_5_vl_7b.py "
                                "--workdir /shared/r --config.train.seed=3")


@pytest.mark.parametrize("script,missing", [("tpu_pod.sh", "--tpu"), ("gpu_single_host.sh", "--config"),
                                            ("slurm.sh", "--nodes")])
def test_missing_arguments_fail(script, missing):
  out = _run(script, "--dry-run")
  assert out.returncode == 2 and missing in out.stderr
