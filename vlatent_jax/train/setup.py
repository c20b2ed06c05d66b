"""Build the model and the initial TrainState from an ExperimentConfig."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from vlatent_jax.config import ExperimentConfig
from vlatent_jax.models.config import ModelConfig
from vlatent_jax.models.vlm import VideoLM
from vlatent_jax.train.optim import learning_rate_schedule, make_optimizer
from vlatent_jax.train.step import TrainState


def build_model(config: ExperimentConfig, model_config: ModelConfig, seed: int, pretrained: dict | None = None):
  """Returns (graphdef, float32 params State, rest State).

  `pretrained`: a pure dict of parameters (e.g. from `checkpoint.load_params`); parameters it lacks
  (the LIM of a model loaded for latent training) keep their fresh initialisation.
  """
  dtype = jnp.dtype(config.model.dtype)
  param_dtype = jnp.dtype(config.model.param_dtype)
  model = VideoLM(model_config, rngs=nnx.Rngs(seed), dtype=dtype, param_dtype=param_dtype)
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)
  if pretrained is not None:
    fresh = nnx.to_pure_dict(params)
    merged = _overlay(fresh, pretrained, "")
    nnx.replace_by_pure_dict(params, jax.tree.map(lambda x, ref: jnp.asarray(x, ref.dtype), merged, fresh))
  return graphdef, params, rest


def _overlay(fresh: dict, loaded: dict, prefix: str) -> dict:
  out = {}
  for key, value in fresh.items():
    if key not in loaded:
      out[key] = value
    elif isinstance(value, dict):
      out[key] = _overlay(value, loaded[key], f"{prefix}{key}/")
    else:
      if tuple(loaded[key].shape) != tuple(value.shape):
        raise ValueError(f"pretrained parameter '{prefix}{key}' has shape {loaded[key].shape}, "
                         f"the model expects {value.shape}")
      out[key] = loaded[key]
  return out


def init_train_state(config: ExperimentConfig, params):
  """Optimizer (frozen parts get no state) and the step-0 TrainState."""
  tx = make_optimizer(config.optim, config.train.steps, params)
  schedule = learning_rate_schedule(config.optim, config.train.steps)
  return TrainState(jnp.zeros((), jnp.int32), params, tx.init(params)), tx, schedule
