"""Tiny random Hugging Face Qwen2.5-VL models and processor-shaped inputs, for tests.

Nothing here downloads: models are built from small configs with random
weights, saved with `save_pretrained` into a temporary directory and loaded
back through `vlatent_jax.load`, so the whole HF-directory path is exercised.

    hf_model, hf_config = build_hf_model(text={"num_key_value_heads": 1}, tie_word_embeddings=True)
    ours = load_ours(hf_model, tmp_path)
    inputs = make_inputs(hf_config, [[3, (3, 8, 12), 4], [2, (1, 4, 4), 6]], seconds=[1.0, 0.5])
    hf_logits = hf_model(**to_torch(inputs)).logits
    our_logits = ours.logits(**inputs)

`make_inputs` returns what `Qwen2_5_VLProcessor` returns for videos (numpy):
input_ids and attention_mask (left padded), pixel_values_videos,
video_grid_thw, second_per_grid_ts and mm_token_type_ids (2 at video tokens,
0 elsewhere; transformers 5.x needs it to compute the 3D rope positions).
"""

from __future__ import annotations

import copy
import math
import os
from typing import Any, Sequence

import numpy as np

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration  # noqa: E402

VOCAB = 256
BOS, PAD = 1, 0
IMAGE_TOKEN, VIDEO_TOKEN, VISION_START, VISION_END = 250, 251, 252, 253
# Ordinary text tokens are drawn from [FIRST_TEXT, IMAGE_TOKEN).
FIRST_TEXT = 3

DEFAULT_VISION = dict(depth=3, hidden_size=64, intermediate_size=96, num_heads=4, out_hidden_size=64,
                      fullatt_block_indexes=[1], window_size=56, tokens_per_second=2)
DEFAULT_TEXT = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                    num_attention_heads=4, num_key_value_heads=2, rms_norm_eps=1e-5,
                    rope_parameters={"rope_type": "default", "mrope_section": [2, 3, 3], "rope_theta": 10000.0},
                    bos_token_id=BOS, eos_token_id=None, pad_token_id=None)
DEFAULT_TOP = dict(image_token_id=IMAGE_TOKEN, video_token_id=VIDEO_TOKEN, vision_start_token_id=VISION_START,
                   vision_end_token_id=VISION_END, tie_word_embeddings=False)


def hf_config(vision: dict | None = None, text: dict | None = None, **top) -> Qwen2_5_VLConfig:
  """A tiny Qwen2_5_VLConfig: the defaults above updated with `vision`, `text` and top-level keys.

  The text config has no eos token by default, so greedy generation never stops
  early and HF's and our 20 tokens compare one to one.
  """
  v = {**DEFAULT_VISION, **(vision or {})}
  t = copy.deepcopy(DEFAULT_TEXT)
  t.update(text or {})
  return Qwen2_5_VLConfig(vision_config=v, text_config=t, **{**DEFAULT_TOP, **top})


@torch.no_grad()
def randomize_(model: torch.nn.Module, seed: int = 0, gain: float = 1.0) -> None:
  """Redraws every weight so that activations and logits are O(1) and parity is meaningful.

  Matrices (linear, conv and embedding tables): normal with std gain/sqrt(fan_in),
  i.e. 0.125 at width 64 for gain 1, so every linear map keeps unit scale and
  logits have std ~1 (HF's own 0.02 init makes all logits ~0 and hides errors).
  Biases: std 0.2. Norm weights: 1 + normal(0, 0.2).

  Why not a flat std 0.3: through the gated MLPs (act(gate(x)) * up(x)) the
  residual stream then grows ~10x per block, and float32 rounding alone moves
  HF's own logits by ~6e-4 from a float64 run of the same model, so a 1e-4
  parity bar would test conditioning, not correctness. With gain 1 HF float32
  vs float64 differ by ~1e-5.
  """
  torch.manual_seed(seed)
  for name, p in model.named_parameters():  # named_parameters() yields a tied tensor once
    if p.ndim >= 2:
      fan_in = math.prod(p.shape[1:])
      p.normal_(0.0, gain / math.sqrt(fan_in))
    elif "norm" in name or "ln_q" in name:
      p.normal_(1.0, 0.2)
    else:
      p.normal_(0.0, 0.2)


def build_hf_model(*, vision: dict | None = None, text: dict | None = None, seed: int = 0, gain: float = 1.0,
                   **top) -> tuple[Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLConfig]:
  """A tiny random float32 HF Qwen2.5-VL model in eval mode, and its config.

  Overrides: `vision` / `text` dicts update the sub-configs (e.g.
  text={"num_key_value_heads": 1, "rope_parameters": {...}}), other keywords the
  top-level config (e.g. tie_word_embeddings=True).
  """
  config = hf_config(vision, text, **top)
  torch.manual_seed(seed)
  model = Qwen2_5_VLForConditionalGeneration(config).to(torch.float32).eval()
  randomize_(model, seed, gain)
  return model, config


def save_hf(hf_model, directory) -> str:
  directory = os.fspath(directory)
  hf_model.save_pretrained(directory)
  return directory


