"""The target schedule (cot, Coconut's curriculum) worked out by hand, and the batches it builds."""

import numpy as np
import pytest

from tiny_models import CONFIG as MODEL_CONFIG
from vlatent_jax.data.collate import Example
from vlatent_jax.data.curriculum import ALL, ExamplePlan, TargetSchedule
from vlatent_jax.data.prompts import reasoning_texts
from vlatent_jax.train.batch import collate


def test_plain_modes_train_on_the_answer():
  assert TargetSchedule(0).plan(7, 3) == ExamplePlan(0, None)           # sft
  assert TargetSchedule(4).plan(7, 3) == ExamplePlan(4, None)           # continuous_thought / videolatent
  assert TargetSchedule(0, rationale=True).plan(7, 3) == ExamplePlan(0, 0)  # cot: the full rationale


def test_curriculum_stages_by_hand():
  # K = 4, S = 3 stages before the latent-only one, c = 2, 100 steps: stages of 25 steps each.
  s = TargetSchedule(num_latents=4, stages=3, latents_per_step=2, total_steps=100)
  assert [s.stage(t) for t in (0, 24, 25, 49, 50, 74, 75, 99, 500)] == [0, 0, 1, 1, 2, 2, 3, 3, 3]
  # an example with 3 rationale steps
  assert s.plan(0, 3) == ExamplePlan(0, 0)     # stage 0: the whole rationale, no latents
  assert s.plan(30, 3) == ExamplePlan(2, 1)    # stage 1: first step -> 2 latents
  assert s.plan(60, 3) == ExamplePlan(4, 2)    # stage 2: first two steps -> 4 latents (= K)
  assert s.plan(80, 3) == ExamplePlan(4, ALL)  # stage 3 (last): K latents, no rationale
  # an example with a single step runs out of steps at stage 1 and keeps min(s, n) * c latents
  assert s.plan(60, 1) == ExamplePlan(2, 1)
  # validation / inference: the last stage
  assert s.plan(None, 3) == ExamplePlan(4, ALL)


def test_curriculum_needs_latent_slots():
  with pytest.raises(ValueError):
    TargetSchedule(num_latents=0, stages=2)
  with pytest.raises(ValueError):
    TargetSchedule(num_latents=2, stages=2, rationale=True)


def test_collate_builds_the_planned_targets_and_latent_mask():
  steps = ["first: red square, frames 2-4", "then: blue circle, frames 9-11"]
  texts = reasoning_texts(steps, "A")
  assert texts == ["<think>first: red square, frames 2-4; then: blue circle, frames 9-11</think><answer>A</answer>",
                   "<think>then: blue circle, frames 9-11</think><answer>A</answer>", "<answer>A</answer>"]
  end = 9  # the end-of-turn token
  reasoning = [[30 + i] * (3 - i) + [end] for i in range(3)]  # stand-in token ids of the three texts
  ex = Example(prompt_ids=[5, 6, 7], answer_ids=[40, end], reasoning_ids=reasoning)
  plans = [ExamplePlan(0, 0), ExamplePlan(2, 1), ExamplePlan(3, ALL)]
  batch = collate([ex] * 3, MODEL_CONFIG, num_latents=3, max_answer_len=5, plans=plans)
  latent_end = MODEL_CONFIG.latent_end_token_id
  np.testing.assert_array_equal(batch["targets"], [[latent_end, 30, 30, 30, end, 0], [latent_end, 31, 31, end, 0, 0],
                                                   [latent_end, 32, end, 0, 0, 0]])
  np.testing.assert_array_equal(batch["latent_mask"], [[0, 0, 0], [1, 1, 0], [1, 1, 1]])
  assert (batch["input_ids"][:, -1] == MODEL_CONFIG.latent_start_token_id).all()
  with pytest.raises(ValueError, match="rationale"):
    collate([Example([5], [40, end])], MODEL_CONFIG, num_latents=0, max_answer_len=5, plans=[ExamplePlan(0, 0)])
