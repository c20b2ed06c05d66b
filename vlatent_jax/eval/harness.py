"""Batched evaluation: questions -> decoded videos -> prompts -> `Model.generate` -> scores and timings.

    model, processor = load(ckpt)
    results = evaluate(model, processor, questions, mode="videolatent", num_latents=4, batch_size=8,
                       frames={"fps": 8, "max_frames": 16})

Videos are decoded ahead of the model (in worker processes with a per-video timeout when
`decode_workers` > 0), each within its question's time window (MVBench's bounds) if it has one; one that
is missing, truncated, corrupt or hangs is skipped and reported, never fatal. Decoded questions are
batched by length: within a window of `LOOKAHEAD_BATCHES` batches they are sorted by frame shape and
prompt length, so a batch holds similar videos and pads little. Each batch is padded to `batch_size`
with copies of its last question, so every batch has the same shape and the jitted generate compiles
once per video-size bucket. The first batch runs twice: the first call (compilation) is timed apart as
`warmup_seconds`. Records come back in question order.

This module imports no jax itself: decode workers import it to find their task function.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator

from vlatent_jax.data import video
from vlatent_jax.data.prompts import chat_prompt
from vlatent_jax.eval import report, scoring
from vlatent_jax.eval.readers import Question
from vlatent_jax.models.config import LATENT_MODES, MODES

DEFAULT_FRAMES = {"fps": 2.0, "max_frames": 16}  # Video-R1's sampling
# What `Model.generate` takes from the resolved settings and budget.
GENERATION_KEYS = ("mode", "num_latents", "max_new_tokens", "cot_tokens", "stop_early", "answer_sees_video")
DEFAULT_NUM_LATENTS = 8
DEFAULT_MAX_NEW_TOKENS = 16  # answers are a letter, a number or a short phrase
DEFAULT_COT_TOKENS = 256  # an untrained model made to think before answering (the inference-cost baseline)
FRAME_KEYS = ("fps", "max_frames", "num_frames")
LOOKAHEAD_BATCHES = 4  # decoded questions sorted by size together: this many batches' worth
MESH_AXES = ("data", "fsdp", "tensor")  # sharding.MESH_AXES; this module imports no jax


def parse_mesh(spec: str) -> dict[str, int]:
  """--mesh 'data=1,fsdp=8,tensor=1' -> {"data": 1, "fsdp": 8, "tensor": 1}. Axes left out keep MeshConfig's
  defaults (data -1: the devices the others leave; fsdp and tensor 1); one axis may be -1."""
  sizes = {}
  for part in spec.split(","):
    name, sep, value = (t.strip() for t in part.partition("="))
    if not sep or name not in MESH_AXES or name in sizes:
      raise ValueError(f"--mesh {spec!r}: expected comma-separated axis=size with axes {MESH_AXES}, each at most once")
    try:
      sizes[name] = int(value)
    except ValueError:
      raise ValueError(f"--mesh {spec!r}: size of axis {name!r} must be an integer, got {value!r}") from None
    if sizes[name] == 0 or sizes[name] < -1:
      raise ValueError(f"--mesh {spec!r}: axis sizes must be positive or -1")
  if list(sizes.values()).count(-1) > 1:
    raise ValueError(f"--mesh {spec!r}: at most one axis may be -1")
  return sizes


def make_mesh(spec: str):
  """--mesh spec -> a jax Mesh over all devices; a size mismatch names --mesh."""
  from vlatent_jax import sharding
  from vlatent_jax.config import ConfigError, MeshConfig

  try:
    return sharding.make_mesh(MeshConfig(**parse_mesh(spec)))
  except ConfigError as e:
    raise ValueError(f"--mesh {spec!r}: {e}") from None


def load(ckpt: str, tokenizer: str | None = None, min_pixels: int | None = None, max_pixels: int | None = None,
         dtype=None, *, mesh: str | None = None, scan_layers: bool = False):
  """(Model, VideoTextProcessor) from a vlatent_jax checkpoint or an HF Qwen2.5-VL folder.

  The per-frame pixel budget: the arguments, else the checkpoint's meta["video_processor"], else the
  preprocessor config beside the tokenizer. mesh: a --mesh spec ('data=1,fsdp=8,tensor=1'): parameters
  split over the devices (FSDP / tensor parallel), batches over data x fsdp. scan_layers: run the layers as
  one scan over stacked parameters (faster compiles; FSDP gathers one layer at a time).
  """
  import dataclasses

  import vlatent_jax
  from vlatent_jax.data.processor import VideoTextProcessor
  from vlatent_jax.models.config import ExecutionConfig

  device_mesh = None if mesh is None else make_mesh(mesh)  # before the checkpoint: a bad --mesh fails fast
  model = vlatent_jax.load(ckpt, dtype=dtype, mesh=device_mesh, execution=ExecutionConfig(scan_layers=scan_layers))
  processor = VideoTextProcessor.from_dir(tokenizer or ckpt)
  budget = {k: v for k, v in (model.meta.get("video_processor") or {}).items() if k in ("min_pixels", "max_pixels")}
  budget.update({k: v for k, v in (("min_pixels", min_pixels), ("max_pixels", max_pixels)) if v is not None})
  processor.video_config = dataclasses.replace(processor.video_config, **{k: int(v) for k, v in budget.items()})
  return model, processor


def resolve_settings(model, mode: str | None = None, num_latents: int | None = None, frames: dict | None = None,
                     default_frames: dict | None = None) -> dict:
  """Generation mode, latent steps and frame sampling: arguments, else what training stored in the checkpoint
  (meta["train"] = {"mode", "num_latents"}, meta["frames"]), else `default_frames` (a benchmark's own) and
  the model's kind (videolatent with a latent module, else sft)."""
  meta = getattr(model, "meta", None) or {}
  train = meta.get("train") or {}
  mode = mode or train.get("mode") or ("videolatent" if model.config.latent is not None else "sft")
  if mode not in MODES:
    raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
  if mode == "videolatent" and model.config.latent is None:
    raise ValueError("mode 'videolatent' needs a model with a latent injection module; this one has none "
                     "(try --mode sft or cot)")
  if mode == "continuous_thought" and model.config.latent_end_token_id is None:
    raise ValueError("mode 'continuous_thought' needs <|latent_start|>/<|latent_end|> in the model config")
  num_latents = int(num_latents or train.get("num_latents") or DEFAULT_NUM_LATENTS)
  sampling = {**DEFAULT_FRAMES, **(default_frames or {}), **(meta.get("frames") or {}),
              **{k: v for k, v in (frames or {}).items() if v is not None}}
  return {"mode": mode, "num_latents": num_latents, "frames": {k: sampling[k] for k in FRAME_KEYS if k in sampling}}


def resolve_budget(model, mode: str, max_new_tokens: int | None = None, cot_tokens: int | None = None,
                   stop_early: bool | None = None) -> dict:
  """Token and latent-step budgets: arguments, else what training stored (meta["train"]: "max_new_tokens",
  "stop_early" = latent.stop_early), else the defaults. cot_tokens is the forced minimum of reasoning tokens in
  mode cot: 0 for a model trained in mode cot (it writes its own rationale and answer, then stops),
  DEFAULT_COT_TOKENS for any other model. stop_early: end the latent steps once the model predicts
  <|latent_end|> (latent modes only; off by default). answer_sees_video: False for a model trained with
  `latent.sensory_gating` (its answers read the video only through the latents), in latent modes."""
  train = (getattr(model, "meta", None) or {}).get("train") or {}
  if cot_tokens is None:
    cot_tokens = 0 if train.get("mode") == "cot" else DEFAULT_COT_TOKENS
  if stop_early is None:
    stop_early = bool(train.get("stop_early", False))
  return {"max_new_tokens": int(max_new_tokens or train.get("max_new_tokens") or DEFAULT_MAX_NEW_TOKENS),
          "cot_tokens": int(cot_tokens) if mode == "cot" else 0,
          "stop_early": bool(stop_early) and mode in LATENT_MODES,
          "answer_sees_video": bool(train.get("answer_sees_video", True)) or mode not in LATENT_MODES}


def frame_policy(frames: dict) -> video.FramePolicy:
  return video.FramePolicy(fps=frames.get("fps"), max_frames=int(frames.get("max_frames", 16)),
                           num_frames=frames.get("num_frames"))


def decode_task(payload: tuple):
  """Runs in a decode worker (or inline): (path, policy[, window, folder_fps]) -> (uint8 frames [T,H,W,3],
  sampled fps). window: (start, end) seconds or None; folder_fps: the frame rate of a frame folder."""
  path, policy, *rest = payload
  window, folder_fps = (*rest, None, None)[:2]
  out = video.decode(path, policy, window=window, folder_fps=folder_fps)
  return out.frames, out.fps


def _payload(q: Question, policy: video.FramePolicy) -> tuple:
  return q.video, policy, q.window, q.folder_fps


def _decoded(questions: list[Question], policy: video.FramePolicy, workers: int, timeout: float | None,
             ahead: int | None = None):
  """(question, ok, (frames, fps) or (kind, message)) in question order; up to `ahead` videos decoded ahead."""
  if workers <= 0:
    for q in questions:
      try:
        yield q, True, decode_task(_payload(q, policy))
      except video.VideoError as e:  # video.decode turns every decoder failure into one; anything else is ours
        yield q, False, (e.kind, str(e))
    return
  with video.WorkerPool(decode_task, workers=workers, timeout=timeout, preload=(__name__,)) as pool:
    results = pool.imap_ordered((_payload(q, policy) for q in questions), max_ahead=ahead)
    for q, (ok, value) in zip(questions, results):
      yield q, ok, value


class _Progress:
  """A tqdm bar on a terminal; otherwise a plain line about every 5% (logs stay readable)."""

  def __init__(self, total: int, enabled: bool, stream=None):
    self.total, self.stream = total, stream or sys.stderr
    self.enabled = enabled and total > 0
    self.bar, self.shown = None, 0
    if self.enabled and self.stream.isatty():
      from tqdm import tqdm
      self.bar = tqdm(total=total, file=self.stream, unit="q", dynamic_ncols=True)

  def update(self, done: int, skipped: int, score_sum: float, seconds: float) -> None:
    if not self.enabled:
      return
    acc = score_sum / max(done - skipped, 1)
    spa = seconds / max(done - skipped, 1)
    if self.bar is not None:
      self.bar.update(done - self.bar.n)
      self.bar.set_postfix(acc=f"{acc:.3f}", skipped=skipped, s_per_q=f"{spa:.3f}")
    elif done - self.shown >= max(1, self.total // 20) or done == self.total:
      print(f"[eval] {done}/{self.total} questions, {skipped} skipped, accuracy {acc:.3f}, {spa:.3f} s/answer",
            file=self.stream, flush=True)
      self.shown = done

  def close(self) -> None:
    if self.bar is not None:
      self.bar.close()


def _inputs(processor, items) -> tuple[dict | None, list[int]]:
  """Processor outputs for the batch and the positions whose video the processor rejects."""
  def encode(group):
    texts = [chat_prompt(processor.tokenizer, q.question, q.question_type, q.options) for q, _, _ in group]
    return processor(texts, videos=[f for _, f, _ in group], fps=[fps for _, _, fps in group])
  try:
    return encode(items), []
  except ValueError:  # find the offending videos (e.g. too few pixels) and leave them out
    bad = []
    for i, item in enumerate(items):
      try:
        encode([item])
      except ValueError:
        bad.append(i)
    keep = [it for i, it in enumerate(items) if i not in bad]
    return (encode(keep) if keep else None), bad


def _size(item) -> tuple:
  """Sort key of a decoded question: frame shape, then prompt length (characters of question and options)."""
  q, frames, _ = item
  return tuple(frames.shape[:3]) + (len(q.question) + sum(len(o) for o in q.options or []),)


def _batches(decoded, batch_size: int, skip, lookahead: int = LOOKAHEAD_BATCHES) -> Iterator[list]:
  """Batches of decoded questions, grouped by size within windows of `lookahead` batches."""
  pending = []

  def flush():
    pending.sort(key=_size)
    for i in range(0, len(pending), batch_size):
      yield pending[i:i + batch_size]
    pending.clear()

  for q, ok, value in decoded:
    if not ok:
      skip(q, *value)
      continue
    pending.append((q, *value))
    if len(pending) == batch_size * max(lookahead, 1):
      yield from flush()
  yield from flush()


def evaluate(model, processor, questions: list[Question], *, mode: str | None = None, num_latents: int | None = None,
             batch_size: int = 8, frames: dict | None = None, limit: int | None = None, progress: bool = True,
             max_new_tokens: int | None = None, cot_tokens: int | None = None, decode_workers: int = 0,
             decode_timeout: float | None = 120.0, warmup: bool = True, stop_early: bool | None = None) -> dict:
  """Answers and scores `questions`; returns the summary (report.summarize) plus settings, timings and records.

  Keys: accuracy (mean score over answered questions; None if none), n, skipped, per_type {category: {n,
  accuracy}}, by_question_type, mean_latent_steps, seconds_per_answer (prompt + processor + generate +
  detokenise, per answered question, after the warm-up call), generate_seconds, warmup_seconds,
  total_seconds (everything, video decoding and compilation included), questions_per_second (answered
  questions over total_seconds), settings, records (one per answered question, in question order:
  `scoring.record` fields plus latent_steps and seconds), skipped_videos (id, video, kind, reason, line).
  stop_early: end latent steps at <|latent_end|> (default: the checkpoint's latent.stop_early, else off).
  """
  if batch_size < 1:
    raise ValueError(f"batch_size must be >= 1, got {batch_size}")
  start = time.perf_counter()
  questions = list(questions)[:limit] if limit is not None else list(questions)
  settings = resolve_settings(model, mode, num_latents, frames)
  settings.update(resolve_budget(model, settings["mode"], max_new_tokens, cot_tokens, stop_early))
  gen = {k: settings[k] for k in GENERATION_KEYS}
  records, skipped = [], []
  order = {id(q): i for i, q in enumerate(questions)}
  timing = {"generate": 0.0, "warmup": 0.0}
  bar = _Progress(len(questions), progress)

  def skip(q: Question, kind: str, reason: str) -> None:
    skipped.append({"id": q.id, "video": q.video, "kind": kind, "reason": reason, "line": q.line})
    update()

  def update() -> None:
    bar.update(len(records) + len(skipped), len(skipped), sum(r["score"] for r in records), timing["generate"])

  def generate(inputs):
    t0 = time.perf_counter()
    tokens, info = model.generate(**inputs, return_info=True, **gen)
    return processor.decode(tokens), info["latent_steps"], time.perf_counter() - t0

  decoded = _decoded(questions, frame_policy(settings["frames"]), decode_workers, decode_timeout,
                     ahead=batch_size * (LOOKAHEAD_BATCHES + 1))
  try:
    for batch in _batches(decoded, batch_size, skip):
      t0 = time.perf_counter()
      inputs, bad = _inputs(processor, batch + [batch[-1]] * (batch_size - len(batch)))
      for i in sorted({i for i in bad if i < len(batch)}):
        skip(batch[i][0], "preprocess", f"the video processor rejects the frames of {batch[i][0].video}")
      batch = [item for i, item in enumerate(batch) if i not in bad]
      if inputs is None or not batch:
        continue
      prep = time.perf_counter() - t0
      if warmup:  # the first call compiles: time it apart, then answer with a warm call
        warmup = False
        timing["warmup"] = generate(inputs)[2]
      outputs, steps, seconds = generate(inputs)
      seconds += prep
      timing["generate"] += seconds
      for (q, _, _), output, k in zip(batch, outputs, steps):
        records.append({**scoring.record(q, output), "latent_steps": int(k), "seconds": seconds / len(batch),
                        "_order": order[id(q)]})
      update()
  finally:
    decoded.close()  # stops the decode workers, also when generation fails
    bar.close()
  records.sort(key=lambda r: r.pop("_order"))
  summary = report.summarize(records, skipped)
  n = summary["n"]
  total = time.perf_counter() - start
  return {**summary,
          "seconds_per_answer": timing["generate"] / n if n else None,
          "generate_seconds": timing["generate"], "warmup_seconds": timing["warmup"],
          "total_seconds": total, "questions_per_second": n / total if n and total > 0 else None,
          "settings": {**settings, "batch_size": batch_size},
          "records": records, "skipped_videos": skipped}