def load_ours(hf_model, tmp_path, dtype=None):
  """Saves `hf_model` with `save_pretrained` under tmp_path and loads it with `vlatent_jax.load`."""
  import vlatent_jax

  directory = save_hf(hf_model, os.path.join(os.fspath(tmp_path), "hf_model"))
  return vlatent_jax.load(directory, dtype=dtype)


# ----------------------------------------------------------------------------------------------
# Processor-shaped inputs.

Row = Sequence[Any]  # items: int n (n random text tokens) or (t, h, w) (one video, grid in patches)


def video_tokens(grid: Sequence[int], spatial_merge_size: int = 2) -> int:
  t, h, w = grid
  return t * (h // spatial_merge_size) * (w // spatial_merge_size)


def make_inputs(config: Qwen2_5_VLConfig, rows: Sequence[Row], *, seconds: Sequence[float] | None = None,
                seed: int = 0, bos: bool = True, pad_id: int = PAD) -> dict[str, np.ndarray]:
  """A left-padded batch laid out like the HF processor's output for videos.

  rows: per batch row, a list of items; an int n is n random text tokens, a
  (t, h, w) tuple a video: `<|vision_start|>`, t*h*w/4 video tokens,
  `<|vision_end|>`. Each row starts with BOS when `bos`. seconds: one
  second_per_grid_t per video in batch order (default 1.0 each).
  Keys without videos (pixel_values_videos, video_grid_thw,
  second_per_grid_ts) are omitted for a text-only batch.
  """
  rng = np.random.default_rng(seed)
  vc = config.vision_config
  merge = vc.spatial_merge_size
  patch_dim = vc.in_channels * vc.temporal_patch_size * vc.patch_size ** 2
  sequences, grids = [], []
  for row in rows:
    ids = [BOS] if bos else []
    for item in row:
      if isinstance(item, (int, np.integer)):
        ids += rng.integers(FIRST_TEXT, config.image_token_id, int(item)).tolist()
      else:
        grid = tuple(int(x) for x in item)
        grids.append(grid)
        ids += [config.vision_start_token_id] + [config.video_token_id] * video_tokens(grid, merge)
        ids += [config.vision_end_token_id]
    sequences.append(ids)
  seq = max(len(s) for s in sequences)
  input_ids = np.full((len(rows), seq), pad_id, np.int64)
  attention_mask = np.zeros((len(rows), seq), np.int64)
  for b, ids in enumerate(sequences):
    input_ids[b, seq - len(ids):] = ids
    attention_mask[b, seq - len(ids):] = 1
  mm_token_type_ids = np.where((input_ids == config.video_token_id) & (attention_mask == 1), 2, 0).astype(np.int64)
  out = dict(input_ids=input_ids, attention_mask=attention_mask, mm_token_type_ids=mm_token_type_ids)
  if grids:
    grid_thw = np.asarray(grids, np.int64)
    n_patches = int(np.prod(grid_thw, axis=1).sum())
    out["pixel_values_videos"] = rng.standard_normal((n_patches, patch_dim)).astype(np.float32)
    out["video_grid_thw"] = grid_thw
    if seconds is None:
      seconds = [1.0] * len(grids)
    if len(seconds) != len(grids):
      raise ValueError(f"{len(seconds)} second_per_grid_ts values for {len(grids)} videos")
    out["second_per_grid_ts"] = np.asarray(seconds, np.float32)
  return out


def to_torch(inputs: dict[str, np.ndarray]) -> dict[str, "torch.Tensor"]:
  return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in inputs.items()}


@torch.no_grad()
def hf_logits(hf_model, inputs: dict[str, np.ndarray]) -> np.ndarray:
  return hf_model(**to_torch(inputs)).logits.float().numpy()


@torch.no_grad()
def hf_greedy(hf_model, inputs: dict[str, np.ndarray], max_new_tokens: int = 20) -> np.ndarray:
  """HF greedy decoding of exactly `max_new_tokens` tokens (eos stopping disabled); new tokens only."""
  out = hf_model.generate(**to_torch(inputs), max_new_tokens=max_new_tokens, min_new_tokens=max_new_tokens,
                          do_sample=False, eos_token_id=None, pad_token_id=PAD)
  return out[:, inputs["input_ids"].shape[1]:].numpy()


@torch.no_grad()
def hf_vision_features(hf_model, inputs: dict[str, np.ndarray]) -> np.ndarray:
  pixels = torch.from_numpy(inputs["pixel_values_videos"])
  grid = torch.from_numpy(inputs["video_grid_thw"])
  return hf_model.model.visual(pixels, grid_thw=grid).pooler_output.float().numpy()


@torch.no_grad()
def hf_rope_index(hf_model, inputs: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
  """HF `get_rope_index` on the batch: position_ids [3,B,S] and deltas [B]."""
  t = to_torch(inputs)
  pos, deltas = hf_model.model.get_rope_index(
      t["input_ids"], mm_token_type_ids=t["mm_token_type_ids"], video_grid_thw=t.get("video_grid_thw"),
      second_per_grid_ts=t.get("second_per_grid_ts"), attention_mask=t["attention_mask"])
  return pos.numpy(), deltas.reshape(-1).numpy()
