"""Build the model and the initial TrainState from an ExperimentConfig."""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from vlatent_jax import sharding
from vlatent_jax.config import ConfigError, ExperimentConfig, model_config
from vlatent_jax.models.config import ModelConfig
from vlatent_jax.models.stacking import stack_layers, unstack_layers
from vlatent_jax.models.vlm import VideoLM
from vlatent_jax.train.optim import learning_rate_schedule, make_optimizer
from vlatent_jax.train.step import TrainState


def load_pretrained(config: ExperimentConfig):
  """`model.init_from` (HF dir or vlatent_jax checkpoint) prepared for `latent.mode`.

  Returns (ModelConfig, pure params dict, tokenizer or None). For latent modes the
  latent tokens are added to the tokenizer and embedding table (`model.add_latent_tokens`),
  and the latent injection module is added to the architecture (initialised in build_model).
  """
  from vlatent_jax.checkpoint import load_params
  from vlatent_jax.latent_tokens import add_latent_tokens

  base, params, meta = load_params(config.model.init_from)
  tokenizer = None
  tokenizer_dir = meta.get("source_dir") or config.model.init_from
  if os.path.isfile(os.path.join(tokenizer_dir, "tokenizer_config.json")):
    from transformers import AutoTokenizer
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
  if config.latent.steps and base.latent_start_token_id is None:
    if not config.model.add_latent_tokens or tokenizer is None:
      raise ConfigError(f"config key 'latent.mode': {config.latent.mode!r} needs <|latent_start|>/<|latent_end|>, "
                        f"which '{config.model.init_from}' lacks (set model.add_latent_tokens=True and provide "
                        "tokenizer files)")
    base, params = add_latent_tokens(base, params, tokenizer)
  return model_config(config.model, config.latent, base), params, tokenizer


def build_model(config: ExperimentConfig, model_config: ModelConfig, seed: int, pretrained: dict | None = None):
  """Returns (graphdef, float32 params State, rest State).

  `pretrained`: a pure dict of parameters (e.g. from `checkpoint.load_params`); parameters it lacks
  (the LIM of a model loaded for latent training) keep their fresh initialisation.
  """
  graphdef, params, rest = nnx.split(_new_model(config, model_config, seed), nnx.Param, ...)
  if pretrained is not None:
    pretrained = model_layout(config, pretrained)
    fresh = nnx.to_pure_dict(params)
    merged = _overlay(fresh, pretrained, "")
    nnx.replace_by_pure_dict(params, jax.tree.map(lambda x, ref: jnp.asarray(x, ref.dtype), merged, fresh))
  return graphdef, params, rest


def _new_model(config: ExperimentConfig, model_config: ModelConfig, seed: int) -> VideoLM:
  return VideoLM(model_config, rngs=nnx.Rngs(seed), dtype=jnp.dtype(config.model.dtype),
                 param_dtype=jnp.dtype(config.model.param_dtype), execution=config.model.execution)


def model_layout(config: ExperimentConfig, params: dict) -> dict:
  """Per-layer parameters (checkpoints, HF conversion) in the layout the configured model holds."""
  return stack_layers(params) if config.model.scan_layers else unstack_layers(params)


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


def init_sharded_train_state(config: ExperimentConfig, model_config: ModelConfig, mesh, seed: int,
                             pretrained: dict | None = None, rules=sharding.DEFAULT_RULES):
  """The step-0 TrainState created already sharded on `mesh`: never materialised on one device.

  Shapes come from `eval_shape`, shardings from the logical axis rules (the optimizer state's follow
  its parameter's path), then `jit(init, out_shardings=...)`. `pretrained` leaves are copied from host
  straight into their shards. Returns (graphdef, rest, state, tx, schedule, state_shardings).
  """
  graphdef, abstract_params, abstract_rest = nnx.split(
      nnx.eval_shape(lambda: _new_model(config, model_config, seed)), nnx.Param, ...)
  tx = make_optimizer(config.optim, config.train.steps, abstract_params)
  schedule = learning_rate_schedule(config.optim, config.train.steps)

  def init_state(params):
    return TrainState(jnp.zeros((), jnp.int32), params, tx.init(params))

  state_shardings = sharding.param_shardings(jax.eval_shape(init_state, abstract_params), mesh, rules)
  rest_shardings = jax.tree.map(lambda _: sharding.replicated(mesh), abstract_rest)
  if pretrained is None:  # one program: fresh parameters and optimizer state
    def init():
      _, params, rest = build_model(config, model_config, seed)
      return init_state(params), rest

    state, rest = jax.jit(init, out_shardings=(state_shardings, rest_shardings))()
    return graphdef, rest, state, tx, schedule, state_shardings
  params, rest = jax.jit(lambda: build_model(config, model_config, seed)[1:],
                         out_shardings=(state_shardings.params, rest_shardings))()
  fresh = nnx.to_pure_dict(params)
  pretrained = model_layout(config, pretrained)
  placed = jax.tree.map(lambda x, ref, s: ref if x is ref else jax.device_put(np.asarray(x).astype(ref.dtype), s),
                        _overlay(fresh, pretrained, ""), fresh, nnx.to_pure_dict(state_shardings.params))
  nnx.replace_by_pure_dict(params, placed)
  state = jax.jit(init_state, out_shardings=state_shardings, donate_argnums=0)(params)
  return graphdef, rest, state, tx, schedule, state_shardings
