"""Hugging Face Qwen2.5-VL `config.json` <-> `ModelConfig`.

Two config.json layouts exist: released checkpoints put the text fields at
the top level with `rope_scaling: {"type": "mrope", ...}` and vision
`in_chans`; newer transformers nests them in `text_config` with
`rope_parameters`. `transformers.Qwen2_5_VLConfig` normalises both, so we
read through it and reject anything our model cannot run (other
architectures, sliding window, non-mrope RoPE) with a ConfigError naming the
field. Writing starts from the original config.json (`base`) and overwrites
only the fields we own, in the layout `base` uses, so unknown fields survive a
round trip.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

from vlatent_jax.models.config import ConfigError, LatentModuleConfig, LLMConfig, ModelConfig, VisionConfig

MODEL_TYPE = "qwen2_5_vl"
ARCHITECTURES = ("Qwen2_5_VLForConditionalGeneration", "Qwen2_5_VLModel")
VISION_NORM_EPS = 1e-6   # hard-coded in HF's vision tower
VISION_ROPE_THETA = 10000.0
LATENT_FIELD = "vlatent"  # config.json field: latent token ids and the latent injection module config


def _fail(key: str, message: str):
  raise ConfigError(f"config key '{key}': {message}")


def _normalise(hf_config: dict):
  """Validates the model type and returns a `transformers.Qwen2_5_VLConfig`."""
  if not isinstance(hf_config, dict):
    raise ConfigError(f"config.json must be a JSON object, got {type(hf_config).__name__}")
  model_type = hf_config.get("model_type")
  if model_type != MODEL_TYPE:
    _fail("model_type", f"{model_type!r} is not supported (expected {MODEL_TYPE!r}, Qwen2.5-VL)")
  bad = [a for a in hf_config.get("architectures") or [] if a not in ARCHITECTURES]
  if bad:
    _fail("architectures", f"{bad} not supported (expected one of {list(ARCHITECTURES)})")
  # Imported lazily: transformers is heavy (and pulls in torch when installed).
  from transformers import Qwen2_5_VLConfig
  try:
    return Qwen2_5_VLConfig(**copy.deepcopy(hf_config))  # HF mutates nested dicts
  except Exception as e:  # strict-dataclass validation errors name the field
    raise ConfigError(f"config.json is not a valid Qwen2.5-VL config: {e}") from e


def _int_size(value, key: str) -> int:
  if isinstance(value, (list, tuple)):
    if len(set(value)) != 1:
      _fail(key, f"non-square {list(value)} is not supported")
    value = value[0]
  return value


def config_from_hf(hf_config: dict) -> ModelConfig:
  hf = _normalise(hf_config)
  text, vision = hf.text_config, hf.vision_config
  if getattr(text, "use_sliding_window", False):
    _fail("use_sliding_window", "sliding-window attention is not supported")
  layer_types = set(getattr(text, "layer_types", None) or ["full_attention"])
  if layer_types != {"full_attention"}:
    _fail("layer_types", f"only full_attention layers are supported, got {sorted(layer_types)}")

  rope = dict(text.rope_parameters or {})
  raw_type = rope.get("type", "mrope")
  if rope.get("rope_type", "default") != "default" or raw_type not in ("mrope", "default"):
    _fail("rope_parameters.rope_type", f"{rope.get('rope_type', raw_type)!r} is not supported "
          "(only default/mrope rotary embeddings)")
  if "mrope_section" not in rope:
    _fail("rope_parameters.mrope_section", "missing (Qwen2.5-VL needs multimodal RoPE sections)")
  vrope = dict(getattr(vision, "rope_parameters", None) or {})
  if vrope.get("rope_type", "axial") not in ("axial", "default"):
    _fail("vision_config.rope_parameters.rope_type", f"{vrope['rope_type']!r} is not supported")

  raw_vision = hf_config.get("vision_config") or {}
  in_channels = raw_vision.get("in_channels", raw_vision.get("in_chans", vision.in_channels))
  vision_cfg = VisionConfig(
      depth=vision.depth, hidden_size=vision.hidden_size, intermediate_size=vision.intermediate_size,
      num_heads=vision.num_heads, in_channels=in_channels,
      patch_size=_int_size(vision.patch_size, "vision_config.patch_size"),
      temporal_patch_size=_int_size(vision.temporal_patch_size, "vision_config.temporal_patch_size"),
      spatial_merge_size=vision.spatial_merge_size, window_size=vision.window_size,
      out_hidden_size=vision.out_hidden_size, fullatt_block_indexes=tuple(vision.fullatt_block_indexes),
      tokens_per_second=float(vision.tokens_per_second),
      rope_theta=float(vrope.get("rope_theta", VISION_ROPE_THETA)), hidden_act=vision.hidden_act,
      rms_norm_eps=VISION_NORM_EPS, initializer_range=float(getattr(vision, "initializer_range", VisionConfig.initializer_range)))
  llm_cfg = LLMConfig(
      vocab_size=text.vocab_size, hidden_size=text.hidden_size, intermediate_size=text.intermediate_size,
      num_hidden_layers=text.num_hidden_layers, num_attention_heads=text.num_attention_heads,
      num_key_value_heads=text.num_key_value_heads, rope_theta=float(rope["rope_theta"]),
      mrope_section=tuple(rope["mrope_section"]), rms_norm_eps=float(text.rms_norm_eps),
      hidden_act=text.hidden_act, tie_word_embeddings=bool(hf.tie_word_embeddings),
      max_position_embeddings=text.max_position_embeddings,
      initializer_range=float(getattr(text, "initializer_range", LLMConfig.initializer_range)))

  def token(name):  # top level wins (released layout), else text_config
    value = hf_config[name] if name in hf_config else getattr(text, name, None)
    return tuple(value) if isinstance(value, list) else value

  latent = hf_config.get(LATENT_FIELD) or {}
  module = latent.get("latent_module")
  return ModelConfig(
      vision=vision_cfg, llm=llm_cfg, image_token_id=hf.image_token_id, video_token_id=hf.video_token_id,
      vision_start_token_id=hf.vision_start_token_id, vision_end_token_id=hf.vision_end_token_id,
      bos_token_id=token("bos_token_id"), eos_token_id=token("eos_token_id"), pad_token_id=token("pad_token_id"),
      latent=None if module is None else LatentModuleConfig(**module),
      latent_start_token_id=latent.get("latent_start_token_id"), latent_end_token_id=latent.get("latent_end_token_id"))


def _int_if_whole(x):
  return int(x) if float(x).is_integer() else x


def _set_rope(target: dict, section: list[int], theta: float, legacy_type: str | None) -> None:
  """Updates rope fields in whichever form `target` already uses."""
  if "rope_parameters" in target and isinstance(target["rope_parameters"], dict):
    target["rope_parameters"].update(mrope_section=section, rope_theta=theta)
  elif "rope_scaling" in target and isinstance(target["rope_scaling"], dict):
    target["rope_scaling"]["mrope_section"] = section
    target["rope_theta"] = theta
  elif legacy_type:
    target["rope_scaling"] = {"type": legacy_type, "mrope_section": section}
    target["rope_theta"] = theta
  else:
    target["rope_parameters"] = {"rope_type": "default", "mrope_section": section, "rope_theta": theta}


def config_to_hf(config: ModelConfig, base: dict | None = None, dtype: str | None = None) -> dict[str, Any]:
  """ModelConfig -> config.json dict; `base` (the source config.json) supplies layout and extra fields."""
  v, t = config.vision, config.llm
  if v.rms_norm_eps != VISION_NORM_EPS:
    _fail("vision.rms_norm_eps", f"{v.rms_norm_eps} cannot be expressed in a HF config (fixed {VISION_NORM_EPS})")
  out = copy.deepcopy(base) if base else {}
  flat = bool(base) and "text_config" not in out and "hidden_size" in out
  out["model_type"] = MODEL_TYPE
  out.setdefault("architectures", ["Qwen2_5_VLForConditionalGeneration"])

  eos = list(config.eos_token_id) if isinstance(config.eos_token_id, tuple) else config.eos_token_id
  text_fields = dict(
      vocab_size=t.vocab_size, hidden_size=t.hidden_size, intermediate_size=t.intermediate_size,
      num_hidden_layers=t.num_hidden_layers, num_attention_heads=t.num_attention_heads,
      num_key_value_heads=t.num_key_value_heads, rms_norm_eps=t.rms_norm_eps, hidden_act=t.hidden_act,
      max_position_embeddings=t.max_position_embeddings, use_sliding_window=False,
      initializer_range=t.initializer_range)
  tokens = dict(bos_token_id=config.bos_token_id, eos_token_id=eos, pad_token_id=config.pad_token_id)
  if flat:
    text = out
  else:
    text = out.setdefault("text_config", {})
    text.setdefault("model_type", "qwen2_5_vl_text")
    for name, value in tokens.items():  # keep top-level copies in sync where base has them
      if name in out:
        out[name] = value
  text.update(text_fields)
  text.update(tokens)  # None too: HF's defaults for absent token ids are not None
  if "layer_types" in text:
    text["layer_types"] = ["full_attention"] * t.num_hidden_layers
  _set_rope(text, list(t.mrope_section), t.rope_theta, "mrope" if flat else None)

  out["tie_word_embeddings"] = t.tie_word_embeddings
  if "tie_word_embeddings" in text:  # pre-v5 copy; HF ties if either says so
    text["tie_word_embeddings"] = t.tie_word_embeddings
  for name in ("image_token_id", "video_token_id", "vision_start_token_id", "vision_end_token_id"):
    out[name] = getattr(config, name)

  vis = out.setdefault("vision_config", {})
  vis.update(
      depth=v.depth, hidden_size=v.hidden_size, intermediate_size=v.intermediate_size, num_heads=v.num_heads,
      patch_size=v.patch_size, temporal_patch_size=v.temporal_patch_size,
      spatial_merge_size=v.spatial_merge_size, window_size=v.window_size, out_hidden_size=v.out_hidden_size,
      fullatt_block_indexes=list(v.fullatt_block_indexes), tokens_per_second=_int_if_whole(v.tokens_per_second),
      hidden_act=v.hidden_act, initializer_range=v.initializer_range)
  # Released configs spell it `in_chans`; keep that spelling rather than adding a second key.
  vis["in_chans" if "in_chans" in vis and "in_channels" not in vis else "in_channels"] = v.in_channels
  if isinstance(vis.get("rope_parameters"), dict):
    vis["rope_parameters"]["rope_theta"] = v.rope_theta
  elif v.rope_theta != VISION_ROPE_THETA:
    vis["rope_parameters"] = {"rope_type": "axial", "rope_theta": v.rope_theta}

  # Latent reasoning extras ride in one field transformers keeps but ignores; their weights are in
  # LATENT_FILE, which transformers does not read, so the checkpoint still loads as plain Qwen2.5-VL.
  out.pop(LATENT_FIELD, None)
  if config.latent_start_token_id is not None:
    out[LATENT_FIELD] = {"latent_start_token_id": config.latent_start_token_id,
                         "latent_end_token_id": config.latent_end_token_id,
                         "latent_module": None if config.latent is None else dataclasses.asdict(config.latent)}

  if dtype is not None:  # stored weight dtype; update whichever spelling(s) base uses
    spots = [(d, k) for d in (out, text, vis) for k in ("dtype", "torch_dtype") if k in d]
    for d, k in spots or [(out, "dtype")]:
      d[k] = dtype
  return out
