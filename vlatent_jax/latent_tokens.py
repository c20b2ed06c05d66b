"""Prepare a model for latent reasoning: the special tokens in the tokenizer and the embedding table.

`<|latent_start|>`, `<|latent_end|>` and `<|latent_pad|>` are added to the
tokenizer when missing. Released Qwen2.5-VL checkpoints have spare embedding
rows beyond the tokenizer (vocab 151936 vs ~151665 tokens), so the new ids
usually fit; otherwise the embedding (and an untied lm_head) grow to fit them,
new rows initialised to the mean of the existing ones (a neutral start, as
transformers' `resize_token_embeddings` does).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from vlatent_jax.models.config import ModelConfig

LATENT_TOKENS = ("<|latent_start|>", "<|latent_end|>", "<|latent_pad|>")


def add_latent_tokens(config: ModelConfig, params: dict, tokenizer) -> tuple[ModelConfig, dict]:
  """Returns (config with latent token ids and vocab size, params with a large enough vocabulary).

  `tokenizer` (an HF tokenizer) is updated in place; save it next to the model.
  """
  missing = [t for t in LATENT_TOKENS if t not in tokenizer.get_vocab()]
  if missing:
    tokenizer.add_special_tokens({"additional_special_tokens": missing}, replace_extra_special_tokens=False)
  ids = [tokenizer.convert_tokens_to_ids(t) for t in LATENT_TOKENS]
  vocab = max(config.llm.vocab_size, max(ids) + 1)
  params = resize_vocab(params, vocab)
  llm = dataclasses.replace(config.llm, vocab_size=vocab)
  return dataclasses.replace(config, llm=llm, latent_start_token_id=ids[0], latent_end_token_id=ids[1]), params


def resize_vocab(params: dict, vocab_size: int) -> dict:
  """Grows the embedding [V, D] (and an untied lm_head kernel [D, V]) to `vocab_size` rows."""
  llm = dict(params["llm"])
  embed = np.asarray(llm["embed_tokens"]["embedding"])
  extra = vocab_size - embed.shape[0]
  if extra < 0:
    raise ValueError(f"cannot shrink the vocabulary from {embed.shape[0]} to {vocab_size}")
  if extra == 0:
    return params
  mean = embed.astype(np.float32).mean(0, keepdims=True).astype(embed.dtype)
  llm["embed_tokens"] = {"embedding": np.concatenate([embed, np.repeat(mean, extra, 0)])}
  if llm.get("lm_head") is not None:
    head = np.asarray(llm["lm_head"]["kernel"])
    head_mean = head.astype(np.float32).mean(1, keepdims=True).astype(head.dtype)
    llm["lm_head"] = {"kernel": np.concatenate([head, np.repeat(head_mean, extra, 1)], 1)}
  return {**params, "llm": llm}
