"""The training CLI end to end on a small embedded benchmark: metrics, checkpoints, exact resume."""

import json
import os
import subprocess
import sys

import jax
import pytest

from vlatent_jax.data import prepare, synthetic

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
  root = tmp_path_factory.mktemp("bench")
  synthetic.generate(str(root / "raw"), seed=0, counts={"train": 24, "val": 8}, workers=1)
  for split in ("train", "val"):
    prepare.prepare(prepare.parse_args([
        "--manifest", str(root / "raw" / f"{split}.jsonl"), "--out", str(root / split), "--fps", "8",
        "--max-frames", "16", "--workers", "1", "--min-pixels", str(28 * 28), "--max-pixels", str(56 * 56)]))
  return str(root / "train")


def _command(workdir, shards, steps, *extra):
  return [sys.executable, "-m", "vlatent_jax.train", f"--config={ROOT}/configs/tiny.py", f"--workdir={workdir}",
          f"--config.data.path={shards}", f"--config.train.steps={steps}", "--config.train.batch_size=4",
          "--config.checkpoint.every_steps=3", "--config.optim.warmup_steps=2", "--config.train.eval_every_steps=0",
          *extra]


def _metrics(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f]


def _train(workdir, shards, steps, *extra, env=None):
  subprocess.run(_command(workdir, shards, steps, *extra), check=True, cwd=ROOT,
                 env={**os.environ, "JAX_PLATFORMS": "cpu", **(env or {})})
  return _metrics(workdir)


def test_train_resume_is_exact(shards, tmp_path):
  straight = _train(tmp_path / "straight", shards, 6)
  assert [r["step"] for r in straight] == [1, 2, 3, 4, 5, 6]
  # No step waits for the host: metrics come off the device only at the step-3 checkpoint and the last
  # step (train.log_every_steps is 10), so rows 1-3 and 4-6 each carry the time of their one fetch (elapsed
  # time = step / steps_per_s), and the second fetch comes after steps 4-6 ran.
  elapsed = [r["step"] / r["steps_per_s"] for r in straight]
  assert elapsed[:3] == pytest.approx([elapsed[2]] * 3, rel=1e-9)
  assert elapsed[3:] == pytest.approx([elapsed[5]] * 3, rel=1e-9)
  assert elapsed[3] > elapsed[2]
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


def test_micro_batch_smaller_than_the_batch_shards_fails_naming_keys(shards, tmp_path):
  cmd = _command(tmp_path, shards, 2, "--config.train.grad_accum_steps=4")  # 4 micro-batches of 1 on 2 devices
  two = {"JAX_PLATFORMS": "cpu", "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
  result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env={**os.environ, **two})
  assert result.returncode != 0
  assert "train.batch_size" in result.stderr and "train.grad_accum_steps" in result.stderr, result.stderr[-2000:]
  assert not (tmp_path / "checkpoints").exists()


def test_validation_keeps_best_checkpoint_and_exports_model(shards, tmp_path):
  import numpy as np

  import vlatent_jax
  val = os.path.join(os.path.dirname(shards), "val")
  rows = _train(tmp_path, shards, 6, f"--config.data.val_path={val}", "--config.train.eval_every_steps=3",
                "--config.checkpoint.best_metric=val_loss", "--config.checkpoint.keep=1",
                "--config.train.profile_start_step=2", "--config.train.profile_steps=2")
  evals = {r["step"]: r["val_loss"] for r in rows if "val_loss" in r}
  assert sorted(evals) == [3, 6] and all(np.isfinite(v) for v in evals.values())
  assert {"val_answer_loss", "val_align_loss"} <= rows[2].keys()
  best = min(evals, key=evals.get)
  assert (tmp_path / "checkpoints" / str(best)).is_dir()
  model = vlatent_jax.load(str(tmp_path / "model"))
  assert model.meta["train"] == {"mode": "videolatent", "num_latents": 4, "step": 6, "curriculum": 0,
                                 "max_new_tokens": 4,  # tiny.py's data.max_answer_len
                                 "stop_early": False,  # eval / predict default to it
                                 "answer_sees_video": True}  # no latent.sensory_gating
  assert model.meta["frames"]["fps"] == 8 and model.config.latent is not None
  assert (tmp_path / "model" / "tokenizer_config.json").is_file()
  assert (tmp_path / "model" / "video_preprocessor_config.json").is_file()
  traces = [f for _, _, files in os.walk(tmp_path / "profile") for f in files]
  assert any(f.endswith(".xplane.pb") for f in traces), traces  # the profiler window of steps 2-3
  # The one-process export CLI writes the same model from the last checkpoint (step 6 is the latest).
  subprocess.run([sys.executable, "-m", "vlatent_jax.train.export", f"--workdir={tmp_path}", "--step=6",
                  f"--out={tmp_path / 'again'}"], check=True, cwd=ROOT, env={**os.environ, "JAX_PLATFORMS": "cpu"})
  _assert_same_params(tmp_path / "again", tmp_path / "model")


def test_sigterm_saves_and_exits_zero(shards, tmp_path):
  import signal
  import time
  proc = subprocess.Popen(_command(tmp_path, shards, 10_000, "--config.checkpoint.every_steps=1000"), cwd=ROOT,
                          env={**os.environ, "JAX_PLATFORMS": "cpu"})
  metrics = tmp_path / "metrics.jsonl"
  deadline = time.time() + 240
  while time.time() < deadline and not (metrics.is_file() and metrics.read_text().count("\n") >= 2):
    time.sleep(0.5)
  proc.send_signal(signal.SIGTERM)
  assert proc.wait(timeout=240) == 0
  last = _metrics(tmp_path)[-1]["step"]
  assert 2 <= last < 1000
  assert (tmp_path / "checkpoints" / str(last)).is_dir()  # the preempted step, not a multiple of every_steps


