"""Pure-numpy port of transformers' Qwen2.5-VL video preprocessing (no torch, no transformers).

Mirrors ``Qwen2VLVideoProcessor`` (transformers 5.23, torchvision backend) so videos can be
preprocessed in data-loading workers without torch, with outputs bit-identical to HF's:

1. ``smart_resize`` picks an (h, w) divisible by ``patch_size * merge_size`` with
   ``min_pixels <= h * w <= max_pixels`` (same float/rounding arithmetic as HF).
2. Frames are resized as uint8 the way ``tvF.resize(uint8, BICUBIC, antialias=True)`` does on CPU:
   ATen's separable antialiased bicubic (Keys a=-0.5, PIL-style support), weights rounded to
   int16 fixed point, width pass then height pass, each rounded and clamped back to uint8
   (``UpSampleKernel.cpp``: ``_compute_indices_min_size_weights_aa``,
   ``_compute_index_ranges_int16_weights``, ``basic_loop_aa_{horizontal,vertical}<uint8_t>``).
   PIL's own BICUBIC uses 22-bit weights and differs by up to 2 uint8 steps in ~0.5% of pixels,
   so the ATen integer algorithm is reimplemented here instead; it is exact integer arithmetic.
   (HF run with ``device="cuda"`` resizes in float instead and may differ by 1 step.)
3. Rescale+normalise is HF's fused float32 form ``(x - mean*255) / (std*255)``.
4. Patchify: frames padded to a multiple of ``temporal_patch_size`` by repeating the last frame,
   patches ordered block-major over ``merge_size x merge_size`` blocks, each patch flattened
   as (channel, t, py, px).

Because resizing happens in uint8, ``patchify_uint8`` + ``normalize_patches`` reproduces
``process_video`` exactly, which lets shards store compact uint8 patches.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os

import numpy as np

# Qwen2_5_VLProcessor uses VideoMetadata.sampled_fps, which is 24 when no fps is known.
DEFAULT_FPS = 24.0


@dataclasses.dataclass(frozen=True)
class VideoProcessorConfig:
  patch_size: int = 14
  temporal_patch_size: int = 2
  merge_size: int = 2
  min_pixels: int = 128 * 28 * 28  # Qwen2VLVideoProcessor.size["shortest_edge"]
  max_pixels: int = 768 * 28 * 28  # Qwen2VLVideoProcessor.size["longest_edge"]
  image_mean: tuple = (0.48145466, 0.4578275, 0.40821073)
  image_std: tuple = (0.26862954, 0.26130258, 0.27577711)
  rescale_factor: float = 1 / 255

  @property
  def patch_dim(self) -> int:
    return 3 * self.temporal_patch_size * self.patch_size**2

  @classmethod
  def from_hf_dict(cls, d: dict) -> "VideoProcessorConfig":
    """From a (video_)preprocessor_config.json dict; ``min/max_pixels`` override ``size``."""
    size = d.get("size") or {}
    kw = {k: int(d[k]) for k in ("patch_size", "temporal_patch_size", "merge_size") if d.get(k) is not None}
    for key, size_key in (("min_pixels", "shortest_edge"), ("max_pixels", "longest_edge")):
      value = d.get(key) if d.get(key) is not None else size.get(size_key)
      if value is not None:
        kw[key] = int(value)
    for key in ("image_mean", "image_std"):
      if d.get(key) is not None:
        kw[key] = tuple(float(v) for v in d[key])
    if d.get("rescale_factor") is not None:
      kw["rescale_factor"] = float(d["rescale_factor"])
    return cls(**kw)

  @classmethod
  def from_pretrained_dir(cls, path) -> "VideoProcessorConfig":
    for name in ("video_preprocessor_config.json", "preprocessor_config.json"):
      file = os.path.join(os.fspath(path), name)
      if os.path.isfile(file):
        with open(file) as f:
          return cls.from_hf_dict(json.load(f))
    raise FileNotFoundError(
      f"neither video_preprocessor_config.json nor preprocessor_config.json found in {os.fspath(path)!r}"
    )


def smart_resize(height, width, factor=28, min_pixels=128 * 28 * 28, max_pixels=768 * 28 * 28) -> tuple[int, int]:
  """HF's ``smart_resize`` (same arithmetic), with explicit errors for unusable sizes."""
  if height <= 0 or width <= 0:
    raise ValueError(f"height and width must be positive, got height={height}, width={width}")
  if max(height, width) / min(height, width) > 200:
    raise ValueError(
      f"absolute aspect ratio must be smaller than 200, got height={height}, width={width} "
      f"(ratio {max(height, width) / min(height, width)})"
    )
  h_bar = round(height / factor) * factor
  w_bar = round(width / factor) * factor
  if h_bar * w_bar > max_pixels:
    beta = math.sqrt((height * width) / max_pixels)
    h_bar = max(factor, math.floor(height / beta / factor) * factor)
    w_bar = max(factor, math.floor(width / beta / factor) * factor)
  elif h_bar * w_bar < min_pixels:
    beta = math.sqrt(min_pixels / (height * width))
    h_bar = math.ceil(height * beta / factor) * factor
    w_bar = math.ceil(width * beta / factor) * factor
  return h_bar, w_bar


