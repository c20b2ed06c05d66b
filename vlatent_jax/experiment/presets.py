"""Budgets of the headline experiment: one per machine class, everything else is shared.

`cpu` fits 2 CPU cores (the README's main job); `gpu` trains the larger `configs/small.py` model on a
larger corpus for one accelerator. Every stage-2 row of a preset gets the same steps, batch and optimizer.
"""

from __future__ import annotations

import dataclasses
import os

CONFIGS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "configs")


@dataclasses.dataclass(frozen=True)
class Preset:
  name: str
  config: str                 # configs/<file>: the architecture (and defaults) of both stages
  counts: dict                # embedded benchmark examples per split (train, val, test)
  corpus_clips: int           # stage-1 clips (each gives a description and a perception question)
  perception_count: int       # held-out stage-1 perception questions
  stage1: dict                # stage-1 overrides (config sections)
  stage2: dict                # stage-2 overrides shared by every row
  workers: int                # stage-2 runs trained side by side (one CPU core each on a CPU host)
  eval_batch: int = 50

  @property
  def config_path(self) -> str:
    return os.path.join(CONFIGS, self.config)


PRESETS = {
    "cpu": Preset(
        name="cpu", config="tiny.py", counts={"train": 2000, "val": 200, "test": 400}, corpus_clips=12000,
        perception_count=300,
        stage1={"train": {"steps": 1500, "batch_size": 16}, "optim": {"learning_rate": 1e-3, "warmup_steps": 50}},
        stage2={"train": {"steps": 300, "batch_size": 16, "eval_every_steps": 100},
                "optim": {"learning_rate": 1e-3, "warmup_steps": 20, "frozen": ("vision",)}},
        workers=2),
    "gpu": Preset(
        name="gpu", config="small.py", counts={"train": 4000, "val": 400, "test": 400}, corpus_clips=40000,
        perception_count=600,
        stage1={"train": {"steps": 3000, "batch_size": 64}, "optim": {"learning_rate": 1e-3, "warmup_steps": 100}},
        stage2={"train": {"steps": 600, "batch_size": 32, "eval_every_steps": 200},
                "optim": {"learning_rate": 5e-4, "warmup_steps": 30, "frozen": ("vision",)}},
        workers=1, eval_batch=100),
}
