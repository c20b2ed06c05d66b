"""Video decoding (decord and PyAV give the same frames), clear file errors, fallback, and the timed worker pool."""

import os
import time

import av
import numpy as np
import pytest

from vlatent_jax.data import video
from vlatent_jax.data.video import (
  FramePolicy,
  VideoError,
  WorkerPool,
  decode,
  read_frames,
  sample_indices,
  write_mp4,
)


def moving_frames(t, h, w, seed=0):
  """A drifting colour gradient with noise: motion between frames, both smooth areas and texture."""
  yy, xx = np.mgrid[:h, :w]
  rng = np.random.default_rng(seed)
  frames = [np.stack([(xx * 4 + i * 9) % 256, (yy * 3 + i * 5) % 256, ((xx + yy) * 2 + i * 13) % 256], -1)
            for i in range(t)]
  noise = rng.integers(-12, 13, (t, h, w, 3))
  return np.clip(np.asarray(frames) + noise, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
  root = tmp_path_factory.mktemp("clips")
  out = {}
  for name, (t, h, w, fps) in {"tiny": (9, 56, 56, 4), "long": (90, 56, 84, 10), "wide": (60, 120, 160, 24)}.items():
    out[name] = str(root / f"{name}.mp4")
    write_mp4(moving_frames(t, h, w), out[name], fps=fps)
  data = (root / "long.mp4").read_bytes()
  (root / "truncated.mp4").write_bytes(data[:len(data) // 2])
  (root / "corrupt.mp4").write_bytes(np.random.default_rng(0).bytes(4000))
  (root / "empty.mp4").write_bytes(b"")
  return {**out, **{name: str(root / f"{name}.mp4") for name in ("truncated", "corrupt", "empty")}}


def test_sample_indices_policy():
  np.testing.assert_array_equal(sample_indices(40, 8.0), [0, 4, 9, 13, 17, 22, 26, 30, 35, 39])  # 5 s at 2 fps
  assert len(sample_indices(3000, 30.0)) == 16                     # capped at max_frames
  assert len(sample_indices(3, 30.0)) == 1                         # at least one frame
  np.testing.assert_array_equal(sample_indices(10, 5.0, num_sampled=4), [0, 3, 6, 9])
  np.testing.assert_array_equal(FramePolicy(fps=1.0, max_frames=3).indices(100, 10.0), [0, 50, 99])


@pytest.mark.parametrize("name", ["tiny", "long", "wide"])
@pytest.mark.parametrize("policy", [FramePolicy(), FramePolicy(num_frames=7)])
def test_decord_and_pyav_give_the_same_frames(clips, name, policy):
  """Same FFmpeg decode underneath, so equal indices and equal RGB values (measured max abs diff: 0)."""
  frames_d, fps_d = video.decode_decord(clips[name], policy)
  frames_p, fps_p = video.decode_pyav(clips[name], policy)
  assert fps_d == fps_p and frames_d.shape == frames_p.shape
  np.testing.assert_array_equal(frames_d, frames_p)


def test_read_frames_and_sampled_fps(clips):
  frames, fps = read_frames(clips["long"])  # 90 frames at 10 fps = 9 s -> 18 at 2 fps, capped at 16
  assert frames.shape == (16, 56, 84, 3) and frames.dtype == np.uint8
  assert fps == pytest.approx(16 / 9)
  frames, fps = read_frames(clips["tiny"], num_sampled=3, decoder="pyav")
  assert frames.shape == (3, 56, 56, 3) and fps == pytest.approx(3 / 2.25)
  # the decoded frames are the source frames (up to h264 at crf 18)
  idx = sample_indices(9, 4.0, num_sampled=3)
  assert np.abs(frames.astype(int) - moving_frames(9, 56, 56)[idx]).mean() < 8


@pytest.mark.parametrize("decoder", video.DECODERS)
def test_clear_errors_name_the_file(clips, tmp_path, decoder):
  missing = str(tmp_path / "nope.mp4")
  with pytest.raises(FileNotFoundError, match="not found: .*nope.mp4") as e:
    decode(missing, decoder=decoder)
  assert e.value.kind == "missing"
  for name, kind in [("empty", "empty"), ("truncated", "truncated"), ("corrupt", "corrupt")]:
    with pytest.raises(VideoError) as e:
      decode(clips[name], decoder=decoder)
    assert e.value.kind == kind and clips[name] in str(e.value), str(e.value)


def test_truncated_inside_the_media_data(clips, tmp_path):
  """An mp4 with its index first ('faststart') cut short: the box walk still sees the cut."""
  src = moving_frames(20, 56, 56)
  path = tmp_path / "fast.mp4"
  with av.open(str(path), "w", options={"movflags": "faststart"}) as c:
    s = c.add_stream("libx264", rate=8)
    s.width, s.height, s.pix_fmt = 56, 56, "yuv420p"
    for f in src:
      for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
        c.mux(p)
    for p in s.encode():
      c.mux(p)
  data = path.read_bytes()
  assert data[4:8] == b"ftyp" and b"moov" in data[:200]
  path.write_bytes(data[:int(len(data) * 0.7)])
  with pytest.raises(VideoError, match="truncated video file") as e:
    decode(str(path))
  assert e.value.kind == "truncated"


def test_fallback_to_pyav_when_decord_fails(tmp_path):
  """decord 0.6 cannot open AV1; PyAV can, so decode() falls back for that file."""
  if "libsvtav1" not in av.codecs_available:
    pytest.skip("PyAV has no AV1 encoder here")
  path = str(tmp_path / "av1.mp4")
  src = moving_frames(8, 64, 64)
  with av.open(path, "w") as c:
    s = c.add_stream("libsvtav1", rate=4)
    s.width, s.height, s.pix_fmt = 64, 64, "yuv420p"
    for f in src:
      for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
        c.mux(p)
    for p in s.encode():
      c.mux(p)
  with pytest.raises(Exception, match="cannot find video stream"):  # decord.DECORDError
    video.decode_decord(path)
  out = decode(path)
  assert out.decoder == "pyav" and out.fallback_from
  np.testing.assert_array_equal(out.frames, video.decode_pyav(path)[0])
  with pytest.raises(VideoError, match="with decord"):
    decode(path, fallback=False)


def _sleep_then_echo(payload):
  seconds, value = payload
  if seconds == "hang":
    import ctypes
    ctypes.PyDLL(None).sleep(600)  # holds the GIL: only killing the process ends it
  time.sleep(seconds)
  return value


def test_pool_keeps_input_order():
  payloads = [(0.3, "a"), (0.0, "b"), (0.1, "c"), (0.0, "d"), (0.2, "e")]
  with WorkerPool(_sleep_then_echo, workers=2, timeout=30) as pool:
    assert list(pool.imap_ordered(payloads, max_ahead=3)) == [(True, v) for _, v in payloads]


def test_pool_kills_a_hung_worker_and_a_crash_is_reported():
  with WorkerPool(_sleep_then_echo, workers=2, timeout=1) as pool:
    start = time.monotonic()
    results = list(pool.imap_ordered([(0, "a"), ("hang", "b"), (0, "c"), (0, "d")]))
    assert time.monotonic() - start < 10
    assert results == [(True, "a"), (False, ("timeout", "timeout after 1s")), (True, "c"), (True, "d")]
    assert pool.restarts == 1
  with WorkerPool(os._exit, workers=1, timeout=5) as pool:  # a worker that dies mid-task (like a segfault)
    (ok, (kind, message)), = list(pool.imap_ordered([3]))
    assert not ok and kind == "crashed" and "exit code 3" in message
  with WorkerPool(_sleep_then_echo, workers=1) as pool:  # exceptions come back per task
    assert list(pool.imap_ordered([(-1, "x")])) == [(False, ("error", "ValueError: sleep length must be non-negative"))]