def _check_frames(frames, name: str = "frames") -> None:
  if not isinstance(frames, np.ndarray):
    raise ValueError(f"{name} must be a numpy array, got {type(frames).__name__}")
  if frames.dtype != np.uint8:
    raise ValueError(f"{name} must have dtype uint8, got dtype {frames.dtype} (shape {frames.shape})")
  if frames.ndim != 4 or frames.shape[-1] != 3:
    raise ValueError(f"{name} must have shape [T, H, W, 3] (RGB, channels-last), got shape {frames.shape}")
  if min(frames.shape) == 0:
    raise ValueError(f"{name} must have at least one frame and non-empty H, W, got shape {frames.shape}")


def _cubic(x: np.ndarray, a: float = -0.5) -> np.ndarray:
  # ATen HelperInterpCubic::aa_filter (Keys cubic, a=-0.5 as in PIL), evaluated in float64.
  x = np.abs(x)
  w1 = ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
  w2 = ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a
  return np.where(x < 1.0, w1, np.where(x < 2.0, w2, 0.0))


def _aa_int16_weights(in_size: int, out_size: int):
  """ATen's antialiased bicubic taps for one axis: (indices [out, K], int weights [out, K], precision)."""
  scale = in_size / out_size
  support = 2.0 * scale if scale >= 1.0 else 2.0
  max_k = int(math.ceil(support)) * 2 + 1
  invscale = 1.0 / scale if scale >= 1.0 else 1.0
  idx = np.zeros((out_size, max_k), np.int64)
  wts = np.zeros((out_size, max_k), np.float64)
  wt_max = 0.0
  for i in range(out_size):
    center = scale * (i + 0.5)
    xmin = max(int(center - support + 0.5), 0)  # C++ static_cast truncates
    xsize = min(max(min(int(center + support + 0.5), in_size) - xmin, 0), max_k)
    taps = np.arange(xmin, xmin + xsize)
    w = _cubic((taps.astype(np.float64) - center + 0.5) * invscale)
    total = np.cumsum(w)[-1] if xsize else 0.0  # sequential sum, as in the C++ loop
    if total != 0.0:
      w = w / total
      wt_max = max(wt_max, float(w.max()))
    idx[i, :xsize], idx[i, xsize:] = taps, xmin  # unused taps get weight 0
    wts[i, :xsize] = w
  precision = 0  # largest precision keeping 2 * wt_max in int16 range
  while precision < 22 and int(0.5 + wt_max * (1 << (precision + 1))) < (1 << 15):
    precision += 1
  v = wts * (1 << precision)
  return idx, np.trunc(v + np.where(v < 0, -0.5, 0.5)).astype(np.int64), precision


def _resize_axis(x: np.ndarray, out_size: int, axis: int) -> np.ndarray:
  """One separable pass over ``axis`` of a uint8 [H, W, 3] frame (ATen uint8 integer arithmetic)."""
  idx, w, precision = _aa_int16_weights(x.shape[axis], out_size)
  shape = [1, 1, 1]
  shape[axis] = out_size
  w = w.astype(np.int32)  # int32 accumulation, exactly as the C++ kernel
  acc = np.full(x.shape[:axis] + (out_size,) + x.shape[axis + 1 :], 1 << (precision - 1), np.int32)  # +0.5
  for k in range(idx.shape[1]):
    acc += np.take(x, idx[:, k], axis=axis) * w[:, k].reshape(shape)
  return np.clip(acc >> precision, 0, 255).astype(np.uint8)


def _resize_uint8(frames: np.ndarray, height: int, width: int) -> np.ndarray:
  """uint8 [T,H,W,3] -> uint8 [T,height,width,3], bit-exact with torchvision's CPU uint8 path."""
  out = np.empty((frames.shape[0], height, width, 3), np.uint8)
  for t, x in enumerate(frames):  # per frame to bound memory
    if width != x.shape[1]:  # width pass first, like ATen
      x = _resize_axis(x, width, axis=1)
    if height != x.shape[0]:
      x = _resize_axis(x, height, axis=0)
    out[t] = x
  return out


def resize_frames(frames: np.ndarray, height: int, width: int) -> np.ndarray:
  """uint8 [T,H,W,3] -> float32 [T,height,width,3] holding the uint8 values HF's resize yields."""
  _check_frames(frames)
  if height <= 0 or width <= 0:
    raise ValueError(f"height and width must be positive, got height={height}, width={width}")
  return _resize_uint8(frames, height, width).astype(np.float32)


