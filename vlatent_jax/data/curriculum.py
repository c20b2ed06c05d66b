"""What each training batch teaches: its latent steps and its target text, as a pure function of the step.

    sft / latent modes   the answer; K latent steps for continuous_thought / videolatent (0 for sft)
    cot                  the full rationale, then the answer (`prompts.reasoning_texts`, stage 0)
    curriculum (S > 0)   Coconut's stage-wise curriculum over `train.steps` split into S + 1 equal stages:
                         stage s < S drops an example's first min(s, n) rationale steps (n = its step
                         count) and gives it min(s, n) * latents_per_step latent steps (at most K); the
                         last stage S drops every step and gives every example K latent steps, as
                         inference does

Batches keep K latent slots whatever the stage (slots an example does not use are masked out), so the
jitted train step compiles once for the whole curriculum. Validation and inference use the last stage.
"""

from __future__ import annotations

import dataclasses

ALL = 1 << 30  # "drop every rationale step"


@dataclasses.dataclass(frozen=True)
class ExamplePlan:
  num_latents: int        # latent steps this example takes (<= the batch's K slots)
  drop: int | None        # None: the plain answer; s: the target after dropping its first s rationale steps


@dataclasses.dataclass(frozen=True)
class TargetSchedule:
  """Picklable (Grain workers call it). `total_steps` only matters with a curriculum."""
  num_latents: int = 0          # K latent slots per batch
  rationale: bool = False       # cot: train on the full rationale
  stages: int = 0               # curriculum S (0 = off)
  latents_per_step: int = 1     # Coconut's c
  total_steps: int = 1

  def __post_init__(self):
    if self.stages and (self.num_latents <= 0 or self.rationale):
      raise ValueError("a curriculum needs latent slots (num_latents > 0) and replaces the cot rationale")
    if self.num_latents < 0 or self.stages < 0 or self.latents_per_step < 1 or self.total_steps < 1:
      raise ValueError(f"invalid schedule {self}")

  @property
  def uses_rationale(self) -> bool:
    return self.rationale or self.stages > 0

  def stage(self, step: int) -> int:
    """Curriculum stage of training step `step` (0-based): S + 1 equal shares of total_steps."""
    return min(self.stages, step * (self.stages + 1) // self.total_steps)

  def plan(self, step: int | None, rationale_steps: int) -> ExamplePlan:
    """The plan of one example with `rationale_steps` steps at training step `step` (None = last stage)."""
    if self.rationale:
      return ExamplePlan(0, 0)
    if not self.stages:
      return ExamplePlan(self.num_latents, None)
    stage = self.stages if step is None else self.stage(step)
    if stage == self.stages:
      return ExamplePlan(self.num_latents, ALL)
    dropped = min(stage, rationale_steps)
    return ExamplePlan(min(dropped * self.latents_per_step, self.num_latents), dropped)
