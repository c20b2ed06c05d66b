"""Latent self-forcing losses: pure functions of arrays, no module state.

    L = L_ans + lambda_align * L_align + lambda_div * L_div

Shapes: B batch, T answer length, V vocab, K latent steps, D width.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

_EPS = 1e-8


def _masked_mean(values: jax.Array, mask: jax.Array) -> jax.Array:
  mask = mask.astype(jnp.float32)
  return jnp.sum(values * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def _normalize(x: jax.Array) -> jax.Array:
  x = x.astype(jnp.float32)
  return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), _EPS)


def answer_loss(logits: jax.Array, targets: jax.Array, mask: jax.Array) -> jax.Array:
  """Mean token cross-entropy over `mask`. logits [B,T,V], targets [B,T] int, mask [B,T]."""
  ce = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), targets)
  return _masked_mean(ce, mask)


def latent_alignment_loss(pred: jax.Array, target: jax.Array, mask: jax.Array) -> jax.Array:
  """Mean over masked latents of 1 - cos(pred, target). pred/target [B,K,D], mask [B,K]."""
  cos = jnp.sum(_normalize(pred) * _normalize(target), axis=-1)
  return _masked_mean(1.0 - cos, mask)


def latent_alignment_mse_loss(pred: jax.Array, target: jax.Array, mask: jax.Array) -> jax.Array:
  """Mean over masked latents of the mean squared error across D."""
  err = jnp.mean(jnp.square(pred.astype(jnp.float32) - target.astype(jnp.float32)), axis=-1)
  return _masked_mean(err, mask)


def trajectory_kl_loss(student: jax.Array, teacher: jax.Array, mask: jax.Array) -> jax.Array:
  """Mean over masked latents of KL(teacher_k || student_k), each a distribution over prompt positions (LaViT's
  attention-trajectory loss). student/teacher [B,K,P] (rows sum to 1 where used), mask [B,K]. Positions the
  teacher gives 0 add nothing; the student's probabilities are floored at 1e-12 inside the log."""
  t = teacher.astype(jnp.float32)
  s = jnp.maximum(student.astype(jnp.float32), 1e-12)
  kl = jnp.sum(jnp.where(t > 0, t * (jnp.log(jnp.maximum(t, 1e-12)) - jnp.log(s)), 0.0), axis=-1)
  return _masked_mean(kl, mask)


def _gram(latents: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Cosine Gram matrix of the unmasked latents of each example, its pair mask and K_b."""
  m = mask.astype(jnp.float32)
  zn = _normalize(latents) * m[..., None]
  gram = jnp.einsum("bkd,bjd->bkj", zn, zn)
  return gram, m[:, :, None] * m[:, None, :], jnp.sum(m, axis=-1)


def latent_diversity_loss(latents: jax.Array, mask: jax.Array) -> jax.Array:
  """Batch mean of ||Zn Zn^T - I||_F^2 / K^2 over each example's K unmasked, L2-normalised latents.

  latents [B,K,D], mask [B,K]. Examples without latents are left out of the mean.
  """
  gram, pair_mask, k = _gram(latents, mask)
  eye = jnp.eye(latents.shape[1]) * pair_mask
  per_example = jnp.sum(jnp.square(gram - eye), axis=(1, 2)) / jnp.maximum(k * k, 1.0)
  return _masked_mean(per_example, k > 0)


def latent_diversity_hinge_loss(latents: jax.Array, mask: jax.Array, margin: float) -> jax.Array:
  """Mean over distinct unmasked pairs (k != j) of max(0, cos(z_k, z_j) - margin)."""
  gram, pair_mask, _ = _gram(latents, mask)
  off_diagonal = pair_mask * (1.0 - jnp.eye(latents.shape[1]))
  return _masked_mean(jax.nn.relu(gram - margin), off_diagonal)


def mean_pairwise_cosine(latents: jax.Array, mask: jax.Array) -> jax.Array:
  """Monitoring statistic: mean cosine between distinct unmasked latents (1 = collapsed)."""
  gram, pair_mask, _ = _gram(latents, mask)
  return _masked_mean(gram, pair_mask * (1.0 - jnp.eye(latents.shape[1])))
