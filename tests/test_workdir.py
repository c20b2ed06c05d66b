"""Run directories: gs:// URIs stay URIs, local paths become absolute; metrics reach a gs:// workdir (no network:
path resolution, and epath's backend pointed at a local folder)."""

import json
import os

import jax.numpy as jnp
import pytest
from etils import epath
from etils.epath import testing as _  # noqa: F401  (epath.testing)

from vlatent_jax.config import ConfigError, parse
from vlatent_jax.train.checkpoints import TrainCheckpointer, resolve_path
from vlatent_jax.train.embedded_data import with_embedded_data
from vlatent_jax.train.loop import data_paths
from vlatent_jax.train.observe import MetricsWriter


def test_gs_workdir_stays_a_gs_path():
  path = resolve_path("gs://bucket/run")
  assert os.fspath(path) == "gs://bucket/run"
  assert os.fspath(path / "checkpoints") == "gs://bucket/run/checkpoints"
  assert os.fspath(resolve_path(path)) == "gs://bucket/run"  # resolving twice changes nothing


def test_relative_workdir_becomes_absolute(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  path = resolve_path(os.path.join("runs", "a"))
  assert path.is_absolute() and os.fspath(path) == str(tmp_path / "runs" / "a")
  # The checkpointer writes a relative directory under the working directory, as before.
  checkpointer = TrainCheckpointer("ckpt", every_steps=1, keep=1)
  assert checkpointer.save(1, {"x": jnp.arange(3.0)})
  checkpointer.close()
  assert (tmp_path / "ckpt" / "1").is_dir()


def test_embedded_benchmark_under_a_gs_workdir_names_data_path():
  with pytest.raises(ConfigError, match=r"data\.path.*local disk"):
    with_embedded_data(parse({}), "gs://bucket/run")


def test_the_loop_takes_prepared_shards_only():
  with pytest.raises(ConfigError, match=r"data\.path.*no prepared shards"):
    data_paths(parse({}))


@pytest.fixture
def fake_gcs(tmp_path):
  """gs://bucket/... served from tmp_path/gcs/bucket/... through epath's backend (there is no network)."""
  root = tmp_path / "gcs"

  def local(path):
    text = os.fspath(path)
    return str(root / text[len("gs://"):]) if text.startswith("gs://") else text

  def one(fn, path, *args, **kwargs):
    return fn(local(path), *args, **kwargs)

  def two(fn, path, dst, *args, **kwargs):
    return fn(local(path), local(dst), *args, **kwargs)

  def listed(fn, path):
    return [p.replace(str(root) + "/", "gs://", 1) for p in fn(local(path))]

  fns = {name: one for name in ("exists", "isdir", "listdir", "makedirs", "mkdir", "open", "remove", "rmtree",
                                "stat")}
  with epath.testing.mock_epath(**fns, copy=two, rename=two, replace=two, glob=listed):
    yield root


def _rows(path):
  return [json.loads(line) for line in open(path)]


def test_metrics_and_tensorboard_reach_a_gs_workdir_and_a_resumed_run_appends(fake_gcs):
  """The metrics of a gs:// workdir land in the bucket, not in a local 'gs:' folder, after every fetch; a
  resumed run keeps the earlier rows and adds a second TensorBoard event file."""
  writer = MetricsWriter("gs://bucket/run", total_steps=4, global_batch=2, log_every_steps=1)
  writer.write([(1, {"loss": 1.5}), (2, {"loss": 1.25})])
  assert [r["loss"] for r in _rows(fake_gcs / "bucket/run/metrics.jsonl")] == [1.5, 1.25]  # before close
  writer.close()
  assert not os.path.exists("gs:")
  writer = MetricsWriter("gs://bucket/run", total_steps=4, global_batch=2, log_every_steps=1, start_step=2)
  writer.write([(3, {"loss": 0.75})])
  writer.close()
  assert [(r["step"], r["loss"]) for r in _rows(fake_gcs / "bucket/run/metrics.jsonl")] == [
      (1, 1.5), (2, 1.25), (3, 0.75)]
  events = sorted((fake_gcs / "bucket/run/tensorboard").iterdir())
  assert len(events) == 2 and all(e.name.startswith("events.out.tfevents") and e.stat().st_size > 0
                                  for e in events)


def test_export_from_a_gs_workdir_needs_a_local_out():
  from vlatent_jax.train import export
  with pytest.raises(SystemExit):
    export.main(["--workdir", "gs://bucket/run"])
  assert not os.path.exists("gs:")
