"""The train step: a free, pure function of (state, batch, rng) -> (state, metrics).

Model structure, config and optimizer are bound with `functools.partial` by
`make_train_step`, which returns the step jitted once with the state donated.
Parameters are float32 master weights; the forward pass runs in the compute
dtype of `model.dtype` (cast inside the loss, so gradients land in float32).

With `train.grad_accum_steps` M > 1 the batch is cut into M micro-batches and a
`lax.scan` sums their gradients before one optimizer update. Each loss term is a
mean over its own valid items (answer tokens, latents with targets, ...), so each
micro-batch's term is weighted by its share of the batch's items: the sum equals
the whole batch's mean however the padding falls.
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


def compute_losses(module, batch: dict[str, Any], latent: LatentConfig, diagnostics: bool = False,
                   shares: dict[str, jax.Array] | None = None) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Rollout + L = L_ans + lambda_align L_align + lambda_div L_div, with per-term metrics.

  `diagnostics` (validation) adds `video_attention`: the mean attention mass that the queries predicting
  answer tokens put on the video tokens (mean over layers and heads); near 0 means answers ignore the video.
  `shares` (gradient accumulation, see `term_counts`): each term of the total (and `loss`) is multiplied by
  this micro-batch's share of the whole batch's items of that term; the other metrics stay micro-batch means.
  """
  share = (lambda name: 1.0) if shares is None else (lambda name: shares[name])  # noqa: E731
  k = latent.steps
  sees = batch.get("answer_sees_video")  # drawn by the train step; validation answers as inference does
  if latent.sensory_gating and sees is None:
    sees = jnp.zeros(batch["targets"].shape[:1], bool)
  out = self_forcing_rollout(module, batch, num_latents=k, use_lim=latent.use_lim,
                             grad_steps=None if latent.grad_steps < 0 else latent.grad_steps,
                             attention_to_video=diagnostics, answer_sees_video=sees,
                             lim_attention=latent.effective_trajectory_weight > 0)
  l_ans = losses.answer_loss(out.logits, batch["targets"], _answer_mask(batch, latent))
  metrics = {"answer_loss": l_ans}
  if diagnostics:
    answer_tokens = batch["target_mask"].at[:, 0].set(0.0) if k else batch["target_mask"]  # not <|latent_end|>
    metrics["video_attention"] = jnp.sum(out.video_attention * answer_tokens) / jnp.maximum(jnp.sum(answer_tokens), 1)
  total = share("answer_loss") * l_ans
  if k:
    latent_mask = _latent_mask(batch, k)
    if latent.effective_align_weight > 0:
      weights = batch["align_weights"]
      if latent.align_target == "teacher":
        goal = jax.lax.stop_gradient(batch["teacher_targets"].astype(jnp.float32))
        if goal.shape[-1] != out.latents.shape[-1]:
          raise ValueError(f"teacher targets of width {goal.shape[-1]}, but latent alignment predicts the "
                           f"model's width {out.latents.shape[-1]}: use a teacher of the same hidden size")
      else:
        if latent.align_target == "attention_pool":
          weights = targets.attention_weighted(weights, targets.answer_attention(module, batch, out.prompt_embeds))
        goal = targets.pooled_targets(weights, out.prompt_embeds)
      has_target = _align_mask(batch, latent_mask)
      pred = module.latent.align_proj(out.latents)
      align_fn = losses.latent_alignment_loss if latent.align_loss == "cosine" else losses.latent_alignment_mse_loss
      l_align = align_fn(pred, goal, has_target)
      metrics["align_loss"] = l_align
      total = total + latent.effective_align_weight * share("align_loss") * l_align
    if latent.effective_trajectory_weight > 0:
      l_traj = losses.trajectory_kl_loss(out.lim_attention, jax.lax.stop_gradient(batch["teacher_trajectory"]),
                                         _trajectory_mask(batch, latent_mask))
      metrics["trajectory_loss"] = l_traj
      total = total + latent.effective_trajectory_weight * share("trajectory_loss") * l_traj
    if latent.effective_diversity_weight > 0:
      if latent.diversity_loss == "gram":
        l_div = losses.latent_diversity_loss(out.latents, latent_mask)
      else:
        l_div = losses.latent_diversity_hinge_loss(out.latents, latent_mask, latent.diversity_margin)
      metrics["diversity_loss"] = l_div
      total = total + latent.effective_diversity_weight * share("diversity_loss") * l_div
    metrics["latent_cosine"] = losses.mean_pairwise_cosine(out.latents, latent_mask)
    metrics["latent_norm"] = jnp.mean(jnp.linalg.norm(out.latents.astype(jnp.float32), axis=-1))
    if module.latent is not None:
      metrics["lim_gate"] = module.latent.gate[0].astype(jnp.float32)
  metrics["loss"] = total
  return total, metrics


