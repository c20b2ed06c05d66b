"""Run directories: gs:// URIs stay URIs, local paths become absolute (no network: path resolution only)."""

import os

import jax.numpy as jnp
import pytest

from vlatent_jax.config import ConfigError, parse
from vlatent_jax.train.checkpoints import TrainCheckpointer, resolve_path
from vlatent_jax.train.embedded_data import with_embedded_data
from vlatent_jax.train.loop import data_paths


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
