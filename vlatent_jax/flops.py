"""Analytic matmul FLOPs of the model and of one training step, by part (pure arithmetic, no arrays).

A multiply-add counts 2 FLOPs. Counted: every dense layer (vision tower, merger, decoder, LIM,
tied or untied LM head over the predicted positions, alignment projection) and the attention
score and value matmuls. Not counted: norms, rotary, activations, softmax, losses, the optimizer
(elementwise, a few % of the total on the shapes where MFU matters).

Attention is counted as the code runs it: dense over the key buffer with masks, no causal kernel.
Decoder queries each see the whole rollout cache (P + K + A - 1 keys); vision patches see their
whole temporal slice in full-attention blocks and one window (`window_patches` slots, windows are
a batch axis) in window blocks. Padding is not counted: the caller passes valid patch counts and
the prompt length it wants charged.

Backward = 2x forward for each matmul (input and weight gradients), so a trained part costs 3x.
A frozen vision tower costs 1x (its inputs are data, so nothing needs its gradients); the patch
embedding of a trained tower costs 2x (no gradient for the pixels). The decoder and LIM are taken
as trained (freezing them is not modelled). Latent steps outside
`grad_steps` and the stop-gradient alignment targets run forward only.
"""

from __future__ import annotations

import dataclasses

from vlatent_jax.models.config import LLMConfig, ModelConfig, VisionConfig


@dataclasses.dataclass(frozen=True)
class StepShape:
  """The sizes of one training batch that set its FLOPs, independent of the batch's array layout."""
  batch: int               # B examples
  prompt_len: int          # P prompt positions per example as run (incl. <|latent_start|> when K > 0)
  num_latents: int         # K latent steps (0 for SFT)
  target_len: int          # A predicted positions per example (<|latent_end|> + answer when K > 0)
  vision_patches: int = 0  # valid patches of the whole batch (window_ids >= 0)
  vision_slices: int = 0   # temporal slices holding them; a patch attends to its slice

  @property
  def cache_len(self) -> int:
    """Keys every decoder query attends to: the rollout's KV cache."""
    return self.prompt_len + self.num_latents + self.target_len - 1


def decoder_layer_flops(llm: LLMConfig, tokens: int, keys: int) -> dict[str, float]:
  """One decoder layer over `tokens` queries, each attending to `keys` keys."""
  d, h, f = llm.hidden_size, llm.head_dim, llm.intermediate_size
  q, kv = llm.num_attention_heads * h, llm.num_key_value_heads * h
  linear = 2 * tokens * (d * q + 2 * d * kv + q * d + 3 * d * f)  # q, k, v, o; gate, up, down
  attention = 2 * 2 * tokens * keys * q  # QK^T and PV, every query head
  return {"linear": float(linear), "attention": float(attention)}


def vision_flops(vision: VisionConfig, patches: int, slices: int) -> dict[str, float]:
  """The vision tower over `patches` valid patches in `slices` equal temporal slices."""
  if patches == 0:
    return {"patch_embed": 0.0, "blocks": 0.0, "attention": 0.0, "merger": 0.0}
  if slices <= 0:
    raise ValueError(f"{patches} vision patches need at least one slice, got {slices}")
  d, f = vision.hidden_size, vision.intermediate_size
  per_slice = patches / slices
  full = len(set(vision.fullatt_block_indexes))
  keys = full * per_slice + (vision.depth - full) * min(per_slice, vision.window_patches)  # summed over blocks
  merged, wide = patches / vision.merge_unit, d * vision.merge_unit
  return {
      "patch_embed": 2.0 * patches * vision.patch_dim * d,
      "blocks": vision.depth * 2.0 * patches * (3 * d * d + d * d + 3 * d * f),  # qkv, proj; gate, up, down
      "attention": 2 * 2.0 * patches * keys * d,
      "merger": 2.0 * merged * (wide * wide + wide * vision.out_hidden_size),
  }


