"""The train step: a free, pure function of (state, batch, rng) -> (state, metrics).

Model structure, config and optimizer are bound with `functools.partial` by
`make_train_step`, which returns the step jitted once with the state donated.
Parameters are float32 master weights; the forward pass runs in the compute
dtype of `model.dtype` (cast inside the loss, so gradients land in float32).
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from vlatent_jax import losses, sharding, targets
from vlatent_jax.config import ExperimentConfig, LatentConfig
from vlatent_jax.rollout import self_forcing_rollout
from vlatent_jax.train.optim import is_frozen


class TrainState(NamedTuple):
  step: jax.Array
  params: Any     # nnx.State of nnx.Param, float32 master weights
  opt_state: Any


def compute_losses(module, batch: dict[str, Any], latent: LatentConfig,
                   diagnostics: bool = False) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Rollout + L = L_ans + lambda_align L_align + lambda_div L_div, with per-term metrics.

  `diagnostics` (validation) adds `video_attention`: the mean attention mass that the queries predicting
  answer tokens put on the video tokens (mean over layers and heads); near 0 means answers ignore the video.
  """
  k = latent.steps
  out = self_forcing_rollout(module, batch, num_latents=k, use_lim=latent.use_lim,
                             grad_steps=None if latent.grad_steps < 0 else latent.grad_steps,
                             attention_to_video=diagnostics)
  target_mask = batch["target_mask"]
  if k and not latent.end_token_loss:
    target_mask = target_mask.at[:, 0].set(0.0)
  l_ans = losses.answer_loss(out.logits, batch["targets"], target_mask)
  metrics = {"answer_loss": l_ans}
  if diagnostics:
    answer_tokens = batch["target_mask"].at[:, 0].set(0.0) if k else batch["target_mask"]  # not <|latent_end|>
    metrics["video_attention"] = jnp.sum(out.video_attention * answer_tokens) / jnp.maximum(jnp.sum(answer_tokens), 1)
  total = l_ans
  if k:
    latent_mask = batch.get("latent_mask", jnp.ones(out.latents.shape[:2], bool)).astype(jnp.float32)
    if latent.effective_align_weight > 0:
      weights = batch["align_weights"]
      if latent.align_target == "teacher":
        goal = jax.lax.stop_gradient(batch["teacher_targets"].astype(jnp.float32))
      else:
        if latent.align_target == "attention_pool":
          weights = targets.attention_weighted(weights, targets.answer_attention(module, batch, out.prompt_embeds))
        goal = targets.pooled_targets(weights, out.prompt_embeds)
      has_target = (jnp.sum(weights, axis=-1) > 0).astype(jnp.float32) * latent_mask
      pred = module.latent.align_proj(out.latents)
      align_fn = losses.latent_alignment_loss if latent.align_loss == "cosine" else losses.latent_alignment_mse_loss
      l_align = align_fn(pred, goal, has_target)
      metrics["align_loss"] = l_align
      total = total + latent.effective_align_weight * l_align
    if latent.effective_diversity_weight > 0:
      if latent.diversity_loss == "gram":
        l_div = losses.latent_diversity_loss(out.latents, latent_mask)
      else:
        l_div = losses.latent_diversity_hinge_loss(out.latents, latent_mask, latent.diversity_margin)
      metrics["diversity_loss"] = l_div
      total = total + latent.effective_diversity_weight * l_div
    metrics["latent_cosine"] = losses.mean_pairwise_cosine(out.latents, latent_mask)
    metrics["latent_norm"] = jnp.mean(jnp.linalg.norm(out.latents.astype(jnp.float32), axis=-1))
    if module.latent is not None:
      metrics["lim_gate"] = module.latent.gate[0].astype(jnp.float32)
  metrics["loss"] = total
  return total, metrics


def _compute_params(params, frozen: tuple[str, ...], dtype):
  """Cast to the compute dtype; frozen parameters are cut from the backward pass."""
  def cast(path, p):
    p = p.astype(dtype)
    return jax.lax.stop_gradient(p) if is_frozen(sharding.path_string(path), frozen) else p
  return jax.tree_util.tree_map_with_path(cast, params)


def train_step(state: TrainState, batch: dict[str, Any], rng: jax.Array, *, graphdef, rest,
               config: ExperimentConfig, tx: optax.GradientTransformation,
               schedule: optax.Schedule) -> tuple[TrainState, dict[str, jax.Array]]:
  del rng  # no stochastic layers yet; kept in the signature so dropout or sampling can be added purely
  dtype = jnp.dtype(config.model.dtype)

  def loss_fn(params):
    compute = sharding.gather_params(_compute_params(params, config.optim.frozen, dtype))  # FSDP all-gather
    return compute_losses(nnx.merge(graphdef, compute, rest), batch, config.latent)

  (_, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  metrics = dict(metrics, grad_norm=optax.tree.norm(grads), learning_rate=schedule(state.step))
  return TrainState(state.step + 1, params, opt_state), metrics


def make_train_step(graphdef, rest, config: ExperimentConfig, tx, schedule, *, in_shardings=None,
                    out_shardings=None, mesh=None):
  """Binds the static parts and jits once, donating the state.

  With a `mesh`, the step is traced under it so the model's `sharding.constrain` calls apply; pass
  `in_shardings=(state_shardings, batch_shardings, replicated)`, `out_shardings=(state_shardings, replicated)`.
  """
  bound = functools.partial(train_step, graphdef=graphdef, rest=rest, config=config, tx=tx, schedule=schedule)

  def step(state, batch, rng):
    with sharding.mesh_context(mesh):  # a no-op context without a mesh
      return bound(state, batch, rng)

  if in_shardings is None:
    return jax.jit(step, donate_argnums=(0,))
  return jax.jit(step, donate_argnums=(0,), in_shardings=in_shardings, out_shardings=out_shardings)


def eval_step(params, batch: dict[str, Any], *, graphdef, rest, config: ExperimentConfig) -> dict[str, jax.Array]:
  """The training losses on a held-out batch (no gradients, no update), with the diagnostics."""
  compute = sharding.gather_params(_compute_params(params, (), jnp.dtype(config.model.dtype)))
  _, metrics = compute_losses(nnx.merge(graphdef, compute, rest), batch, config.latent, diagnostics=True)
  return metrics


def make_eval_step(graphdef, rest, config: ExperimentConfig, *, in_shardings=None, out_shardings=None, mesh=None):
  bound = functools.partial(eval_step, graphdef=graphdef, rest=rest, config=config)

  def step(params, batch):
    with sharding.mesh_context(mesh):
      return bound(params, batch)

  if in_shardings is None:
    return jax.jit(step)
  return jax.jit(step, in_shardings=in_shardings, out_shardings=out_shardings)