def _answer_mask(batch, latent: LatentConfig) -> jax.Array:
  """[B, T] the answer targets L_ans averages over (<|latent_end|> left out unless `latent.end_token_loss`)."""
  mask = batch["target_mask"]
  return mask.at[:, 0].set(0.0) if latent.steps and not latent.end_token_loss else mask


def _latent_mask(batch, k: int) -> jax.Array:
  """[B, K] float: the latent steps each example takes (all K without a `latent_mask`)."""
  mask = batch.get("latent_mask")
  return (jnp.ones((batch["target_mask"].shape[0], k)) if mask is None else mask).astype(jnp.float32)


def _align_mask(batch, latent_mask: jax.Array) -> jax.Array:
  """[B, K] latents with an alignment target, read from the batch's pooling weights: the attention_pool
  reweighting (`targets.attention_weighted`) renormalises a segment's weights and keeps them where it would
  zero them, so it never changes which latents have a target (and `term_counts` can count them up front)."""
  return (jnp.sum(batch["align_weights"], axis=-1) > 0).astype(jnp.float32) * latent_mask


def _trajectory_mask(batch, latent_mask: jax.Array) -> jax.Array:
  """[B, K] latents whose teacher trajectory has mass (an example without video has none)."""
  return (jnp.sum(batch["teacher_trajectory"], axis=-1) > 0).astype(jnp.float32) * latent_mask


def term_counts(batch, latent: LatentConfig) -> dict[str, jax.Array]:
  """Per example [B]: how many items each mean of `compute_losses` takes from it (answer tokens, latents
  with a target, examples with latents or latent pairs). Metrics not named here are plain means."""
  counts = {"answer_loss": jnp.sum(_answer_mask(batch, latent), axis=-1)}
  if latent.steps:
    mask = _latent_mask(batch, latent.steps)
    per_example = jnp.sum(mask, axis=-1)
    pairs = per_example * (per_example - 1.0)  # distinct ordered pairs: the off-diagonal of the Gram matrix
    counts["align_loss"] = jnp.sum(_align_mask(batch, mask), axis=-1)
    counts["diversity_loss"] = (per_example > 0).astype(jnp.float32) if latent.diversity_loss == "gram" else pairs
    counts["latent_cosine"] = pairs
    if latent.effective_trajectory_weight > 0:
      counts["trajectory_loss"] = jnp.sum(_trajectory_mask(batch, mask), axis=-1)
  return counts


