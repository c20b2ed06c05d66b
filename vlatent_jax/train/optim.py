"""AdamW with linear warmup + cosine decay, global-norm clipping, and frozen parts without optimizer state."""

from __future__ import annotations

import jax
import optax

from vlatent_jax.config import OptimConfig


def path_string(path) -> str:
  """A pytree key path as our slash path, e.g. 'llm/layers/0/mlp/up_proj/kernel'."""
  return "/".join(str(getattr(k, "key", getattr(k, "idx", getattr(k, "name", k)))) for k in path)


def is_frozen(path: str, frozen_prefixes: tuple[str, ...]) -> bool:
  return any(path == p or path.startswith(p.rstrip("/") + "/") for p in frozen_prefixes)


def param_labels(params, frozen_prefixes: tuple[str, ...]):
  """'frozen' / 'trainable' for every parameter, by path prefix (config, not code branches)."""
  return jax.tree_util.tree_map_with_path(
      lambda path, _: "frozen" if is_frozen(path_string(path), frozen_prefixes) else "trainable", params)


def learning_rate_schedule(config: OptimConfig, total_steps: int) -> optax.Schedule:
  return optax.warmup_cosine_decay_schedule(
      init_value=0.0, peak_value=config.learning_rate, warmup_steps=config.warmup_steps,
      decay_steps=max(total_steps, config.warmup_steps + 1),
      end_value=config.learning_rate * config.end_learning_rate_ratio)


def make_optimizer(config: OptimConfig, total_steps: int, params) -> optax.GradientTransformation:
  """Frozen parameters get `set_to_zero`: no Adam moments are allocated for them."""
  adamw = optax.chain(
      optax.clip_by_global_norm(config.clip_norm),
      optax.adamw(learning_rate_schedule(config, total_steps), b1=config.b1, b2=config.b2,
                  weight_decay=config.weight_decay))
  return optax.multi_transform({"trainable": adamw, "frozen": optax.set_to_zero()},
                               param_labels(params, config.frozen))
