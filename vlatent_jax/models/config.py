"""Typed model configuration: vision tower, decoder LLM and their composition.

Config is data: frozen dataclasses, validated on construction so that a bad
value fails before any array is allocated. Field names follow the Hugging
Face Qwen2.5-VL config so that the mapping in `convert/hf_config.py` is short.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from vlatent_jax.errors import ConfigError, require  # noqa: F401  (callers import both from here too)


# The one list of reasoning modes, shared by training, inference and evaluation:
#   sft                 answer straight after the prompt (K = 0)
#   continuous_thought  K latent steps feeding the last hidden state back (Coconut)
#   videolatent         K latent steps through the latent injection module (+ alignment, diversity in training)
#   cot                 explicit rationale text, then the answer (the Video-R1 stand-in)
MODES = ("sft", "continuous_thought", "videolatent", "cot")
LATENT_MODES = ("continuous_thought", "videolatent")


@dataclasses.dataclass(frozen=True)
class VisionConfig:
  depth: int = 32
  hidden_size: int = 1280
  intermediate_size: int = 3420
  num_heads: int = 16
  in_channels: int = 3
  patch_size: int = 14
  temporal_patch_size: int = 2
  spatial_merge_size: int = 2
  window_size: int = 112
  out_hidden_size: int = 2048
  fullatt_block_indexes: tuple[int, ...] = (7, 15, 23, 31)
  tokens_per_second: float = 2.0
  rope_theta: float = 10000.0
  hidden_act: str = "silu"
  rms_norm_eps: float = 1e-6
  initializer_range: float = 0.02  # std of the random initialisation only; converted weights ignore it

  def __post_init__(self):
    object.__setattr__(self, "fullatt_block_indexes", tuple(self.fullatt_block_indexes))
    for key in ("depth", "hidden_size", "intermediate_size", "num_heads", "in_channels",
                "patch_size", "temporal_patch_size", "spatial_merge_size", "out_hidden_size"):
      require(isinstance(getattr(self, key), int) and getattr(self, key) > 0,
               f"vision.{key}", f"must be a positive int, got {getattr(self, key)!r}")
    require(self.hidden_size % self.num_heads == 0, "vision.num_heads",
             f"hidden_size {self.hidden_size} is not divisible by {self.num_heads} heads")
    require(self.head_dim % 4 == 0, "vision.num_heads", "head_dim must be divisible by 4 (2D rotary)")
    merge_patch = self.spatial_merge_size * self.patch_size
    require(self.window_size % merge_patch == 0 and self.window_size > 0, "vision.window_size",
             f"{self.window_size} must be a positive multiple of patch_size*spatial_merge_size={merge_patch}")
    require(all(0 <= i < self.depth for i in self.fullatt_block_indexes), "vision.fullatt_block_indexes",
             f"{self.fullatt_block_indexes} must index blocks in [0, {self.depth})")
    require(self.hidden_act in ACTIVATIONS, "vision.hidden_act", f"unsupported {self.hidden_act!r}")
    require(self.initializer_range > 0, "vision.initializer_range", f"must be > 0, got {self.initializer_range!r}")

  @property
  def head_dim(self) -> int:
    return self.hidden_size // self.num_heads

  @property
  def patch_dim(self) -> int:
    return self.in_channels * self.temporal_patch_size * self.patch_size ** 2

  @property
  def merge_unit(self) -> int:
    return self.spatial_merge_size ** 2

  @property
  def window_merged(self) -> int:
    """Window side length in merged (2x2) units."""
    return self.window_size // self.spatial_merge_size // self.patch_size

  @property
  def window_patches(self) -> int:
    """Patch slots of one whole window in the vision layout (models/vision.py)."""
    return self.window_merged ** 2 * self.merge_unit


@dataclasses.dataclass(frozen=True)
class LLMConfig:
  vocab_size: int = 151936
  hidden_size: int = 2048
  intermediate_size: int = 11008
  num_hidden_layers: int = 36
  num_attention_heads: int = 16
  num_key_value_heads: int = 2
  rope_theta: float = 1000000.0
  mrope_section: tuple[int, ...] = (16, 24, 24)
  rms_norm_eps: float = 1e-6
  hidden_act: str = "silu"
  tie_word_embeddings: bool = True
  max_position_embeddings: int = 128000
  initializer_range: float = 0.02  # std of the random initialisation (latent module included) only

  def __post_init__(self):
    object.__setattr__(self, "mrope_section", tuple(self.mrope_section))
    for key in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                "num_attention_heads", "num_key_value_heads"):
      require(isinstance(getattr(self, key), int) and getattr(self, key) > 0,
               f"llm.{key}", f"must be a positive int, got {getattr(self, key)!r}")
    require(self.hidden_size % self.num_attention_heads == 0, "llm.num_attention_heads",
             f"hidden_size {self.hidden_size} is not divisible by {self.num_attention_heads} heads")
    require(self.num_attention_heads % self.num_key_value_heads == 0, "llm.num_key_value_heads",
             f"{self.num_attention_heads} query heads are not a multiple of {self.num_key_value_heads} kv heads")
    require(len(self.mrope_section) == 3 and sum(self.mrope_section) * 2 == self.head_dim,
             "llm.mrope_section", f"{self.mrope_section} must have 3 parts summing to head_dim/2={self.head_dim // 2}")
    require(self.hidden_act in ACTIVATIONS, "llm.hidden_act", f"unsupported {self.hidden_act!r}")
    require(self.initializer_range > 0, "llm.initializer_range", f"must be > 0, got {self.initializer_range!r}")

  @property
  def head_dim(self) -> int:
    return self.hidden_size // self.num_attention_heads


@dataclasses.dataclass(frozen=True)
class LatentModuleConfig:
  """The latent injection module (models/latent.py); present only in latent-enabled models."""
  num_heads: int = 8
  rms_norm_eps: float = 1e-6

  def __post_init__(self):
    require(isinstance(self.num_heads, int) and self.num_heads > 0, "latent.num_heads",
             f"must be a positive int, got {self.num_heads!r}")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  vision: VisionConfig = dataclasses.field(default_factory=VisionConfig)
  llm: LLMConfig = dataclasses.field(default_factory=LLMConfig)
  latent: LatentModuleConfig | None = None
  latent_start_token_id: int | None = None
  latent_end_token_id: int | None = None
  image_token_id: int = 151655
  video_token_id: int = 151656
  vision_start_token_id: int = 151652
  vision_end_token_id: int = 151653
  bos_token_id: int | None = 151643
  eos_token_id: int | tuple[int, ...] | None = 151645
  pad_token_id: int | None = None

  def __post_init__(self):
    require(self.vision.out_hidden_size == self.llm.hidden_size, "vision.out_hidden_size",
             f"{self.vision.out_hidden_size} must equal llm.hidden_size {self.llm.hidden_size}")
    for key in ("image_token_id", "video_token_id", "vision_start_token_id", "vision_end_token_id"):
      value = getattr(self, key)
      require(isinstance(value, int) and 0 <= value < self.llm.vocab_size, key,
               f"{value!r} is outside the vocabulary [0, {self.llm.vocab_size})")
    if self.latent is not None:
      require(self.llm.hidden_size % self.latent.num_heads == 0, "latent.num_heads",
               f"{self.latent.num_heads} must divide llm.hidden_size {self.llm.hidden_size}")
      for key in ("latent_start_token_id", "latent_end_token_id"):
        value = getattr(self, key)
        require(isinstance(value, int) and 0 <= value < self.llm.vocab_size, key,
                 f"a latent-enabled model needs this token in the vocabulary, got {value!r}")
    if isinstance(self.eos_token_id, list):
      object.__setattr__(self, "eos_token_id", tuple(self.eos_token_id))

  @property
  def eos_token_ids(self) -> tuple[int, ...]:
    if self.eos_token_id is None:
      return ()
    return self.eos_token_id if isinstance(self.eos_token_id, tuple) else (self.eos_token_id,)

  def to_dict(self) -> dict[str, Any]:
    return dataclasses.asdict(self)

  @classmethod
  def from_dict(cls, d: dict[str, Any]) -> "ModelConfig":
    d = dict(d)
    vision = VisionConfig(**_known(VisionConfig, d.pop("vision", {}), "vision"))
    llm = LLMConfig(**_known(LLMConfig, d.pop("llm", {}), "llm"))
    latent = d.pop("latent", None)
    latent = None if latent is None else LatentModuleConfig(**_known(LatentModuleConfig, latent, "latent"))
    return cls(vision=vision, llm=llm, latent=latent, **_known(cls, d, ""))


def _known(cls, d: dict[str, Any], prefix: str) -> dict[str, Any]:
  names = {f.name for f in dataclasses.fields(cls)}
  unknown = sorted(set(d) - names)
  if unknown:
    where = f"{prefix}." if prefix else ""
    raise ConfigError(f"config key '{where}{unknown[0]}': unknown key (known: {sorted(names)})")
  return d


ACTIVATIONS = ("silu", "gelu", "gelu_pytorch_tanh", "quick_gelu")


# Remat policies a config may name: no recompute, everything recomputed, or a no-argument policy of
# `jax.checkpoint_policies` (what the backward pass may keep instead of recomputing).
REMAT_POLICIES = ("none", "full", "dots_saveable", "dots_with_no_batch_dims_saveable", "checkpoint_dots",
                  "checkpoint_dots_with_no_batch_dims", "everything_saveable", "nothing_saveable")
ATTENTION_IMPLS = ("auto", "xla", "cudnn", "einsum")


@dataclasses.dataclass(frozen=True)
class ExecutionConfig:
  """How a model computes, not what it computes: none of it changes the function or the checkpoint.

  remat        activation checkpointing of each decoder layer, vision block and latent step
  scan_layers  decoder layers and vision blocks as one `lax.scan` over stacked parameters: one compiled
               layer body (fast compiles at 36 layers) and the FSDP all-gather per layer inside the scan
  attention    auto (GPU: `jax.nn.dot_product_attention`'s choice, cuDNN flash in bf16; elsewhere the
               einsum), "xla" or "cudnn" (`jax.nn.dot_product_attention`), "einsum" (the float32-softmax
               reference, HF's eager attention)
  """
  remat: str = "none"
  scan_layers: bool = False
  attention: str = "auto"

  def __post_init__(self):
    require(self.remat in REMAT_POLICIES, "model.remat", f"{self.remat!r} is not one of {REMAT_POLICIES}")
    require(isinstance(self.scan_layers, bool), "model.scan_layers", f"must be a bool, got {self.scan_layers!r}")
    require(self.attention in ATTENTION_IMPLS, "model.attention",
            f"{self.attention!r} is not one of {ATTENTION_IMPLS}")
