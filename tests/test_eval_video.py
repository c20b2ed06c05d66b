"""Frames for evaluation: a time window (MVBench's start / end), frame-folder videos (tvqa) and webm / avi files,
through `video.read_frames` and the harness's decode task. Frame i of each test video is grey level 10 * i."""

import os

import av
import numpy as np
import pytest
from PIL import Image

from vlatent_jax.data import video
from vlatent_jax.eval import harness

FPS, N = 10, 20  # 2 s of video


def _encode(path, codec):
  """Frame i is grey 10 * i; 64 px wide (decord's stride handling needs it), 10 fps."""
  with av.open(str(path), "w") as container:
    stream = container.add_stream(codec, rate=FPS)
    stream.width, stream.height, stream.pix_fmt = 64, 32, "yuv420p"
    stream.bit_rate = 4_000_000  # near-lossless: grey levels survive within 3
    for i in range(N):
      frame = av.VideoFrame.from_ndarray(np.full((32, 64, 3), 10 * i, np.uint8), format="rgb24")
      for packet in stream.encode(frame):
        container.mux(packet)
    for packet in stream.encode():
      container.mux(packet)
  return str(path)


def _levels(frames):
  return [int(round(float(f.mean()))) for f in frames]


@pytest.mark.parametrize("name, codec", [("clip.mp4", "libx264"), ("ssv2.webm", "libvpx-vp9"), ("ntu.avi", "mpeg4")])
@pytest.mark.parametrize("decoder", ["decord", "pyav"])
def test_window_on_video_files(tmp_path, name, codec, decoder):
  path = _encode(tmp_path / name, codec)
  # window 0.5 .. 1.5 s at 10 fps: frames round(5) = 5 .. round(15) = 15 (11 frames); 4 evenly spaced in it:
  # 5 + round([0, 3.33, 6.67, 10]) = 5, 8, 12, 15 -> grey 50, 80, 120, 150
  out = video.decode(path, video.FramePolicy(fps=None, max_frames=4), decoder, fallback=False, window=(0.5, 1.5))
  assert out.decoder == decoder
  assert np.allclose(_levels(out.frames), [50, 80, 120, 150], atol=3)
  assert out.fps == pytest.approx(4 / 1.1)  # 4 frames over the window's 11 frames = 1.1 s
  # 2 frames per second of a 1.1 s window: round(2.2) = 2 frames, its first and last (5, 15)
  frames, fps = video.read_frames(path, fps=2.0, max_frames=16, decoder=decoder, window=(0.5, 1.5))
  assert np.allclose(_levels(frames), [50, 150], atol=3) and fps == pytest.approx(2 / 1.1)
  # an open end: from 1.0 s (frame 10) to the last frame (19), 10 frames, all of them at max_frames 16
  frames, _ = video.read_frames(path, fps=None, max_frames=16, decoder=decoder, window=(1.0, None))
  assert np.allclose(_levels(frames), [100, 110, 120, 130, 140, 150, 160, 170, 180, 190], atol=3)


def test_window_outside_the_video_is_reported_not_retried(tmp_path):
  path = _encode(tmp_path / "clip.mp4", "libx264")
  with pytest.raises(video.VideoError, match="holds no frame") as e:
    video.read_frames(path, window=(5.0, 6.0))
  assert e.value.kind == "window" and "decord failed first" not in str(e.value)


def test_frame_folder(tmp_path):
  folder = tmp_path / "castle_s07e04_seg02_clip_14"
  os.makedirs(folder)
  for i in range(1, 13):  # 1.jpg .. 12.jpg: sorted by number, not as text (10 after 9)
    Image.fromarray(np.full((24, 32, 3), 10 * i, np.uint8)).save(folder / f"{i}.jpg")
  # 12 frames at 3 fps = 4 s; window 0.4 .. 1.4 s: frames round(1.2) = 1 .. round(4.2) = 4 -> images 2 .. 5
  frames, fps = video.read_frames(str(folder), fps=None, max_frames=8, window=(0.4, 1.4), folder_fps=3.0)
  assert frames.shape == (4, 24, 32, 3) and frames.dtype == np.uint8
  assert np.allclose(_levels(frames), [20, 30, 40, 50], atol=2) and fps == pytest.approx(3.0)
  frames, _ = video.read_frames(str(folder), fps=None, max_frames=3)  # whole folder: frames 0, 6, 11 (5.5 -> 6)
  assert np.allclose(_levels(frames), [10, 70, 120], atol=2)
  # the harness's decode task carries window and frame rate to the workers
  frames, fps = harness.decode_task((str(folder), video.FramePolicy(fps=None, max_frames=2), (0.0, 1.0), 6.0))
  assert np.allclose(_levels(frames), [10, 70], atol=2) and fps == pytest.approx(2 / (7 / 6))
  os.makedirs(tmp_path / "empty")
  with pytest.raises(video.VideoError, match="no .jpg") as e:
    video.read_frames(str(tmp_path / "empty"))
  assert e.value.kind == "empty"


def test_decode_task_without_window_keeps_old_payload(tmp_path):
  path = _encode(tmp_path / "clip.mp4", "libx264")
  frames, fps = harness.decode_task((path, video.FramePolicy(fps=None, max_frames=2)))
  assert np.allclose(_levels(frames), [0, 190], atol=3) and fps == pytest.approx(1.0)
