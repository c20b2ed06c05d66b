"""Small config: the headline experiment's `--preset gpu` model (2x wider and deeper than tiny.py).

    python -m vlatent_jax.experiment --workdir W --preset gpu

With no `data.path` the embedded benchmark is generated and prepared under the workdir.
The vocabulary size and special-token ids come from the benchmark's tokenizer.

Positions as in configs/tiny.py (small rope_theta, one temporal position per slice).
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.model = dict(
      init_from="",
      vision=dict(depth=4, hidden_size=128, intermediate_size=256, num_heads=4, out_hidden_size=256,
                  fullatt_block_indexes=(1, 3), window_size=56, tokens_per_second=4.0, rms_norm_eps=0.1),
      llm=dict(hidden_size=256, intermediate_size=768, num_hidden_layers=4, num_attention_heads=4,
               num_key_value_heads=2, mrope_section=(8, 12, 12), rope_theta=100.0, tie_word_embeddings=True),
      tokens={},
      add_latent_tokens=True,
      dtype="float32",
      param_dtype="float32",
  )
  c.latent = dict(mode="videolatent", num_latents=4, curriculum=0, latents_per_step=1, grad_steps=-1,
                  stop_early=False, num_heads=8, align_weight=1.0, diversity_weight=0.1, align_target="mean_pool",
                  align_loss="cosine", diversity_loss="gram", diversity_margin=0.5, end_token_loss=True)
  c.optim = dict(learning_rate=1e-3, warmup_steps=20, end_learning_rate_ratio=0.1, weight_decay=0.01,
                 b1=0.9, b2=0.95, clip_norm=1.0, frozen=(), lr_scale={})
  c.train = dict(steps=300, seed=0, batch_size=16, log_every_steps=10, eval_every_steps=100, profile_start_step=0, profile_steps=5)
  c.data = dict(path="", val_path="", max_prompt_len=128, max_answer_len=4, num_workers=0)
  c.mesh = dict(data=-1, fsdp=1, tensor=1)
  c.checkpoint = dict(every_steps=100, keep=3, best_metric="", best_mode="min", export_model=True)
  return ml_collections.ConfigDict(c)
