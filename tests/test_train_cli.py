"""The training CLI end to end on a small embedded benchmark: metrics, checkpoints, exact resume."""

import json
import os
import subprocess
import sys

import pytest

from vlatent_jax.data import prepare, synthetic

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
  root = tmp_path_factory.mktemp("bench")
  synthetic.generate(str(root / "raw"), seed=0, counts={"train": 24}, workers=1)
  prepare.prepare(prepare.parse_args([
      "--manifest", str(root / "raw" / "train.jsonl"), "--out", str(root / "shards"), "--fps", "8",
      "--max-frames", "16", "--workers", "1", "--min-pixels", str(28 * 28), "--max-pixels", str(56 * 56)]))
  return str(root / "shards")


def _train(workdir, shards, steps, *extra):
  cmd = [sys.executable, "-m", "vlatent_jax.train", f"--config={ROOT}/configs/tiny.py", f"--workdir={workdir}",
         f"--config.data.path={shards}", f"--config.train.steps={steps}", "--config.train.batch_size=4",
         "--config.checkpoint.every_steps=3", "--config.optim.warmup_steps=2", *extra]
  subprocess.run(cmd, check=True, cwd=ROOT, env={**os.environ, "JAX_PLATFORMS": "cpu"})
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f]


def test_train_resume_is_exact(shards, tmp_path):
  straight = _train(tmp_path / "straight", shards, 6)
  assert [r["step"] for r in straight] == [1, 2, 3, 4, 5, 6]
  for key in ("loss", "answer_loss", "align_loss", "diversity_loss", "grad_norm", "lim_gate", "latent_cosine"):
    assert key in straight[0]
  assert (tmp_path / "straight" / "checkpoints" / "6").is_dir()
  assert any(p.startswith("events") for p in os.listdir(tmp_path / "straight" / "tensorboard"))

  first = _train(tmp_path / "resumed", shards, 3)
  resumed = _train(tmp_path / "resumed", shards, 6)  # restarts from the step-3 checkpoint
  assert [r["step"] for r in resumed] == [1, 2, 3, 4, 5, 6]
  assert [r["loss"] for r in resumed[:3]] == [r["loss"] for r in first]
  # Bit-identical losses: the model state and the data iterator both resumed exactly.
  assert [r["loss"] for r in resumed] == [r["loss"] for r in straight]


def test_bad_config_value_fails_before_compute(shards, tmp_path):
  cmd = [sys.executable, "-m", "vlatent_jax.train", f"--config={ROOT}/configs/tiny.py", f"--workdir={tmp_path}",
         f"--config.data.path={shards}", "--config.latent.mode=r1"]
  result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
  assert result.returncode != 0
  assert "latent.mode" in result.stderr
  assert not (tmp_path / "checkpoints").exists()
