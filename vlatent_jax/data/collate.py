"""Examples -> one batch of examples (host numpy): token ids, targets and masks, the videos concatenated.

An example holds a tokenised chat prompt (video placeholders already expanded, ending with the assistant
header), the answer tokens (ending with <|im_end|>) and its processed video(s). `stack` lines a batch of
them up with numbers only (token ids, lengths); laying it out for the model (left alignment, vision
layout, position ids, alignment weights) is the model side's: `train/batch.py`.

    prompt_ids  prompt (+ <|latent_start|> when K > 0), right-padded to the longest prompt
    targets     (<|latent_end|> when K > 0) + answer (or a rationale + answer), right-padded to a fixed length
    latent_mask [B,K] which of the K latent slots each example uses (a curriculum stage may use fewer)
"""

from __future__ import annotations

import dataclasses

import numpy as np

from vlatent_jax.data.curriculum import ExamplePlan


@dataclasses.dataclass
class Example:
  prompt_ids: list[int]
  answer_ids: list[int]
  pixel_values_videos: np.ndarray | None = None  # [N, patch_dim]
  video_grid_thw: np.ndarray | None = None       # [V, 3]
  second_per_grid_ts: np.ndarray | None = None   # [V]
  reasoning_ids: list[list[int]] | None = None   # targets after dropping the first s rationale steps, s = 0..n
  teacher_targets: np.ndarray | None = None      # [K, D] LaViT: the teacher's visual semantics per latent step
  teacher_trajectory: np.ndarray | None = None   # [K, M] per latent step, a distribution over the M video tokens

  @property
  def rationale_steps(self) -> int:
    return len(self.reasoning_ids) - 1 if self.reasoning_ids else 0

  def target_ids(self, drop: int | None) -> list[int]:
    """The answer (drop None), or the rationale target with its first `drop` steps dropped."""
    if drop is None:
      return list(self.answer_ids)
    if not self.reasoning_ids:
      raise ValueError("this example has no rationale (cot and latent.curriculum need manifests with 'rationale')")
    return list(self.reasoning_ids[min(drop, len(self.reasoning_ids) - 1)])


@dataclasses.dataclass
class ExampleBatch:
  """A batch of examples, stacked; videos in HF's packed form (all examples' patches and grids in order)."""
  prompt_ids: np.ndarray   # [B, L] int64, right-padded with 0 (L = longest prompt, <|latent_start|> included)
  prompt_mask: np.ndarray  # [B, L] int64
  targets: np.ndarray      # [B, A] int32, A = max_answer_len (+ 1 for <|latent_end|> when K > 0)
  target_mask: np.ndarray  # [B, A] float32
  answer_ids: np.ndarray   # [B, max_answer_len] int32: the targets without <|latent_end|>
  answer_mask: np.ndarray  # [B, max_answer_len] float32
  latent_mask: np.ndarray  # [B, K] bool
  pixel_values_videos: np.ndarray | None  # [N, patch_dim], dtype as stored (uint8 from shards)
  video_grid_thw: np.ndarray | None       # [V, 3]
  second_per_grid_ts: np.ndarray | None   # [V] float32


def stack(examples: list[Example], *, num_latents: int, max_answer_len: int, latent_start_id: int | None,
          latent_end_id: int | None, prompt_len: int | None = None,
          plans: list[ExamplePlan] | None = None) -> ExampleBatch:
  """Stacks `examples`; ValueError when a prompt exceeds `prompt_len` or a target `max_answer_len`.

  `plans` (one per example, `curriculum.TargetSchedule.plan`): its latent steps (<= num_latents slots) and
  target; default: every slot and the plain answer.
  """
  k = num_latents
  plans = plans or [ExamplePlan(k, None)] * len(examples)
  if any(plan.num_latents > k for plan in plans):
    raise ValueError(f"a plan uses more latent steps than the batch's {k} slots")
  if k > 0 and (latent_start_id is None or latent_end_id is None):
    raise ValueError("latent steps need <|latent_start|>/<|latent_end|> token ids in the model config")
  batch_size = len(examples)
  prompt_len_needed = max(len(e.prompt_ids) for e in examples) + (1 if k else 0)
  seq = prompt_len or prompt_len_needed
  if seq < prompt_len_needed:
    raise ValueError(f"prompt of {prompt_len_needed} tokens exceeds data.max_prompt_len={seq}")
  ids = np.zeros((batch_size, prompt_len_needed), np.int64)
  mask = np.zeros_like(ids)
  answers = np.zeros((batch_size, max_answer_len), np.int32)
  answer_mask = np.zeros((batch_size, max_answer_len), np.float32)
  for i, (e, plan) in enumerate(zip(examples, plans)):
    prompt = list(e.prompt_ids) + ([latent_start_id] if k else [])
    ids[i, :len(prompt)], mask[i, :len(prompt)] = prompt, 1
    target = e.target_ids(plan.drop)
    if len(target) > max_answer_len:
      raise ValueError(f"example {i}: target of {len(target)} tokens exceeds {max_answer_len}")
    answers[i, :len(target)] = target
    answer_mask[i, :len(target)] = 1.0

  with_video = [e for e in examples if e.pixel_values_videos is not None]
  pixels = np.concatenate([e.pixel_values_videos for e in with_video]) if with_video else None
  grids = np.concatenate([np.asarray(e.video_grid_thw).reshape(-1, 3) for e in with_video]) if with_video else None
  seconds = (np.concatenate([np.asarray(e.second_per_grid_ts, np.float32).reshape(-1) for e in with_video])
             if with_video else None)

  if k:
    targets = np.concatenate([np.full((batch_size, 1), latent_end_id, np.int32), answers], 1)
    target_mask = np.concatenate([np.ones((batch_size, 1), np.float32), answer_mask], 1)
  else:
    targets, target_mask = answers, answer_mask
  latent_mask = np.arange(k)[None, :] < np.array([plan.num_latents for plan in plans])[:, None]
  return ExampleBatch(ids, mask, targets.astype(np.int32), target_mask, answers, answer_mask, latent_mask,
                      pixels, grids, seconds)