def patchify(frames_chw_float: np.ndarray, config: VideoProcessorConfig = VideoProcessorConfig()):
  """[T, C, h, w] (any dtype) -> (patches [gt*gh*gw, C*tp*p*p], (gt, gh, gw)), HF's layout."""
  x = frames_chw_float
  if not isinstance(x, np.ndarray) or x.ndim != 4 or x.shape[0] == 0:
    raise ValueError(f"frames_chw_float must be a non-empty [T, C, h, w] array, got shape {np.shape(x)}")
  p, m, tp = config.patch_size, config.merge_size, config.temporal_patch_size
  t, c, h, w = x.shape
  if h % (p * m) or w % (p * m):
    raise ValueError(f"frames_chw_float spatial size must be divisible by {p * m}, got shape {x.shape}")
  if pad := -t % tp:  # repeat the last frame, as HF does
    x = np.concatenate([x, np.repeat(x[-1:], pad, axis=0)], axis=0)
    t += pad
  gt, gh, gw = t // tp, h // p, w // p
  x = x.reshape(gt, tp, c, gh // m, m, p, gw // m, m, p)
  x = x.transpose(0, 3, 6, 4, 7, 2, 1, 5, 8)  # gt, bh, bw, mh, mw, c, tp, py, px
  return x.reshape(gt * gh * gw, c * tp * p * p), (gt, gh, gw)


def patchify_uint8(frames: np.ndarray, config: VideoProcessorConfig = VideoProcessorConfig()):
  """uint8 [T,H,W,3] -> (uint8 patches [N, patch_dim] at the smart-resized size, grid_thw int64 [3])."""
  _check_frames(frames)
  factor = config.patch_size * config.merge_size
  h, w = smart_resize(frames.shape[1], frames.shape[2], factor, config.min_pixels, config.max_pixels)
  resized = _resize_uint8(frames, h, w)
  patches, grid = patchify(resized.transpose(0, 3, 1, 2), config)
  return np.ascontiguousarray(patches), np.asarray(grid, np.int64)


def _fused_mean_std(config: VideoProcessorConfig):
  # HF fuses rescale into normalise in float32: mean * (1 / rescale_factor), std likewise.
  scale = np.float32(1.0 / config.rescale_factor)
  mean = np.asarray(config.image_mean, np.float32) * scale
  std = np.asarray(config.image_std, np.float32) * scale
  return mean[:, None], std[:, None]


def normalize_patches(patches_uint8: np.ndarray, config: VideoProcessorConfig = VideoProcessorConfig()) -> np.ndarray:
  """uint8 patches [N, patch_dim] -> float32 normalised patches (HF's fused float32 arithmetic)."""
  x = patches_uint8
  if not isinstance(x, np.ndarray) or x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != config.patch_dim:
    raise ValueError(
      f"patches_uint8 must be a uint8 array of shape [N, {config.patch_dim}], "
      f"got dtype {getattr(x, 'dtype', type(x).__name__)} shape {np.shape(x)}"
    )
  mean, std = _fused_mean_std(config)
  out = (x.reshape(len(x), 3, -1).astype(np.float32) - mean) / std  # channel is the leading patch axis
  return out.reshape(x.shape)


def _second_per_grid(fps, config: VideoProcessorConfig) -> float:
  fps = DEFAULT_FPS if fps is None else fps
  if not (isinstance(fps, (int, float, np.integer, np.floating)) and math.isfinite(fps) and fps > 0):
    raise ValueError(f"fps must be a positive finite number, got {fps!r}")
  return config.temporal_patch_size / float(fps)


def process_video(
  frames: np.ndarray, fps: float | None = None, config: VideoProcessorConfig = VideoProcessorConfig()
) -> dict:
  """uint8 [T,H,W,3] RGB frames -> HF's pixel_values_videos / video_grid_thw / second_per_grid_ts."""
  spg = _second_per_grid(fps, config)
  patches, grid = patchify_uint8(frames, config)
  return {
    "pixel_values_videos": normalize_patches(patches, config),
    "video_grid_thw": grid[None],
    "second_per_grid_ts": np.asarray([spg], np.float32),
  }


def process_videos(
  videos: list, fps: list | None = None, config: VideoProcessorConfig = VideoProcessorConfig()
) -> dict:
  """Batch of videos -> concatenated patches, stacked grids, like HF for a list of videos."""
  if not isinstance(videos, (list, tuple)) or not videos:
    raise ValueError(f"videos must be a non-empty list of [T,H,W,3] uint8 arrays, got {type(videos).__name__}")
  if fps is None:
    fps = [None] * len(videos)
  if len(fps) != len(videos):
    raise ValueError(f"fps must have one entry per video: got {len(fps)} fps for {len(videos)} videos")
  for i, v in enumerate(videos):
    _check_frames(v, f"videos[{i}]")
  outs = [process_video(v, f, config) for v, f in zip(videos, fps)]
  return {k: np.concatenate([o[k] for o in outs], axis=0) for k in outs[0]}
