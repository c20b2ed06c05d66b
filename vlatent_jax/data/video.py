"""Video file I/O: decode frames with decord (sampled by fps, capped), encode mp4 with PyAV."""

from __future__ import annotations

import os

import numpy as np


def sample_indices(num_frames: int, native_fps: float, fps: float | None = 2.0, max_frames: int = 16,
                   num_sampled: int | None = None) -> np.ndarray:
  """Frame indices: `num_sampled` evenly spaced, else every 1/fps seconds, at most `max_frames`."""
  if num_frames <= 0:
    raise ValueError("video has no frames")
  if num_sampled is None:
    duration = num_frames / max(native_fps, 1e-6)
    num_sampled = max(1, min(max_frames, int(round(duration * fps)) if fps else max_frames, num_frames))
  return np.linspace(0, num_frames - 1, num_sampled).round().astype(np.int64)


def read_frames(path: str, fps: float | None = 2.0, max_frames: int = 16, num_sampled: int | None = None):
  """Returns (uint8 frames [T,H,W,3], sampled fps). Raises FileNotFoundError / ValueError naming the file."""
  if not os.path.isfile(path):
    raise FileNotFoundError(f"video file not found: {path}")
  import decord  # imported lazily: decord readers are per process and unpicklable

  try:
    reader = decord.VideoReader(path, num_threads=1)
    total, native = len(reader), float(reader.get_avg_fps())
    idx = sample_indices(total, native, fps, max_frames, num_sampled)
    frames = reader.get_batch(idx.tolist()).asnumpy()
  except decord.DECORDError as e:
    raise ValueError(f"cannot decode video {path}: {e}") from e
  duration = total / max(native, 1e-6)
  return frames, len(idx) / max(duration, 1e-6)


def write_mp4(frames: np.ndarray, path: str, fps: float = 8.0) -> None:
  """Encodes uint8 [T,H,W,3] frames as h264 mp4 (even H, W required by yuv420p)."""
  import av

  frames = np.asarray(frames, np.uint8)
  with av.open(path, mode="w") as container:
    stream = container.add_stream("libx264", rate=int(fps))
    stream.width, stream.height = frames.shape[2], frames.shape[1]
    stream.pix_fmt = "yuv420p"
    stream.options = {"crf": "18"}
    for frame in frames:
      for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
        container.mux(packet)
    for packet in stream.encode():
      container.mux(packet)
