"""Video file I/O: sampled RGB frames with decord (PyAV fallback), mp4 encoding, and a worker pool with timeouts.

A video is a file (mp4, webm, avi, mkv, ...: whatever FFmpeg reads) or a folder of frame images (MVBench's
tvqa `frames_fps3_hq/<clip>/00001.jpg ...`, read at `folder_fps`). A time window (start, end) in seconds
restricts sampling to that part of the video (MVBench's `start` / `end` bounds).

Decoding is what breaks on real data: decord 0.6 is unmaintained, some files
hang forever holding the GIL, others segfault. So:

- `check_file` names missing, empty and truncated files before any decoder runs
  (an ISO-BMFF box walk catches a cut-off mp4: a box that runs past EOF or no 'moov').
- `decode` tries decord, then PyAV for that file if decord fails. Both sit on
  FFmpeg and give the same frames: equal indices (same frame count and fps) and,
  measured on 8-bit h264/h265/vp9/mpeg4/ffv1 files (56x56 to 640x360, BT.601/709,
  limited/full range), identical RGB values (max abs diff 0). 10-bit sources
  differ (decord's FFmpeg 4 converts them differently from PyAV's FFmpeg 7).
- `WorkerPool` runs decoding in worker processes, one task each at a time, and
  kills a worker whose task overruns its deadline (SIGKILL works while a C call
  holds the GIL), then starts a replacement. Workers open their own readers.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import struct
import time
from collections.abc import Callable, Iterable, Iterator
from multiprocessing.connection import wait
from typing import Any

import numpy as np

DECODERS = ("decord", "pyav")
_ISO_BOXES = {b"ftyp", b"styp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pdin", b"sidx", b"uuid", b"moof",
              b"mfra", b"meta", b"emsg", b"prft"}


class VideoError(ValueError):
  """A video that cannot be used; `kind` (missing, empty, truncated, corrupt, window) groups reasons in reports."""

  def __init__(self, kind: str, message: str):
    super().__init__(message)
    self.kind = kind


class VideoNotFoundError(VideoError, FileNotFoundError):
  """A missing file: also a FileNotFoundError, as callers of read_frames expect."""


Window = tuple[float | None, float | None] | None  # (start, end) in seconds; None: the whole video
FRAME_FOLDER_FPS = 3.0  # frame folders without a stated rate: MVBench's tvqa frames_fps3_hq
FRAME_EXTENSIONS = (".jpg", ".jpeg", ".png")


@dataclasses.dataclass(frozen=True)
class FramePolicy:
  """Which frames to take: `num_frames` evenly spaced, else one every 1/fps s, at most `max_frames` (Video-R1)."""
  fps: float | None = 2.0
  max_frames: int = 16
  num_frames: int | None = None

  def indices(self, total: int, native_fps: float, window: Window = None) -> np.ndarray:
    return sample_indices(total, native_fps, self.fps, self.max_frames, self.num_frames, window)


@dataclasses.dataclass
class Decoded:
  frames: np.ndarray          # uint8 [T, H, W, 3]
  fps: float                  # sampled frames per second of video
  decoder: str                # the decoder that produced the frames
  fallback_from: str | None = None  # decord's error when PyAV stepped in


def frame_range(num_frames: int, native_fps: float, window: Window = None) -> tuple[int, int]:
  """First and last frame index of `window` (seconds) in a video of `num_frames` frames at `native_fps`:
  round(start * fps) .. round(end * fps), clipped to the video (as MVBench's get_index bounds them)."""
  if num_frames <= 0:
    raise ValueError("video has no frames")
  start, end = window if window is not None else (None, None)
  first = 0 if start is None else max(0, int(round(float(start) * native_fps)))
  last = num_frames - 1 if end is None else min(num_frames - 1, int(round(float(end) * native_fps)))
  if first > last:
    raise VideoError("window", f"time window {start}..{end} s holds no frame of a {num_frames}-frame video at "
                               f"{native_fps:g} fps ({num_frames / max(native_fps, 1e-6):.2f} s)")
  return first, last


def sample_indices(num_frames: int, native_fps: float, fps: float | None = 2.0, max_frames: int = 16,
                   num_sampled: int | None = None, window: Window = None) -> np.ndarray:
  """Frame indices: `num_sampled` evenly spaced, else every 1/fps seconds, at most `max_frames`; within
  `window` (seconds) when given."""
  first, last = frame_range(num_frames, native_fps, window)
  span = last - first + 1
  if num_sampled is None:
    duration = span / max(native_fps, 1e-6)
    num_sampled = max(1, min(max_frames, int(round(duration * fps)) if fps else max_frames, span))
  return first + np.linspace(0, span - 1, num_sampled).round().astype(np.int64)


def _sampled_fps(num_sampled: int, total: int, native_fps: float, window: Window = None) -> float:
  first, last = frame_range(total, native_fps, window)
  return num_sampled / max((last - first + 1) / max(native_fps, 1e-6), 1e-6)


def check_file(path: str) -> None:
  """Raises VideoError (kind missing / empty / truncated) naming `path`; other files pass to the decoders."""
  if not os.path.exists(path):
    raise VideoNotFoundError("missing", f"video file not found: {path}")
  if os.path.isdir(path):
    frame_files(path)  # a frame folder: it must hold frames
    return
  if not os.path.isfile(path):
    raise VideoError("missing", f"video path is not a file: {path}")
  size = os.path.getsize(path)
  if size == 0:
    raise VideoError("empty", f"empty video file (0 bytes): {path}")
  with open(path, "rb") as f:
    pos, boxes = 0, set()
    while pos + 8 <= size:
      f.seek(pos)
      length, box = struct.unpack(">I4s", f.read(8))
      if box not in _ISO_BOXES:
        if boxes:
          break  # unknown data after valid boxes: leave it to the decoders
        return  # not ISO-BMFF (webm, avi, random bytes): the decoders judge it
      if length == 1:
        length = struct.unpack(">Q", f.read(8))[0]
      elif length == 0:
        length = size - pos  # box runs to EOF
      if length < 8:
        break
      if pos + length > size:
        raise VideoError("truncated", f"truncated video file {path}: '{box.decode()}' box at byte {pos} needs "
                                      f"{length} bytes, only {size - pos} remain")
      boxes.add(box)
      pos += length
    else:
      if b"moov" not in boxes and b"moof" not in boxes:
        raise VideoError("truncated", f"truncated video file {path}: no 'moov' box (file cut before the index)")


def _short(err: BaseException) -> str:
  """decord errors carry C++ stack traces; keep the line that says what went wrong."""
  lines = [l.strip() for l in str(err).splitlines() if l.strip()]
  pick = next((l for l in lines if "ERROR" in l or "Error" in l or "failed" in l), lines[0] if lines else "")
  return f"{type(err).__name__}: {pick}"[:300]


def decode_decord(path: str, policy: FramePolicy = FramePolicy(), window: Window = None) -> tuple[np.ndarray, float]:
  import decord  # per process: decord readers are unpicklable

  reader = decord.VideoReader(path, num_threads=1)
  total, native = len(reader), float(reader.get_avg_fps())
  if total <= 0:
    raise VideoError("corrupt", f"video has no frames: {path}")
  idx = policy.indices(total, native, window)
  frames = reader.get_batch(idx.tolist()).asnumpy()
  del reader
  if frames.dtype != np.uint8 or frames.ndim != 4 or len(frames) != len(idx):
    raise VideoError("corrupt", f"decord returned frames of shape {frames.shape} for {len(idx)} indices: {path}")
  return frames, _sampled_fps(len(idx), total, native, window)


def decode_pyav(path: str, policy: FramePolicy = FramePolicy(), window: Window = None) -> tuple[np.ndarray, float]:
  """Decodes sequentially up to the last sampled frame (no seeks: slower on long videos, but robust).

  Frame count and fps follow decord: the stream's frame count (else its packet
  count) and its average frame rate, so both pick the same indices.
  """
  import av

  try:
    with av.open(path) as container:
      if not container.streams.video:
        raise VideoError("corrupt", f"no video stream in {path}")
      stream = container.streams.video[0]
      total = stream.frames
      if total <= 0:
        total = sum(1 for p in container.demux(stream) if p.size)
        container.seek(0)
      rate = stream.average_rate or stream.guessed_rate
      native = float(rate) if rate else 0.0
      if total <= 0:
        raise VideoError("corrupt", f"video has no frames: {path}")
      idx = policy.indices(total, native, window)
      wanted: dict[int, list[int]] = {}
      for pos, i in enumerate(idx.tolist()):
        wanted.setdefault(i, []).append(pos)
      out: list[np.ndarray | None] = [None] * len(idx)
      decoded, last = 0, int(idx.max())
      for i, frame in enumerate(container.decode(stream)):
        decoded = i + 1
        if i in wanted:
          rgb = frame.to_ndarray(format="rgb24")
          for pos in wanted[i]:
            out[pos] = rgb
        if i >= last:
          break
  except VideoError:
    raise
  except Exception as e:  # av.error.* (InvalidDataError, ...), OSError
    raise VideoError("corrupt", f"cannot decode video {path} with PyAV: {_short(e)}") from e
  if any(f is None for f in out):
    raise VideoError("truncated", f"truncated video {path}: decoded {decoded} of {total} frames")
  return np.stack(out), _sampled_fps(len(idx), total, native, window)


def frame_files(folder: str) -> list[str]:
  """The frame images of a frame folder in frame order (names sorted by their digits, then as text)."""
  names = [n for n in os.listdir(folder) if n.lower().endswith(FRAME_EXTENSIONS)]
  if not names:
    raise VideoError("empty", f"frame folder holds no {'/'.join(FRAME_EXTENSIONS)} images: {folder}")
  def key(name):
    digits = "".join(c for c in os.path.splitext(name)[0] if c.isdigit())
    return (int(digits) if digits else -1, name)
  return [os.path.join(folder, n) for n in sorted(names, key=key)]


def decode_folder(path: str, policy: FramePolicy = FramePolicy(), window: Window = None,
                  folder_fps: float = FRAME_FOLDER_FPS) -> tuple[np.ndarray, float]:
  """A folder of frame images read as a video at `folder_fps` (the i-th image in frame order is frame i)."""
  from PIL import Image, UnidentifiedImageError

  files = frame_files(path)
  idx = policy.indices(len(files), folder_fps, window)
  frames = []
  for i in idx.tolist():
    try:
      with Image.open(files[i]) as image:
        frames.append(np.asarray(image.convert("RGB"), np.uint8))
    except (OSError, UnidentifiedImageError) as e:
      raise VideoError("corrupt", f"cannot read frame {files[i]}: {_short(e)}") from e
  if len({f.shape for f in frames}) > 1:
    raise VideoError("corrupt", f"frames of different sizes in {path}: {sorted({f.shape for f in frames})}")
  return np.stack(frames), _sampled_fps(len(idx), len(files), folder_fps, window)


_DECODE_FNS = {"decord": decode_decord, "pyav": decode_pyav}


def decode(path: str, policy: FramePolicy = FramePolicy(), decoder: str = "decord", fallback: bool = True,
           window: Window = None, folder_fps: float | None = None) -> Decoded:
  """Sampled frames of `path` (a video file or a frame folder), within `window` (seconds) when given; with
  decoder="decord" and `fallback`, PyAV retries a file decord fails on. folder_fps: the frame rate of a
  frame folder (default FRAME_FOLDER_FPS)."""
  if decoder not in DECODERS:
    raise ValueError(f"decoder must be one of {DECODERS}, got {decoder!r}")
  check_file(path)
  if os.path.isdir(path):
    return Decoded(*decode_folder(path, policy, window, folder_fps or FRAME_FOLDER_FPS), "frames")
  try:
    return Decoded(*_DECODE_FNS[decoder](path, policy, window), decoder)
  except VideoError as e:
    if e.kind == "window":  # the bounds, not the file: another decoder would say the same
      raise
    first = e
  except Exception as e:  # decord.DECORDError, av.error.*, ...
    first = VideoError("corrupt", f"cannot decode video {path} with {decoder}: {_short(e)}")
  if decoder == "pyav" or not fallback:
    raise first
  try:
    return Decoded(*decode_pyav(path, policy, window), "pyav", fallback_from=str(first))
  except VideoError as e:
    raise VideoError(e.kind, f"{e} (decord failed first: {first})") from e


def read_frames(path: str, fps: float | None = 2.0, max_frames: int = 16, num_sampled: int | None = None,
                decoder: str = "decord", window: Window = None, folder_fps: float | None = None):
  """Returns (uint8 frames [T,H,W,3], sampled fps) of a video file or frame folder, within `window`
  ((start, end) seconds, either may be None) when given. Raises FileNotFoundError / ValueError naming the file."""
  out = decode(path, FramePolicy(fps, max_frames, num_sampled), decoder, window=window, folder_fps=folder_fps)
  return out.frames, out.fps


H264_OPTIONS = {"crf": "18"}  # libx264 settings of write_mp4 (everything else at x264's defaults)


def write_mp4(frames: np.ndarray, path: str, fps: float = 8.0) -> None:
  """Encodes uint8 [T,H,W,3] frames as h264 mp4 (even H, W required by yuv420p)."""
  import av

  frames = np.asarray(frames, np.uint8)
  with av.open(path, mode="w") as container:
    stream = container.add_stream("libx264", rate=int(fps))
    stream.width, stream.height = frames.shape[2], frames.shape[1]
    stream.pix_fmt = "yuv420p"
    stream.options = dict(H264_OPTIONS)
    for frame in frames:
      for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
        container.mux(packet)
    for packet in stream.encode():
      container.mux(packet)


def h264_round_trip(frames: np.ndarray, fps: float = 8.0, gop: int | None = None) -> np.ndarray:
  """uint8 [N,H,W,3] frames through write_mp4's codec and back (RGB as decode_pyav returns it), in memory.

  One h264 stream for many clips, much cheaper than a file each: with `gop` = frames per clip (scene cuts
  off) every clip starts at a key frame and references nothing before it, so each clip decodes as if
  encoded alone, up to rate-control details. One encoder thread: same bytes on every machine, and the
  callers run one process per core. Colour conversion reuses one swscale context per direction (PyAV
  builds a new one per frame otherwise, which costs more than the encoding).
  """
  import fractions

  import av
  from av.video.reformatter import VideoReformatter

  frames = np.asarray(frames, np.uint8)
  encoder = av.CodecContext.create("libx264", "w")
  encoder.width, encoder.height, encoder.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
  encoder.time_base, encoder.framerate = fractions.Fraction(1, int(fps)), fractions.Fraction(int(fps))
  keys = {} if gop is None else {"g": str(gop), "keyint_min": str(gop), "sc_threshold": "0"}
  encoder.options = {**H264_OPTIONS, **keys, "threads": "1"}
  to_yuv, to_rgb = VideoReformatter(), VideoReformatter()
  packets = []
  for i, rgb in enumerate(frames):
    frame = to_yuv.reformat(av.VideoFrame.from_ndarray(rgb, format="rgb24"), format="yuv420p")
    frame.pts = i
    packets += encoder.encode(frame)
  packets += encoder.encode(None)
  decoder = av.CodecContext.create("h264", "r")
  out = np.empty_like(frames)
  n = 0
  for packet in packets + [None]:
    for frame in decoder.decode(packet):
      out[n] = to_rgb.reformat(frame, format="rgb24").to_ndarray()
      n += 1
  if n != len(frames):
    raise VideoError("corrupt", f"h264 round trip returned {n} of {len(frames)} frames")
  return out


def _die_with_parent() -> None:
  """Linux: a worker hung in C must not outlive a SIGKILLed run. The kernel kills it when its parent, the
  forkserver, exits; that happens once no process holds the forkserver's 'alive' pipe, which every child
  inherits, so the worker drops its copy and the pipe dies with the main process."""
  try:
    import ctypes
    import signal
    from multiprocessing import forkserver

    server = getattr(forkserver, "_forkserver", None)
    if getattr(server, "_forkserver_alive_fd", None) is not None:
      os.close(server._forkserver_alive_fd)
      server._forkserver_alive_fd = None
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
  except (OSError, AttributeError):
    pass


def _worker_main(conn, fn: Callable[[Any], Any]) -> None:
  """Worker loop: announce readiness, then answer (key, ok, value) for each (key, payload) until None/EOF."""
  _die_with_parent()
  conn.send("ready")
  while True:
    try:
      msg = conn.recv()
    except (EOFError, OSError):
      return
    if msg is None:
      return
    key, payload = msg
    try:
      reply = (key, True, fn(payload))
    except VideoError as e:
      reply = (key, False, (e.kind, str(e)))
    except Exception as e:  # reported per task; the worker lives on
      reply = (key, False, ("error", f"{type(e).__name__}: {e}"))
    conn.send(reply)


@dataclasses.dataclass
class _Slot:
  proc: Any
  conn: Any
  ready: bool = False
  key: int | None = None
  deadline: float = float("inf")


class WorkerPool:
  """`workers` processes running `fn(payload)` (a module-level function), each task under `timeout` seconds.

  Workers come from a forkserver (spawn where there is none), never a fork of
  this process: the parent may hold tokenizer threads, and decord state must not
  be shared. The forkserver imports this module and `preload` once (this
  process's first pool sets them), so a worker, or its replacement after a
  timeout, starts in milliseconds. A task's timer starts when it is handed to a
  worker that has finished starting.
  """

  def __init__(self, fn: Callable[[Any], Any], workers: int = 1, timeout: float | None = None,
               preload: Iterable[str] = ()):
    if workers < 1:
      raise ValueError(f"workers must be >= 1, got {workers}")
    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    self._ctx = multiprocessing.get_context(method)
    if method == "forkserver":  # applies when this process starts its forkserver (its first pool)
      self._ctx.set_forkserver_preload([__name__, *preload])
    self.fn, self.timeout = fn, timeout
    self.restarts = 0
    self._slots = [self._start() for _ in range(workers)]

  def _start(self) -> _Slot:
    parent, child = self._ctx.Pipe()
    proc = self._ctx.Process(target=_worker_main, args=(child, self.fn), daemon=True)
    proc.start()
    child.close()
    return _Slot(proc, parent)

  def _replace(self, i: int) -> None:
    slot = self._slots[i]
    if slot.proc.is_alive():
      slot.proc.kill()
    slot.proc.join()
    slot.conn.close()
    self._slots[i] = self._start()
    self.restarts += 1

  def imap_ordered(self, payloads: Iterable[Any], max_ahead: int | None = None) -> Iterator[tuple[bool, Any]]:
    """Yields (True, result) or (False, (kind, message)) per payload, in input order.

    At most `max_ahead` tasks run or wait beyond the oldest unfinished one, which
    bounds memory whatever the scheduling. A task past its deadline gets
    ("timeout", "timeout after Ns"); one whose worker dies gets ("crashed", ...).
    """
    max_ahead = max_ahead or 4 * len(self._slots)
    source = iter(payloads)
    done: dict[int, tuple[bool, Any]] = {}
    sent = next_out = 0
    exhausted = False
    while True:
      for slot in self._slots:
        if exhausted or sent >= next_out + max_ahead:
          break
        if slot.ready and slot.key is None:
          try:
            payload = next(source)
          except StopIteration:
            exhausted = True
            break
          slot.key = sent
          slot.deadline = time.monotonic() + self.timeout if self.timeout else float("inf")
          sent += 1
          try:
            slot.conn.send((slot.key, payload))
          except OSError:  # the worker died since its last message; _poll reports and replaces it
            pass
      if next_out in done:  # yield what is ready in order, then dispatch again before waiting
        while next_out in done:
          yield done.pop(next_out)
          next_out += 1
        continue
      if exhausted and next_out == sent:
        return
      self._poll(done)

  def _poll(self, done: dict[int, tuple[bool, Any]]) -> None:
    deadline = min(s.deadline for s in self._slots)
    wait_s = None if deadline == float("inf") else max(0.0, deadline - time.monotonic())
    wait([s.conn for s in self._slots] + [s.proc.sentinel for s in self._slots], wait_s)
    now = time.monotonic()
    for i, slot in enumerate(self._slots):
      try:
        while slot.conn.poll():
          msg = slot.conn.recv()
          if msg == "ready":
            slot.ready = True
          else:
            key, ok, value = msg
            done[key] = (ok, value)
            slot.key, slot.deadline = None, float("inf")
      except (EOFError, OSError):
        pass
      if not slot.proc.is_alive():
        if not slot.ready:
          raise RuntimeError(f"decode worker failed to start (exit code {slot.proc.exitcode})")
        if slot.key is not None:
          done[slot.key] = (False, ("crashed", f"decode worker died (exit code {slot.proc.exitcode})"))
        self._replace(i)
      elif slot.key is not None and now >= slot.deadline:
        done[slot.key] = (False, ("timeout", f"timeout after {self.timeout:g}s"))
        self._replace(i)

  def close(self) -> None:
    for slot in self._slots:
      if slot.key is None and slot.proc.is_alive():
        try:
          slot.conn.send(None)
        except OSError:
          pass
    for slot in self._slots:
      slot.proc.join(timeout=5 if slot.key is None else 0)
      if slot.proc.is_alive():
        slot.proc.kill()
        slot.proc.join()
      slot.conn.close()

  def __enter__(self) -> WorkerPool:
    return self

  def __exit__(self, *exc) -> None:
    self.close()
