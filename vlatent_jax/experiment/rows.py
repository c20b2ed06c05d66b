"""The experiment's rows: each a training method on the one code path, named by its config overrides.

A row name is what `--modes` takes and what `W/runs/<row>_seed<S>` is called. Every row trains from the
same stage-1 model with the same budget (steps, batch, optimizer); only these keys differ.
"""

from __future__ import annotations

ROWS: dict[str, dict] = {
    "sft": {"latent": {"mode": "sft"}},
    "cot": {"latent": {"mode": "cot"}},  # explicit rationale text, the Video-R1 stand-in
    "continuous_thought": {"latent": {"mode": "continuous_thought"}},
    "videolatent": {"latent": {"mode": "videolatent"}},
    # Coconut's stage-wise curriculum (rationale steps replaced by latent steps, stage after stage)
    "videolatent_curriculum": {"latent": {"mode": "videolatent", "curriculum": 3}},
    "continuous_thought_curriculum": {"latent": {"mode": "continuous_thought", "curriculum": 3}},
    # ablations: one latent self-forcing objective off
    "videolatent_no_align": {"latent": {"mode": "videolatent", "align_weight": 0.0}},
    "videolatent_no_div": {"latent": {"mode": "videolatent", "diversity_weight": 0.0}},
    # LaViT: the stage-1 model as teacher (its visual semantics as alignment targets, its attention trajectory
    # as the LIM's), the answer's direct view of the video withdrawn over the first half; and each part alone off
    "videolatent_lavit": {"latent": {"mode": "videolatent", "align_target": "teacher", "trajectory_weight": 1.0,
                                     "sensory_gating": (0.0, 0.5)}},
    "videolatent_lavit_no_trajectory": {"latent": {"mode": "videolatent", "align_target": "teacher",
                                                   "sensory_gating": (0.0, 0.5)}},
    "videolatent_lavit_no_gating": {"latent": {"mode": "videolatent", "align_target": "teacher",
                                               "trajectory_weight": 1.0}},
    "videolatent_gated": {"latent": {"mode": "videolatent", "sensory_gating": (0.0, 0.5)}},  # gating alone
}
DEFAULT_ROWS = ("sft", "cot", "continuous_thought", "videolatent", "videolatent_curriculum")


def check(names: list[str]) -> list[str]:
  unknown = [n for n in names if n not in ROWS]
  if unknown:
    raise SystemExit(f"--modes: unknown {unknown}; choose from {sorted(ROWS)}")
  return names


def uses_rationale(name: str) -> bool:
  latent = ROWS[name]["latent"]
  return latent["mode"] == "cot" or latent.get("curriculum", 0) > 0