def forward_flops(config: ModelConfig, shape: StepShape, *, attention_pool: bool = False) -> dict[str, float]:
  """Forward FLOPs of the training rollout (`rollout.self_forcing_rollout` + loss heads), by part.

  attention_pool: `latent.align_target == "attention_pool"`, whose targets need a plain teacher-forced
  pass over prompt + answer (all layers but the last, then the last one's q/k and answer scores).
  """
  llm, d = config.llm, config.llm.hidden_size
  b, p, k, a, s = shape.batch, shape.prompt_len, shape.num_latents, shape.target_len, shape.cache_len
  layers = llm.num_hidden_layers

  def decoder(tokens):
    return layers * sum(decoder_layer_flops(llm, tokens, s).values())

  vision = vision_flops(config.vision, shape.vision_patches, shape.vision_slices)
  parts = {f"vision_{name}": value for name, value in vision.items()}
  parts.update({
      "decoder_prefill": decoder(b * p),
      "decoder_latent": k * decoder(b),
      "decoder_answer": decoder(b * (a - 1)),
      "lm_head": 2.0 * b * a * d * llm.vocab_size,
  })
  lim = config.latent is not None and k > 0
  # LIM: keys/values of every prompt position once, then per step q, attention over P, o and out_proj.
  parts["lim_memory"] = 2 * 2.0 * b * p * d * d if lim else 0.0
  parts["lim_steps"] = k * (3 * 2.0 * b * d * d + 2 * 2.0 * b * p * d) if lim else 0.0
  parts["align_proj"] = 2.0 * b * k * d * d if lim else 0.0
  parts["pooled_targets"] = 2.0 * b * k * p * d if lim else 0.0
  parts["attention_pool"] = 0.0
  if lim and attention_pool:
    t, answer = p + a - 1, a - 1  # targets hold <|latent_end|> + the answer
    q, kv = llm.num_attention_heads * llm.head_dim, llm.num_key_value_heads * llm.head_dim
    layer = sum(decoder_layer_flops(llm, b * t, t).values())
    parts["attention_pool"] = (layers - 1) * layer + 2.0 * b * t * d * (q + kv) + 2.0 * b * answer * t * q
  return parts


def train_flops(config: ModelConfig, shape: StepShape, *, vision_trainable: bool = True,
                grad_steps: int | None = None, attention_pool: bool = False,
                loops_once: bool = False) -> dict[str, float]:
  """FLOPs of one train step (forward + backward) by part, plus "total".

  vision_trainable: False when `optim.frozen` covers the whole tower. grad_steps: backpropagate
  through the last m latent steps only (None = all). attention_pool: as in `forward_flops`.
  loops_once: count each `lax.scan` body once, as XLA's cost analysis does (it does not multiply
  while-loop bodies by their trip count) -- only for comparing with it.
  """
  fwd = forward_flops(config, shape, attention_pool=attention_pool)
  k = shape.num_latents
  m = k if grad_steps is None else min(grad_steps, k)
  factor = {name: 3.0 for name in fwd}
  if vision_trainable:
    factor["vision_patch_embed"] = 2.0
  else:
    factor.update({name: 1.0 for name in fwd if name.startswith("vision_")})
  factor["pooled_targets"] = factor["attention_pool"] = 1.0  # stop-gradient targets
  out = {}
  for name, value in fwd.items():
    if name in ("decoder_latent", "lim_steps"):
      per_step = value / k if k else 0.0
      early, late = k - m, m  # forward only / forward + backward, each its own scan
      if loops_once:
        early, late = min(early, 1), min(late, 1)
      out[name] = per_step * (early + 3.0 * late)
    else:
      out[name] = factor[name] * value
  out["total"] = sum(out.values())
  return out


def forward_total(config: ModelConfig, shape: StepShape, *, attention_pool: bool = False,
                  loops_once: bool = False) -> float:
  """Forward FLOPs of the rollout with one latent scan; the options as in `train_flops`."""
  fwd = forward_flops(config, shape, attention_pool=attention_pool)
  if loops_once and shape.num_latents > 1:
    for name in ("decoder_latent", "lim_steps"):
      fwd[name] /= shape.num_latents
  return sum(fwd.values())