def split_microbatches(tree, steps: int):
  """[B, ...] -> [M, B/M, ...] along each key's batch dim (BATCH_AXES; position_ids [3, B, T] ->
  [M, 3, B/M, T]). Micro-batch m takes examples m, m + M, m + 2M, ...: the batch is laid out in contiguous
  blocks, one per device, so a strided micro-batch keeps a share of every block and stays sharded over all
  devices with no data movement (a contiguous one would sit on 1/M of them)."""
  def one(path, x):
    axis = sharding.logical_axes(sharding.path_string(path), sharding.BATCH_AXES).index("batch")
    x = x.reshape(x.shape[:axis] + (x.shape[axis] // steps, steps) + x.shape[axis + 1:])
    return sharding.constrain(jnp.moveaxis(x, axis + 1, 0), (None,) * (axis + 1) + ("batch",))
  return jax.tree_util.tree_map_with_path(one, tree)


def _compute_params(params, frozen: tuple[str, ...], dtype):
  """Cast to the compute dtype; frozen parameters are cut from the backward pass. (Casting stacked layers one
  at a time inside their scan instead measured 10 GiB more for the 3B step: bench/mfu.py --memory-only.)"""
  def cast(path, p):
    p = p.astype(dtype)
    return jax.lax.stop_gradient(p) if is_frozen(sharding.path_string(path), frozen) else p
  return jax.tree_util.tree_map_with_path(cast, params)


def gated_share(step: jax.Array, total_steps: int, start: float, end: float) -> jax.Array:
  """Share of examples whose answer tokens may not attend to the video at `step` (`latent.sensory_gating`):
  0 before `start` * total_steps, rising linearly to 1 at `end` * total_steps, 1 after."""
  progress = step / max(total_steps, 1)
  if end <= start:
    return (progress >= start).astype(jnp.float32)
  return jnp.clip((progress - start) / (end - start), 0.0, 1.0)


def train_step(state: TrainState, batch: dict[str, Any], rng: jax.Array, *, graphdef, rest,
               config: ExperimentConfig, tx: optax.GradientTransformation, schedule: optax.Schedule,
               grad_shardings=None) -> tuple[TrainState, dict[str, jax.Array]]:
  dtype = jnp.dtype(config.model.dtype)
  if config.latent.sensory_gating:
    share = gated_share(state.step, config.train.steps, *config.latent.sensory_gating)
    # Per example and step (the step folded into the run's key, so a resumed run draws the same examples).
    draw = jax.random.uniform(jax.random.fold_in(rng, state.step), batch["targets"].shape[:1])
    batch = {**batch, "answer_sees_video": draw >= share}

  def loss_fn(params, batch, shares):
    # With accumulation this runs once per micro-batch, all-gathering again each time: holding the gathered
    # weights across the scan would cost the memory FSDP saves.
    compute = sharding.gather_params(_compute_params(params, config.optim.frozen, dtype))  # FSDP all-gather
    return compute_losses(nnx.merge(graphdef, compute, rest), batch, config.latent, shares=shares)

  grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
  steps = config.train.grad_accum_steps
  if steps == 1:
    (_, metrics), grads = grad_fn(state.params, batch, None)
  else:
    # Shares sum to 1 over the micro-batches; counts are of masks, so they carry no gradient.
    counts = {k: jnp.sum(v, axis=1) for k, v in split_microbatches(term_counts(batch, config.latent), steps).items()}
    shares = {k: c / jnp.maximum(jnp.sum(c), 1.0) for k, c in counts.items()}
    constrain = (lambda g: g) if grad_shardings is None else (  # noqa: E731
        lambda g: jax.lax.with_sharding_constraint(g, grad_shardings))  # the sum stays sharded like the params

    def micro(total, xs):
      (_, metrics), grads = grad_fn(state.params, *xs)
      return constrain(jax.tree.map(lambda t, g: t + g.astype(jnp.float32), total, grads)), metrics

    zeros = jax.tree.map(lambda p: jnp.zeros(p.shape, jnp.float32), state.params)  # float32 sums for any param_dtype
    grads, per_step = jax.lax.scan(micro, constrain(zeros), (split_microbatches(batch, steps), shares))
    grads = jax.tree.map(lambda g, p: g.astype(p.dtype), grads, state.params)
    # `loss` came out already weighted by the shares; the other metrics are micro-batch means.
    metrics = {k: jnp.sum(v) if k == "loss" else jnp.sum(v * shares[k]) if k in shares else jnp.mean(v)
               for k, v in per_step.items()}
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
  bound = functools.partial(train_step, graphdef=graphdef, rest=rest, config=config, tx=tx, schedule=schedule,
                            grad_shardings=None if in_shardings is None else in_shardings[0].params)

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