def test_non_finite_loss_stops_naming_the_step(shards, tmp_path):
  cmd = _command(tmp_path, shards, 6, "--config.checkpoint.every_steps=1", "--config.optim.learning_rate=1e30",
                 "--config.optim.warmup_steps=0")
  result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env={**os.environ, "JAX_PLATFORMS": "cpu"})
  assert result.returncode != 0
  assert "at step" in result.stderr, result.stderr[-2000:]
  bad = int(result.stderr.split("at step ")[1].split(";")[0])
  kept = sorted(int(p) for p in os.listdir(tmp_path / "checkpoints") if p.isdigit())
  assert kept and max(kept) == bad - 1  # the last good step's checkpoint, nothing after it
  assert not (tmp_path / "model").exists()


def test_checkpoint_restores_on_another_mesh(shards, tmp_path):
  """Resumed on a (2, 2, 2) mesh, in 2 micro-batches of 4 (each split over data x fsdp): the same losses as
  the straight run on fsdp=8 with the whole batch of 8."""
  eight = {"XLA_FLAGS": "--xla_force_host_platform_device_count=8"}
  fsdp = ("--config.mesh.data=1", "--config.mesh.fsdp=8", "--config.mesh.tensor=1", "--config.train.batch_size=8")
  straight = _train(tmp_path / "straight", shards, 6, *fsdp, env=eight)
  _train(tmp_path / "moved", shards, 3, *fsdp, env=eight)
  moved = _train(tmp_path / "moved", shards, 6, "--config.mesh.data=2", "--config.mesh.fsdp=2",
                 "--config.mesh.tensor=2", "--config.train.batch_size=8", "--config.train.grad_accum_steps=2",
                 env=eight)
  assert [r["step"] for r in moved] == [1, 2, 3, 4, 5, 6]
  for a, b in zip(moved[3:], straight[3:]):
    assert abs(a["loss"] - b["loss"]) <= 1e-5 * max(1.0, abs(b["loss"])), (a, b)


def test_two_processes_train_like_one_and_stop_together(shards, tmp_path):
  """Two processes of 4 devices equal one of 8; a SIGTERM to process 1 alone stops both at one step
  (jax's preemption sync point), where they save together and exit 0."""
  import signal
  import socket
  import time
  single = _train(tmp_path / "single", shards, 3, "--config.train.batch_size=8",
                  env={"XLA_FLAGS": "--xla_force_host_platform_device_count=8"})
  with socket.socket() as s:
    s.bind(("localhost", 0))
    port = s.getsockname()[1]
  workdir = tmp_path / "multi"
  procs = [subprocess.Popen(_command(workdir, shards, 10_000, "--config.train.batch_size=8"), cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env={**os.environ, "JAX_PLATFORMS": "cpu",
                                            "XLA_FLAGS": "--xla_force_host_platform_device_count=4",
                                            "VLATENT_COORDINATOR": f"localhost:{port}", "VLATENT_NUM_PROCESSES": "2",
                                            "VLATENT_PROCESS_ID": str(i)}) for i in range(2)]
  metrics = workdir / "metrics.jsonl"
  deadline = time.time() + 600
  while time.time() < deadline and not (metrics.is_file() and metrics.read_text().count("\n") >= 3):
    time.sleep(0.5)  # rows 1-3 arrive with the step-3 checkpoint
  procs[1].send_signal(signal.SIGTERM)
  outputs = [p.communicate(timeout=600)[0] for p in procs]
  assert [p.returncode for p in procs] == [0, 0], outputs[0][-3000:] + outputs[1][-3000:]
  assert "2 processes, 8 devices" in outputs[0] and "[train]" not in outputs[1]  # only process 0 logs
  multi = _metrics(workdir)
  stopped = multi[-1]["step"]
  assert [r["step"] for r in multi] == list(range(1, stopped + 1))  # one writer
  # Process 0 got no signal and stopped at process 1's step: both saved that step's checkpoint.
  assert f"preempted (SIGTERM) at step {stopped}: saved" in outputs[0]
  assert 3 < stopped < 10_000 and (workdir / "checkpoints" / str(stopped)).is_dir()
  for a, b in zip(multi[:3], single):
    assert abs(a["loss"] - b["loss"]) <= 1e-5 * max(1.0, abs(b["loss"])), (a, b)
  assert not (workdir / "model").exists()
  subprocess.run([sys.executable, "-m", "vlatent_jax.train.export", f"--workdir={workdir}", "--step=3"], check=True,
                 cwd=ROOT, env={**os.environ, "JAX_PLATFORMS": "cpu"})
  # Same parameters up to float summation order (Adam's normalised update amplifies it near zero gradients).
  _assert_same_params(workdir / "model", tmp_path / "single" / "model", rtol=1e-4)


def _assert_same_params(a, b, rtol=0.0):
  import numpy as np

  import vlatent_jax
  pa, pb = vlatent_jax.load(str(a)).state, vlatent_jax.load(str(b)).state
  for (path, x), y in zip(jax.tree_util.tree_leaves_with_path(pa), jax.tree.leaves(pb)):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=1e-5 if rtol else 0,
                               err_msg=jax.tree_util.keystr(path))
