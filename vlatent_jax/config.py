"""Experiment configuration: the schema behind the ml_collections files in `configs/`.

`configs/*.py` return a `ml_collections.ConfigDict`; `parse(config)` turns it
into frozen, typed dataclasses and checks every value before any compute, so
an unknown key, a wrong type or a bad value fails naming the key. Each
sub-config is one concern: model, latent, optim, train, data, mesh, checkpoint.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from typing import Any

from vlatent_jax.models.config import (LATENT_MODES, MODES, ConfigError, ExecutionConfig, LatentModuleConfig, LLMConfig, ModelConfig,
                                       VisionConfig, require as _require)
ALIGN_TARGETS = ("mean_pool", "attention_pool", "teacher")
TRAIN_METRICS = ("loss", "answer_loss", "align_loss", "diversity_loss")


@dataclasses.dataclass(frozen=True)
class ModelSpec:
  """Either `init_from` (an HF directory or vlatent_jax checkpoint) or an inline architecture."""
  init_from: str = ""  # HF Qwen2.5-VL dir or vlatent_jax checkpoint to start from; "" = the inline architecture
  vision: dict = dataclasses.field(default_factory=dict)   # VisionConfig fields
  llm: dict = dataclasses.field(default_factory=dict)      # LLMConfig fields
  tokens: dict = dataclasses.field(default_factory=dict)   # ModelConfig token-id fields
  add_latent_tokens: bool = True  # add <|latent_start|>/<|latent_end|>/<|latent_pad|> when missing
  dtype: str = "float32"        # compute dtype: float32 | bfloat16
  param_dtype: str = "float32"  # master weights
  remat: str = "none"           # activation checkpointing per layer / block / latent step: none | full | a jax.checkpoint_policies name
  scan_layers: bool = False     # decoder layers and vision blocks as one lax.scan over stacked parameters
  attention: str = "auto"       # auto (GPU: cuDNN flash where it applies; CPU/TPU: einsum) | xla | cudnn | einsum (reference)

  def __post_init__(self):
    for key in ("dtype", "param_dtype"):
      _require(getattr(self, key) in ("float32", "bfloat16", "float16"), f"model.{key}",
               f"{getattr(self, key)!r} is not one of float32, bfloat16, float16")
    if not self.init_from:
      VisionConfig(**self.vision)
      LLMConfig(**self.llm)
    self.execution  # validates remat / scan_layers / attention

  @property
  def execution(self) -> ExecutionConfig:
    return ExecutionConfig(remat=self.remat, scan_layers=self.scan_layers, attention=self.attention)


@dataclasses.dataclass(frozen=True)
class LatentConfig:
  """Latent reasoning. `mode` picks the method; the weights switch objectives off for ablations."""
  mode: str = "videolatent"       # sft (K = 0) | continuous_thought (h_k fed back) | videolatent (LIM) | cot (rationale text)
  num_latents: int = 8            # K
  curriculum: int = 0             # Coconut stages S before the latent-only stage (needs rationales; docs/choices.md); 0 = off
  latents_per_step: int = 1       # latent steps that replace one rationale step in the curriculum (Coconut's c)
  grad_steps: int = -1            # backpropagate through the last m latent steps; -1 = all
  stop_early: bool = False        # inference: stop latent steps when <|latent_end|> is predicted
  num_heads: int = 8              # LIM cross-attention heads
  align_weight: float = 1.0       # lambda_align
  diversity_weight: float = 0.1   # lambda_div
  align_target: str = "mean_pool"  # mean_pool | attention_pool | teacher
  align_loss: str = "cosine"      # cosine | mse
  diversity_loss: str = "gram"    # gram (||Zn Zn^T - I||_F^2 / K^2) | hinge (pairwise cosine above margin)
  diversity_margin: float = 0.5  # hinge: pairwise cosine allowed before it is penalised
  end_token_loss: bool = True     # also learn to predict <|latent_end|> after the K-th latent
  sensory_gating: tuple = ()      # LaViT: (start, end) fractions of training over which answers lose the video; () = off
  trajectory_weight: float = 0.0  # LaViT: weight of KL(teacher trajectory || LIM attention) per latent step

  def __post_init__(self):
    _require(self.mode in MODES, "latent.mode", f"{self.mode!r} is not one of {MODES}")
    _require(self.num_latents >= 0, "latent.num_latents", f"must be >= 0, got {self.num_latents}")
    _require(self.mode not in LATENT_MODES or self.num_latents > 0, "latent.num_latents",
             f"mode {self.mode!r} needs at least one latent step")
    _require(self.curriculum >= 0 and self.latents_per_step > 0, "latent.curriculum",
             f"needs curriculum >= 0 and latents_per_step > 0, got {self.curriculum}, {self.latents_per_step}")
    _require(not self.curriculum or self.mode in LATENT_MODES, "latent.curriculum",
             f"the curriculum replaces rationale steps by latent steps; mode {self.mode!r} has none")
    _require(self.grad_steps >= -1, "latent.grad_steps", f"must be -1 (all) or >= 0, got {self.grad_steps}")
    _require(self.num_heads > 0, "latent.num_heads", f"must be positive, got {self.num_heads}")
    _require(self.align_target in ALIGN_TARGETS, "latent.align_target",
             f"{self.align_target!r} is not one of {ALIGN_TARGETS}")
    _require(self.align_loss in ("cosine", "mse"), "latent.align_loss", f"{self.align_loss!r} is not cosine|mse")
    _require(self.diversity_loss in ("gram", "hinge"), "latent.diversity_loss",
             f"{self.diversity_loss!r} is not gram|hinge")
    for key in ("align_weight", "diversity_weight", "trajectory_weight"):
      _require(getattr(self, key) >= 0, f"latent.{key}", f"must be >= 0, got {getattr(self, key)}")
    object.__setattr__(self, "sensory_gating", tuple(self.sensory_gating))
    if self.sensory_gating:
      _require(len(self.sensory_gating) == 2 and 0 <= self.sensory_gating[0] <= self.sensory_gating[1] <= 1,
               "latent.sensory_gating", f"needs (start, end) with 0 <= start <= end <= 1, got {self.sensory_gating}")
      _require(self.mode in LATENT_MODES, "latent.sensory_gating",
               f"gates the answer's view of the video behind latent steps; mode {self.mode!r} has none")

  @property
  def steps(self) -> int:
    """K run at inference (and in training after the curriculum): 0 without latent steps."""
    return self.num_latents if self.mode in LATENT_MODES else 0

  @property
  def uses_rationale(self) -> bool:
    """Training reads the examples' rationales: cot, and the curriculum's early stages."""
    return self.mode == "cot" or self.curriculum > 0

  @property
  def use_lim(self) -> bool:
    return self.mode == "videolatent"

  # Only VideoLatent trains the latents with alignment and diversity; the baselines ignore the weights,
  # so switching `latent.mode` alone switches method. Ablations set a weight to 0 in videolatent mode.
  @property
  def effective_align_weight(self) -> float:
    return self.align_weight if self.mode == "videolatent" else 0.0

  @property
  def effective_diversity_weight(self) -> float:
    return self.diversity_weight if self.mode == "videolatent" else 0.0

  @property
  def needs_teacher(self) -> bool:
    """Training reads a teacher's outputs beside the data (`train/teacher.py`)."""
    return (self.align_target == "teacher" and self.effective_align_weight > 0) or self.effective_trajectory_weight > 0

  @property
  def effective_trajectory_weight(self) -> float:  # the trajectory is the LIM's attention: videolatent only
    return self.trajectory_weight if self.mode == "videolatent" else 0.0


