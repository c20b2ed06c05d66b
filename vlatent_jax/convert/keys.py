"""Declarative map between vlatent_jax parameter paths and Hugging Face Qwen2.5-VL keys.

One table row per parameter kind: our path template, the HF key template
(canonical layout, `model.visual.*` / `model.language_model.*`), and the
transform kind. Transforms are exact (transposes and reshapes), so a round
trip is bit-identical in any dtype.
"""

from __future__ import annotations

import re

import numpy as np

# Our path (slash-joined nnx state path) <-> HF key, `{i}` = layer/block index.
TABLE = (
    ("vision/patch_embed/proj/kernel", "model.visual.patch_embed.proj.weight", "conv3d"),
    ("vision/blocks/{i}/norm1/weight", "model.visual.blocks.{i}.norm1.weight", "copy"),
    ("vision/blocks/{i}/norm2/weight", "model.visual.blocks.{i}.norm2.weight", "copy"),
    ("vision/blocks/{i}/attn/qkv/kernel", "model.visual.blocks.{i}.attn.qkv.weight", "linear"),
    ("vision/blocks/{i}/attn/qkv/bias", "model.visual.blocks.{i}.attn.qkv.bias", "copy"),
    ("vision/blocks/{i}/attn/proj/kernel", "model.visual.blocks.{i}.attn.proj.weight", "linear"),
    ("vision/blocks/{i}/attn/proj/bias", "model.visual.blocks.{i}.attn.proj.bias", "copy"),
    ("vision/blocks/{i}/mlp/{proj}/kernel", "model.visual.blocks.{i}.mlp.{proj}.weight", "linear"),
    ("vision/blocks/{i}/mlp/{proj}/bias", "model.visual.blocks.{i}.mlp.{proj}.bias", "copy"),
    ("vision/merger/ln_q/weight", "model.visual.merger.ln_q.weight", "copy"),
    ("vision/merger/mlp_in/kernel", "model.visual.merger.mlp.0.weight", "linear"),
    ("vision/merger/mlp_in/bias", "model.visual.merger.mlp.0.bias", "copy"),
    ("vision/merger/mlp_out/kernel", "model.visual.merger.mlp.2.weight", "linear"),
    ("vision/merger/mlp_out/bias", "model.visual.merger.mlp.2.bias", "copy"),
    ("llm/embed_tokens/embedding", "model.language_model.embed_tokens.weight", "copy"),
    ("llm/layers/{i}/input_layernorm/weight", "model.language_model.layers.{i}.input_layernorm.weight", "copy"),
    ("llm/layers/{i}/post_attention_layernorm/weight",
     "model.language_model.layers.{i}.post_attention_layernorm.weight", "copy"),
    ("llm/layers/{i}/self_attn/{proj}/kernel", "model.language_model.layers.{i}.self_attn.{proj}.weight", "linear"),
    ("llm/layers/{i}/self_attn/{proj}/bias", "model.language_model.layers.{i}.self_attn.{proj}.bias", "copy"),
    ("llm/layers/{i}/mlp/{proj}/kernel", "model.language_model.layers.{i}.mlp.{proj}.weight", "linear"),
    ("llm/norm/weight", "model.language_model.norm.weight", "copy"),
    ("llm/lm_head/kernel", "lm_head.weight", "linear"),
)

# Released checkpoints (transformers < 4.52) use `visual.*` and `model.*` for the LLM.
LEGACY_PREFIXES = (("model.visual.", "visual."), ("model.language_model.", "model."))


def _template_regex(template: str, sep: str) -> re.Pattern:
  pattern = re.escape(template)
  pattern = pattern.replace(re.escape("{i}"), r"(?P<i>\d+)").replace(re.escape("{proj}"), r"(?P<proj>\w+_proj)")
  return re.compile(pattern + "$")


_OURS = [(_template_regex(ours, "/"), hf, kind) for ours, hf, kind in TABLE]
_HF = [(_template_regex(hf, "."), ours, kind) for ours, hf, kind in TABLE]


def canonical_hf_key(key: str) -> tuple[str, str]:
  """Returns (canonical key, layout) for a key in either HF layout."""
  if key.startswith(("model.visual.", "model.language_model.", "lm_head.")):
    return key, "canonical"
  for new, old in LEGACY_PREFIXES:
    if key.startswith(old):
      return new + key[len(old):], "legacy"
  return key, "unknown"


def layout_key(canonical: str, layout: str) -> str:
  if layout == "legacy":
    for new, old in LEGACY_PREFIXES:
      if canonical.startswith(new):
        return old + canonical[len(new):]
  return canonical


def hf_to_ours(hf_key: str) -> tuple[str, str]:
  """Canonical HF key -> (our slash path, transform kind); KeyError naming the key if unknown."""
  for regex, ours, kind in _HF:
    m = regex.match(hf_key)
    if m:
      return ours.format(**m.groupdict()), kind
  raise KeyError(f"unknown Hugging Face parameter '{hf_key}' for Qwen2.5-VL")


def ours_to_hf(path: str) -> tuple[str, str]:
  for regex, hf, kind in _OURS:
    m = regex.match(path)
    if m:
      return hf.format(**m.groupdict()), kind
  raise KeyError(f"parameter '{path}' has no Hugging Face counterpart")


def to_ours(kind: str, array: np.ndarray) -> np.ndarray:
  if kind == "linear":
    return np.ascontiguousarray(array.T)
  if kind == "conv3d":  # [D, C, T, P, P] -> [C*T*P*P, D]
    return np.ascontiguousarray(array.reshape(array.shape[0], -1).T)
  return array


def to_hf(kind: str, array: np.ndarray, hf_shape: tuple[int, ...] | None = None) -> np.ndarray:
  if kind == "linear":
    return np.ascontiguousarray(array.T)
  if kind == "conv3d":
    return np.ascontiguousarray(array.T).reshape(hf_shape)
  return array
