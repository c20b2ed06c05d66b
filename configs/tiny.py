"""Tiny config: trains on the embedded benchmark on CPU in minutes; the headline experiment's model.

    python -m vlatent_jax.train --config configs/tiny.py --workdir runs/tiny [--config.latent.mode=sft]

With no `data.path` the embedded benchmark is generated and prepared under the workdir.
The vocabulary size and special-token ids come from the benchmark's tokenizer.

Positions suit a small model on 56 px clips (2 x 2 merged tokens per frame, 8 temporal slices): with
head_dim 32, mrope_section (4, 6, 6) and the usual rope_theta 1e6 the height / width axes turn by
0.03-2e-6 rad per position and neighbouring quadrants look alike (0.06-0.01 rad at theta 100), so
rope_theta is 3 (width 0.5-0.36, height 0.76-0.54, time 1-0.81 rad per position); and
tokens_per_second = fps / temporal_patch_size (8 / 2) gives every temporal slice its own temporal position
(at 2.0, slices would share positions in pairs). initializer_range (HF's name; random initialisation
only) is about 1 / sqrt(width) instead of HF's 0.02, which suits 2-4k-wide layers: at width 128 it starts
the q.k logits ~25x too small, and the question's control over what is read from the video (which object,
which option letter) sat on a plateau for thousands of steps. All of these, and the learning rates of the
experiment's presets, were chosen on the validation split (docs/choices.md).
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.model = dict(
      init_from="",
      vision=dict(depth=2, hidden_size=64, intermediate_size=128, num_heads=4, out_hidden_size=128,
                  fullatt_block_indexes=(1,), window_size=56, tokens_per_second=4.0, rms_norm_eps=0.1,
                  initializer_range=0.1),
      llm=dict(hidden_size=128, intermediate_size=384, num_hidden_layers=2, num_attention_heads=4,
               num_key_value_heads=2, mrope_section=(4, 6, 6), rope_theta=3.0, tie_word_embeddings=True,
               initializer_range=0.08),
      tokens={},
      add_latent_tokens=True,
      dtype="float32",
      param_dtype="float32",
  )
  c.latent = dict(mode="videolatent", num_latents=4, curriculum=0, latents_per_step=1, grad_steps=-1,
                  stop_early=False, num_heads=4, align_weight=1.0, diversity_weight=0.1, align_target="mean_pool",
                  align_loss="cosine", diversity_loss="gram", diversity_margin=0.5, end_token_loss=True,
                  sensory_gating=(), trajectory_weight=0.0)
  c.optim = dict(learning_rate=1e-3, warmup_steps=20, end_learning_rate_ratio=0.1, weight_decay=0.01,
                 b1=0.9, b2=0.95, clip_norm=1.0, frozen=(), lr_scale={})
  c.train = dict(steps=300, seed=0, batch_size=16, log_every_steps=10, eval_every_steps=100, profile_start_step=0,
                 profile_steps=5, grad_accum_steps=1)
  # One prompt shape: in a 300-step CPU run a second compile (~20 s) costs more than 64-token prompts save.
  c.data = dict(path="", val_path="", max_prompt_len=128, bucket_prompts=False, max_answer_len=4, num_workers=0)
  c.mesh = dict(data=-1, fsdp=1, tensor=1)
  c.checkpoint = dict(every_steps=100, keep=3, best_metric="", best_mode="min", export_model=True)
  return ml_collections.ConfigDict(c)
