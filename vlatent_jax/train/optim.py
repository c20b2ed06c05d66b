"""AdamW with linear warmup + cosine decay, global-norm clipping, per-part learning rates, and frozen parts
without optimizer state."""

from __future__ import annotations

import jax
import optax

from vlatent_jax.config import OptimConfig
from vlatent_jax.sharding import path_string


def is_frozen(path: str, frozen_prefixes: tuple[str, ...]) -> bool:
  return any(path == p or path.startswith(p.rstrip("/") + "/") for p in frozen_prefixes)


def param_labels(params, frozen_prefixes: tuple[str, ...], lr_scale: dict[str, float] | None = None):
  """'frozen', a part of `lr_scale` (its longest matching prefix) or 'trainable' for every parameter, by path
  prefix (config, not code branches)."""
  parts = sorted(lr_scale or {}, key=len, reverse=True)

  def label(path, _):
    path = path_string(path)
    if is_frozen(path, frozen_prefixes):
      return "frozen"
    return next((p for p in parts if is_frozen(path, (p,))), "trainable")
  return jax.tree_util.tree_map_with_path(label, params)


def learning_rate_schedule(config: OptimConfig, total_steps: int) -> optax.Schedule:
  return optax.warmup_cosine_decay_schedule(
      init_value=0.0, peak_value=config.learning_rate, warmup_steps=config.warmup_steps,
      decay_steps=max(total_steps, config.warmup_steps + 1),
      end_value=config.learning_rate * config.end_learning_rate_ratio)


def make_optimizer(config: OptimConfig, total_steps: int, params) -> optax.GradientTransformation:
  """Frozen parameters get `set_to_zero`: no Adam moments are allocated for them. The gradient is clipped
  by its global norm over every part before the parts' AdamW updates (scaled by `optim.lr_scale`)."""
  schedule = learning_rate_schedule(config, total_steps)

  def adamw(scale: float):
    lr = schedule if scale == 1.0 else (lambda step: scale * schedule(step))
    return optax.adamw(lr, b1=config.b1, b2=config.b2, weight_decay=config.weight_decay)
  parts = {"trainable": adamw(1.0), "frozen": optax.set_to_zero(),
           **{part: adamw(float(scale)) for part, scale in config.lr_scale.items()}}
  return optax.chain(optax.clip_by_global_norm(config.clip_norm),
                     optax.multi_transform(parts, param_labels(params, config.frozen, config.lr_scale)))
