"""LaViT teacher targets: written once beside the shards from a teacher's plain pass, paired with the examples
by the pipeline, and trained against (latent.align_target = teacher, latent.trajectory_weight)."""

import json
import os
import subprocess
import sys

import grain
import jax.numpy as jnp
import numpy as np
import pytest

from vlatent_jax.data import pipeline, prepare, records, synthetic
from vlatent_jax.inference import forward_hidden, load
from vlatent_jax.train import teacher
from vlatent_jax.train.batch import collate, normalize_vision

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
K = 3


def _train(workdir, data, steps, *extra):
  subprocess.run([sys.executable, "-m", "vlatent_jax.train", f"--config={ROOT}/configs/tiny.py",
                  f"--workdir={workdir}", f"--config.data.path={data}", f"--config.train.steps={steps}",
                  "--config.train.batch_size=4", "--config.checkpoint.every_steps=100",
                  "--config.train.eval_every_steps=0", f"--config.latent.num_latents={K}", *extra],
                 check=True, cwd=ROOT, env={**os.environ, "JAX_PLATFORMS": "cpu"})
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f]


@pytest.fixture(scope="module")
def written(tmp_path_factory):
  """Prepared shards of the embedded benchmark, a teacher (the tiny model after 2 steps) and its targets."""
  root = tmp_path_factory.mktemp("teacher")
  synthetic.generate(str(root / "raw"), seed=0, counts={"train": 10}, workers=1)
  prepare.prepare(prepare.parse_args([
      "--manifest", str(root / "raw" / "train.jsonl"), "--out", str(root / "train"), "--fps", "8",
      "--max-frames", "16", "--workers", "1", "--min-pixels", str(28 * 28), "--max-pixels", str(56 * 56),
      "--shard-size", "4"]))
  _train(root / "teacher_run", root / "train", 2, "--config.latent.mode=sft")
  spec = teacher.main(["--teacher", str(root / "teacher_run" / "model"), "--data", str(root / "train"),
                       "--num-latents", str(K), "--batch-size", "3"])
  return root, spec


def test_teacher_targets_pool_the_teachers_states_along_its_answer_attention(written):
  root, spec = written
  data = str(root / "train")
  assert spec["records"] == pipeline.dataset_size(data) == 10 and spec["num_latents"] == K
  assert not os.path.exists(os.path.join(data, "teacher.partial"))
  paired = pipeline.PairedSource(data)
  model = load(str(root / "teacher_run" / "model"))
  decode = pipeline.Decode(pipeline.processor_config(data))
  for index in (0, 5, 9):  # across shards of 4
    example = decode(index, paired[index])
    e = example.example
    traj, targets = e.teacher_trajectory, e.teacher_targets
    # One example alone, prompt only: causal attention makes its prompt states those of the prompt + answer pass.
    batch = normalize_vision(collate([e], model.config, num_latents=0, max_answer_len=16),
                             pipeline.processor_config(data))
    hidden = np.asarray(forward_hidden(model.module, {k: jnp.asarray(v) if isinstance(v, np.ndarray) else v
                                                      for k, v in batch.items()}))[0]
    video = batch["feature_index"][0] >= 0
    assert traj.shape == (K, video.sum()) and targets.shape == (K, model.config.llm.hidden_size)
    np.testing.assert_allclose(traj.sum(-1), 1.0, rtol=1e-5)
    # Step k covers segment k of the 8 temporal slices (4 video tokens each): slices [0,2), [2,5), [5,8).
    for k, (lo, hi) in enumerate([(0, 2), (2, 5), (5, 8)]):
      outside = np.ones(traj.shape[1], bool)
      outside[lo * 4:hi * 4] = False
      assert np.abs(traj[k, outside]).max() == 0.0 and (traj[k, ~outside] > 0).all()
    np.testing.assert_allclose(targets, traj @ hidden[video], rtol=2e-4, atol=2e-5)


def test_a_latent_model_trains_against_the_teacher(written):
  root, _ = written
  rows = _train(root / "student", root / "train", 2, "--config.latent.align_target=teacher",
                "--config.latent.trajectory_weight=1.0")
  assert all(np.isfinite(r["trajectory_loss"]) and np.isfinite(r["align_loss"]) for r in rows)
  assert rows[0]["trajectory_loss"] > 0.1  # the untrained LIM spreads over all the video, the teacher does not


def test_missing_or_mismatched_teacher_records_fail_naming_them(written, tmp_path):
  root, _ = written
  with pytest.raises(FileNotFoundError, match="python -m vlatent_jax.train.teacher"):
    pipeline.teacher_shard_paths(str(tmp_path))
  data = str(root / "train")
  source = grain.sources.ArrayRecordDataSource(pipeline.shard_paths(data))
  decode = pipeline.Decode(pipeline.processor_config(data))
  stray = records.encode_teacher(np.zeros((K, 4)), np.zeros((K, 32)), "someone else")
  with pytest.raises(ValueError, match="someone else"):
    decode(0, (source[0], stray))
  example = decode(0, (source[0], records.encode_teacher(np.zeros((K, 4)), np.zeros((K, 7)), decode(0, source[0]).id)))
  model = load(str(root / "teacher_run" / "model"))
  with pytest.raises(ValueError, match="teacher trajectory"):
    collate([example.example], model.config, num_latents=K, max_answer_len=16)
