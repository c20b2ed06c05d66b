"""A run's default data: with no `data.path`, the embedded benchmark generated and prepared under W/data.

The training loop takes prepared shards only; the CLIs (`python -m vlatent_jax.train`, `train.export`) call
this first, so `python -m vlatent_jax.train --config configs/tiny.py --workdir W` trains on the embedded
benchmark with no other argument.
"""

from __future__ import annotations

import dataclasses
import os

import jax
from jax.experimental import multihost_utils

from vlatent_jax.config import ConfigError, ExperimentConfig
from vlatent_jax.data import embedded
from vlatent_jax.train.checkpoints import is_uri


def with_embedded_data(config: ExperimentConfig, workdir: str) -> ExperimentConfig:
  """`data.path` / `data.val_path` set to the embedded benchmark's shards under W/data when `data.path` is empty."""
  if config.data.path:
    return config
  if is_uri(workdir):  # the benchmark is generated with local tools (video encoding, numpy files)
    raise ConfigError(f"config key 'data.path': the embedded benchmark is generated on a local disk, not under "
                      f"{workdir}; prepare shards locally and set data.path (and data.val_path)")
  root = os.path.join(os.path.abspath(workdir), "data")
  bench = embedded.ensure(root) if jax.process_index() == 0 else None  # process 0 writes, the others wait
  multihost_utils.sync_global_devices("embedded benchmark ready")
  bench = bench or embedded.ensure(root)  # the others only read what process 0 wrote
  return dataclasses.replace(config, data=dataclasses.replace(config.data, path=bench.train, val_path=bench.val))