@dataclasses.dataclass(frozen=True)
class OptimConfig:
  learning_rate: float = 1e-4   # peak AdamW learning rate
  warmup_steps: int = 10        # linear warmup steps
  end_learning_rate_ratio: float = 0.1  # cosine decays to this fraction of the peak
  weight_decay: float = 0.01    # AdamW decoupled weight decay
  b1: float = 0.9               # Adam beta1
  b2: float = 0.95              # Adam beta2
  clip_norm: float = 1.0        # global gradient-norm clip
  frozen: tuple = ("vision",)  # parameter path prefixes that are not trained (no optimizer state)
  lr_scale: dict = dataclasses.field(default_factory=dict)  # {path prefix: learning-rate multiplier}, e.g. {"vision": 0.1}

  def __post_init__(self):
    object.__setattr__(self, "frozen", tuple(self.frozen))
    for part, scale in self.lr_scale.items():
      _require(isinstance(part, str) and part and isinstance(scale, (int, float)) and scale > 0,
               "optim.lr_scale", f"needs non-empty path prefixes and positive multipliers, got {part!r}: {scale!r}")
      _require(part not in ("frozen", "trainable"), "optim.lr_scale", f"{part!r} is a reserved label")
    _require(self.learning_rate > 0, "optim.learning_rate", f"must be positive, got {self.learning_rate}")
    _require(self.warmup_steps >= 0, "optim.warmup_steps", f"must be >= 0, got {self.warmup_steps}")
    _require(0 <= self.end_learning_rate_ratio <= 1, "optim.end_learning_rate_ratio", "must be in [0, 1]")
    _require(self.clip_norm > 0, "optim.clip_norm", f"must be positive, got {self.clip_norm}")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  steps: int = 100             # total training steps
  seed: int = 0                # parameter init and data shuffling
  batch_size: int = 8          # global batch (over all processes and devices)
  grad_accum_steps: int = 1    # micro-batches of batch_size / N per step (one lax.scan); gradients summed like one batch
  log_every_steps: int = 10    # metrics fetched from the device (and a plain log line off a terminal) every N steps
  eval_every_steps: int = 0   # validation losses every N steps (and at the end); 0 = never
  profile_start_step: int = 0  # first step of a jax.profiler trace window (W/profile); 0 = no trace
  profile_steps: int = 5       # steps in that window

  def __post_init__(self):
    _require(self.steps > 0, "train.steps", f"must be positive, got {self.steps}")
    _require(self.batch_size > 0, "train.batch_size", f"must be positive, got {self.batch_size}")
    _require(self.grad_accum_steps > 0 and self.batch_size % self.grad_accum_steps == 0, "train.grad_accum_steps",
             f"must be positive and divide train.batch_size={self.batch_size}, got {self.grad_accum_steps}")
    _require(self.eval_every_steps >= 0, "train.eval_every_steps", f"must be >= 0, got {self.eval_every_steps}")
    _require(self.profile_start_step >= 0 and self.profile_steps > 0, "train.profile_start_step",
             f"needs profile_start_step >= 0 and profile_steps > 0, got {self.profile_start_step}, "
             f"{self.profile_steps}")


