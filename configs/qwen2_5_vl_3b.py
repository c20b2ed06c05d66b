"""Qwen2.5-VL-3B VideoLatent training from converted Hugging Face weights.

    python -m vlatent_jax.convert hf-to-jax --hf-dir Qwen2.5-VL-3B-Instruct --out ckpt/qwen2_5_vl_3b
    python -m vlatent_jax.train --config configs/qwen2_5_vl_3b.py --workdir runs/3b \\
        --config.model.init_from=ckpt/qwen2_5_vl_3b --config.data.path=data/train --config.data.val_path=data/val

Frames follow Video-R1 (2 fps, at most 16 frames, 128*28*28 pixels per frame in training: set when
preparing the shards). The vision tower is frozen, compute is bfloat16 with float32 master weights,
parameters are sharded over fsdp. Every decoder layer, vision block and latent step is rematerialised
and the layers run as a scan over stacked parameters (one compiled layer body, the FSDP all-gather one
layer at a time): `python bench/mfu.py --config 3b --shipped --memory-only` prints the per-device memory
of this config's step on its 8-device mesh.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.model = dict(init_from="", vision={}, llm={}, tokens={}, add_latent_tokens=True, dtype="bfloat16",
                 param_dtype="float32", remat="full", scan_layers=True, attention="auto")
  c.latent = dict(mode="videolatent", num_latents=8, grad_steps=-1, stop_early=False, num_heads=16,
                  align_weight=1.0, diversity_weight=0.1, align_target="mean_pool", align_loss="cosine",
                  diversity_loss="gram", diversity_margin=0.5, end_token_loss=True,
                  sensory_gating=(), trajectory_weight=0.0)
  c.optim = dict(learning_rate=1e-5, warmup_steps=100, end_learning_rate_ratio=0.1, weight_decay=0.01,
                 b1=0.9, b2=0.95, clip_norm=1.0, frozen=("vision",))
  c.train = dict(steps=5000, seed=0, batch_size=64, log_every_steps=10, eval_every_steps=500, profile_start_step=0,
                 profile_steps=5, grad_accum_steps=1)
  c.data = dict(path="", val_path="", max_prompt_len=2048, max_answer_len=64, num_workers=8)
  c.mesh = dict(data=-1, fsdp=8, tensor=1)
  c.checkpoint = dict(every_steps=500, keep=3, best_metric="val_loss", best_mode="min", export_model=True)
  return ml_collections.ConfigDict(c)