@dataclasses.dataclass(frozen=True)
class DataConfig:
  path: str = ""            # prepared shards; empty = generate the embedded benchmark under the workdir
  val_path: str = ""        # prepared validation shards (embedded benchmark: its val split)
  max_prompt_len: int = 512   # longest prompt (tokens, video tokens and <|latent_start|> included)
  bucket_prompts: bool = True  # training batches padded to the smallest of 64, 128, ... max_prompt_len that fits (one compile each); False = always max_prompt_len
  max_answer_len: int = 16    # answer tokens incl. <|im_end|>; longer answers fail naming the example
  num_workers: int = 0        # Grain worker processes (0 = prefetch threads only)

  def __post_init__(self):
    _require(self.max_prompt_len > 0 and self.max_answer_len > 1, "data.max_answer_len",
             "prompt length must be positive and answers need at least 2 positions")


@dataclasses.dataclass(frozen=True)
class MeshConfig:
  data: int = -1    # data-parallel axis (batch split, parameters replicated); -1 = the remaining devices
  fsdp: int = 1     # fully sharded data-parallel axis (batch and parameters split)
  tensor: int = 1   # tensor-parallel axis (heads, MLP, vocabulary split)

  def __post_init__(self):
    sizes = (self.data, self.fsdp, self.tensor)
    _require(all(s == -1 or s > 0 for s in sizes), "mesh.data", f"axis sizes must be positive or -1, got {sizes}")
    _require(sum(s == -1 for s in sizes) <= 1, "mesh.data", f"at most one axis may be -1, got {sizes}")


@dataclasses.dataclass(frozen=True)
class CheckpointConfig:
  every_steps: int = 100    # orbax async save interval
  keep: int = 3             # checkpoints kept (the latest, or the best with best_metric)
  best_metric: str = ""     # e.g. "val_loss": also keep the `keep` best checkpoints by it; "" = the latest
  best_mode: str = "min"    # "min" or "max"
  export_model: bool = True  # write W/model (a vlatent_jax model checkpoint) when training ends

  def __post_init__(self):
    _require(self.every_steps > 0, "checkpoint.every_steps", f"must be positive, got {self.every_steps}")
    _require(self.keep > 0, "checkpoint.keep", f"must be positive, got {self.keep}")
    _require(self.best_mode in ("min", "max"), "checkpoint.best_mode", f"must be min or max, got {self.best_mode!r}")
    _require(not self.best_metric or self.best_metric.startswith("val_") or self.best_metric in TRAIN_METRICS,
             "checkpoint.best_metric", f"must be a training metric {TRAIN_METRICS} or a val_ metric, "
             f"got {self.best_metric!r}")


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
  model: ModelSpec = dataclasses.field(default_factory=ModelSpec)
  latent: LatentConfig = dataclasses.field(default_factory=LatentConfig)
  optim: OptimConfig = dataclasses.field(default_factory=OptimConfig)
  train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
  data: DataConfig = dataclasses.field(default_factory=DataConfig)
  mesh: MeshConfig = dataclasses.field(default_factory=MeshConfig)
  checkpoint: CheckpointConfig = dataclasses.field(default_factory=CheckpointConfig)

  def __post_init__(self):
    _require(not self.checkpoint.best_metric.startswith("val_") or self.train.eval_every_steps > 0,
             "checkpoint.best_metric", f"{self.checkpoint.best_metric!r} needs train.eval_every_steps > 0")


def _typed(cls, values: dict[str, Any], prefix: str):
  hints = typing.get_type_hints(cls)
  fields = {f.name: f for f in dataclasses.fields(cls)}
  kwargs = {}
  for key, value in values.items():
    name = f"{prefix}{key}"
    _require(key in fields, name, f"unknown key (known: {sorted(fields)})")
    hint = hints[key]
    if dataclasses.is_dataclass(hint):
      _require(isinstance(value, dict), name, f"must be a section, got {value!r}")
      value = _typed(hint, value, f"{name}.")
    else:
      expected = typing.get_origin(hint) or hint
      if expected is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
      if expected is tuple and isinstance(value, list):
        value = tuple(value)
      ok = isinstance(value, expected) and not (expected is int and isinstance(value, bool))
      _require(ok, name, f"expected {getattr(expected, '__name__', expected)}, got {type(value).__name__} {value!r}")
    kwargs[key] = value
  return cls(**kwargs)


def load_config_file(path: str):
  """An ml_collections config file (configs/*.py) -> its `get_config()` ConfigDict."""
  import importlib.util
  spec = importlib.util.spec_from_file_location(os.path.splitext(os.path.basename(path))[0], path)
  if spec is None or not os.path.isfile(path):
    raise FileNotFoundError(f"config file {path!r} not found")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def parse(config) -> ExperimentConfig:
  """ConfigDict (or plain dict) -> validated ExperimentConfig; raises ConfigError naming the key."""
  values = config.to_dict() if hasattr(config, "to_dict") else dict(config)
  return _typed(ExperimentConfig, values, "")


def model_config(spec: ModelSpec, latent: LatentConfig, base: ModelConfig | None = None) -> ModelConfig:
  """The architecture: `base` (from `init_from`) or the inline fields, with the LIM when the mode uses it."""
  if base is None:
    base = ModelConfig(vision=VisionConfig(**spec.vision), llm=LLMConfig(**spec.llm), **spec.tokens)
  if latent.steps and (base.latent_start_token_id is None or base.latent_end_token_id is None):
    raise ConfigError(f"config key 'latent.mode': {latent.mode!r} runs latent steps but the model has no "
                      "latent_start_token_id / latent_end_token_id")
  lim = LatentModuleConfig(num_heads=latent.num_heads) if latent.use_lim else None
  return dataclasses.replace(base, latent=lim)


SECTIONS = {"model": ModelSpec, "latent": LatentConfig, "optim": OptimConfig, "train": TrainConfig,
            "data": DataConfig, "mesh": MeshConfig, "checkpoint": CheckpointConfig}


def describe() -> str:
  """Markdown table of every config key with its default and the comment beside it in this file."""
  import inspect
  import re
  lines = ["| key | default | meaning |", "|---|---|---|"]
  for section, cls in SECTIONS.items():
    source = inspect.getsource(cls)
    for field in dataclasses.fields(cls):
      default = field.default if field.default is not dataclasses.MISSING else field.default_factory()
      found = re.search(rf"^\s+{field.name}: .*?#\s*(.*)$", source, re.M)
      meaning = (found.group(1) if found else "").replace("|", "\\|")
      lines.append(f"| `{section}.{field.name}` | `{default!r}` | {meaning} |")
  return "\n".join(lines)


if __name__ == "__main__":
  print(describe())
