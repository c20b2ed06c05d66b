"""Stage-1 (pretraining) corpus: perception and answer formats from clips of the benchmark's own renderer.

A tiny VLM fine-tuned straight on the embedded benchmark must learn to see
colours, shapes, digits, places, time and motion from a few thousand questions
that each need several of them at once. Before that it reads this corpus: clips
of the six task renderers (round-robin), never any QA split's clip, each with

  a dense description, "Describe the video." (free-form), every object in time order with its colour,
  shape or digit, quadrant and motion (frame numbers are asked separately: every target token costs):
      red square top-left; blue circle bottom-right
      yellow digit 7 top-right; white digit 2 bottom-left
      green circle moves left; white square moves down
      red square top-left, slides to top-right, slides to bottom-right
  and QUESTIONS_PER_CLIP single-fact perception questions of different random kinds, naming their object
  by what singles it out, answered with the fact itself (free-form), or, where the embedded benchmark
  asks with options in a fixed order (quadrants, directions), with the option's letter:
      colour     What colour is the square shown at frame 3?        (free-form)                      -> red
      order      What colour is the second shape?                   (free-form)                      -> blue
      quadrant   Where is the red square at frame 7?                the four QUADRANTS in order      -> B
      digit      Which digit is shown at frame 11?                  (numerical)                      -> 7
      shape      What shape is shown at frame 9?                    (free-form)                      -> circle
      direction  Which way does the green circle move?              the four DIRECTIONS in order     -> A
      frames     In which frames is the blue circle shown?          (free-form)                      -> 9-11
  A closed-vocabulary fact (colour, order, shape, digit) is asked CHOICE_SHARE of the time with the
  answer among up to 3 other values, shuffled, and answered with its letter, as the benchmark's color_order
  asks: matching a fact to shuffled options is a skill of its own, which fine-tuning alone (300 steps)
  does not learn.

Answers are balanced (option letters uniform, digits reweighted to uniform). Clip i
draws from `np.random.default_rng((seed, crc32(b"pretrain"), i, attempt))`, a stream
no QA split uses; a clip whose raw digest is excluded (the benchmark's
video_digests.txt, the held-out perception set's) or already in the corpus is
redrawn with the next attempt.

Outputs: ArrayRecord shards written directly (no mp4, no manifest) in
`prepare`'s record format with a `spec.json` that `pipeline.make_dataset`
reads, and `build_perception_eval`, a small held-out perception set in the
embedded benchmark's layout for reporting accuracy per kind. Clips go through
the benchmark's h264 settings (`video.h264_round_trip`, 64 clips a stream, one
key frame per clip), so fine-tuning meets no new domain. Workers (spawn; they
never import jax) render, encode, decode, patchify and tokenise; the parent
writes shards in clip order, so the output does not depend on the worker count.

    python -m vlatent_jax.data.pretrain_corpus --bench DIR --out DIR --clips N [--seed S] [--workers W]
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import hashlib
import json
import math
import multiprocessing
import os
import shutil
import time
import typing
import zlib

import numpy as np

from vlatent_jax.data import preprocess, render, synthetic, video
from vlatent_jax.data.prepare import file_sha256
from vlatent_jax.data.prompts import OPTION_LETTERS, user_text
from vlatent_jax.data.render import DIRECTIONS, QUADRANTS, Event
from vlatent_jax.data.synthetic import noun

KINDS = ("colour", "order", "quadrant", "digit", "shape", "direction", "frames")
DESCRIBE = "Describe the video."
MC, NUM, FREE = "multiple choice", "numerical", "free-form"
CHUNK = 64  # clips per h264 stream, and per worker task
QUESTIONS_PER_CLIP = 2  # perception questions beside the description: each clip is decoded once, read thrice
CHOICE_SHARE = 0.5  # share of closed-vocabulary facts asked with shuffled options instead of free-form
MAX_ATTEMPTS = 100
PRETRAIN_STREAM, EVAL_STREAM = zlib.crc32(b"pretrain"), zlib.crc32(b"perception_eval")
VIDEO_TOKEN, END_TOKEN = "<|video_pad|>", "<|im_end|>"
SPEC_VERSION = 1
_ORDINALS = ("first", "second", "third", "fourth", "fifth")
_ALL = tuple(synthetic.TASKS)
KIND_TASKS = {  # tasks whose clips can answer each kind (the held-out set cycles through them)
    "colour": _ALL, "order": ("color_order", "count_events", "sum_digits"),
    "quadrant": ("unvisited_quadrant", "final_position"), "digit": ("sum_digits",),
    "shape": tuple(t for t in _ALL if t != "sum_digits"), "direction": ("direction",),
    "frames": ("color_order", "count_events", "sum_digits", "unvisited_quadrant")}


class Text(typing.NamedTuple):
  question: str
  answer: str
  options: list[str] | None
  question_type: str
  kind: str


# ---------------------------------------------------------------------------- texts from a scene


def _slides(task: str) -> bool:
  return task == "final_position"  # the other stay task jumps


def describe(task: str, events: list[Event]) -> str:
  """Every object with its colour, shape or digit, quadrant and motion, in time order (the order is the
  description's; frame numbers are left to the `frames` questions: every target token costs compute)."""
  parts = []
  for e in sorted(events, key=lambda e: e.first):
    if isinstance(e.motion, str):
      parts.append(f"{noun(e)} moves {e.motion}")
    elif e.motion:
      (first, _, _), *rest = e.motion
      verb = "slides" if _slides(task) else "jumps"
      parts.append(", ".join([f"{noun(e)} {first}"] + [f"{verb} to {q}" for q, _, _ in rest]))
    else:
      parts.append(f"{noun(e)} {e.start}")
  return "; ".join(parts)


def _pick(rng, items: list):
  return items[int(rng.integers(len(items)))] if items else None


def _alone_at(e: Event, events: list[Event], rng) -> int | None:
  """A frame where `e` is the only object on screen, if there is one."""
  return _pick(rng, [t for t in range(e.first, e.last + 1) if sum(o.first <= t <= o.last for o in events) == 1])


def _thing(e: Event) -> str:
  return e.what if e.kind == "shape" else "digit"


def _colour(task, events, rng) -> Text | None:
  e = _pick(rng, events)
  t = _alone_at(e, events, rng)
  if t is not None:
    question = f"What colour is the {_thing(e)} shown at frame {t}?"
  elif isinstance(e.motion, str):  # two shapes move all clip long, in different directions
    question = f"What colour is the {_thing(e)} that moves {e.motion}?"
  else:
    return None
  return Text(question, e.color, None, FREE, "colour")


def _order(task, events, rng) -> Text | None:
  """The colour of the k-th object shown (objects shown one at a time): temporal order."""
  if any(e.motion for e in events) or len(events) < 2:
    return None
  events = sorted(events, key=lambda e: e.first)
  k = int(rng.integers(len(events)))
  last = k == len(events) - 1 and rng.random() < 0.5
  thing = "shape" if events[k].kind == "shape" else "digit"
  return Text(f"What colour is the {'last' if last else _ORDINALS[k]} {thing}?", events[k].color, None, FREE, "order")


def _shape(task, events, rng) -> Text | None:
  e = _pick(rng, [e for e in events if e.kind == "shape"])
  if e is None:
    return None
  t = _alone_at(e, events, rng)
  if t is not None:
    question = f"What shape is shown at frame {t}?"
  elif sum(o.color == e.color for o in events) == 1:
    question = f"What shape is the {e.color} object?"
  else:
    return None
  return Text(question, e.what, None, FREE, "shape")


def _quadrant(task, events, rng) -> Text | None:
  """Only objects resting inside a quadrant: a free object's centre may sit on a midline."""
  e = _pick(rng, [e for e in events if isinstance(e.motion, tuple)])
  if e is None:
    return None
  k = int(rng.integers(len(e.motion)))
  q, t0, t1 = e.motion[k]
  rest = t0 + (min(render.SLIDE_FRAMES, t1 - t0) if _slides(task) and k else 0)  # after sliding in
  t = int(rng.integers(rest, t1 + 1))
  return Text(f"Where is the {noun(e)} at frame {t}?", OPTION_LETTERS[QUADRANTS.index(q)], list(QUADRANTS), MC,
              "quadrant")


def _digit_acceptance() -> np.ndarray:
  """sum_digits draws a uniform sum, then a uniform split: 0 and 9 come ~2x as often as 4 or 5. Asking about
  digit d with probability min(p) / p(d) makes the asked digits uniform."""
  p = np.zeros(10)
  for total in range(19):
    lo, hi = max(0, total - 9), min(9, total)
    p[lo:hi + 1] += 1 / (19 * (hi - lo + 1))  # either digit: first and total - first share this law
  return p.min() / p


_DIGIT_ACCEPT = _digit_acceptance()
# a kind few tasks can answer is drawn more often (digit also makes up for the questions it rejects)
_KIND_WEIGHTS = {k: 1 / len(ts) / (_DIGIT_ACCEPT.mean() if k == "digit" else 1) for k, ts in KIND_TASKS.items()}


def _digit(task, events, rng) -> Text | None:
  e = _pick(rng, [e for e in events if e.kind == "digit"])
  if e is None or rng.random() >= _DIGIT_ACCEPT[e.what]:
    return None
  t = _alone_at(e, events, rng)
  return None if t is None else Text(f"Which digit is shown at frame {t}?", str(e.what), None, NUM, "digit")


def _direction(task, events, rng) -> Text | None:
  e = _pick(rng, [e for e in events if isinstance(e.motion, str)])
  if e is None:
    return None
  return Text(f"Which way does the {noun(e)} move?", OPTION_LETTERS[DIRECTIONS.index(e.motion)], list(DIRECTIONS),
              MC, "direction")


def _frames(task, events, rng) -> Text | None:
  if any(isinstance(e.motion, str) for e in events):
    return None  # moving objects span the clip
  events = sorted(events, key=lambda e: e.first)
  e = _pick(rng, events)
  if isinstance(e.motion, tuple):
    if _slides(task):
      return None  # a stay starts while sliding in: its first frame is a matter of convention
    q, t0, t1 = _pick(rng, [s for s in e.motion if sum(o[0] == s[0] for o in e.motion) == 1])
    return Text(f"In which frames is the {noun(e)} in the {q}?", f"{t0}-{t1}", None, FREE, "frames")
  if sum(noun(o) == noun(e) for o in events) == 1:
    name = noun(e)
  else:  # two alike (count_events may repeat one): by their order
    name = f"{_ORDINALS[events.index(e)]} {'shape' if e.kind == 'shape' else 'digit'}"
  return Text(f"In which frames is the {name} shown?", f"{e.first}-{e.last}", None, FREE, "frames")


# Facts with a closed vocabulary, which a question may offer as shuffled options.
CHOICES = {"colour": render.COLORS, "order": render.COLORS, "shape": render.SHAPES,
           "digit": tuple(str(d) for d in render.GLYPHS)}


def with_options(text: Text, rng) -> Text:
  """The same fact asked as multiple choice: the answer and up to 3 other values of its kind, shuffled, answered
  with the answer's letter (as the benchmark's color_order asks)."""
  others = [v for v in CHOICES[text.kind] if v != text.answer]
  distractors = [others[int(i)] for i in rng.choice(len(others), size=min(3, len(others)), replace=False)]
  options, letter = synthetic.mc_options(rng, text.answer, distractors)
  return text._replace(answer=letter, options=options, question_type=MC)


PERCEIVE = {"colour": _colour, "order": _order, "quadrant": _quadrant, "digit": _digit, "shape": _shape,
            "direction": _direction, "frames": _frames}


def description(task: str, events: list[Event]) -> Text:
  return Text(DESCRIBE, describe(task, events), None, FREE, "describe")


def perception(task: str, events: list[Event], rng, kind: str | None = None, skip: tuple = (),
               options_share: float = 0.0) -> Text | None:
  """One perception question of `kind`, or (None) of a random kind this clip can answer (not in `skip`): kinds
  few tasks can answer (digit, direction) are drawn more often, so that every kind gets a similar share. A
  closed-vocabulary fact is offered with shuffled options with probability `options_share`."""
  if kind is not None:
    text = PERCEIVE[kind](task, events, rng)
  else:
    kinds = [k for k in KINDS if task in KIND_TASKS[k] and k not in skip] or [k for k in KINDS if k not in skip]
    weights = np.array([_KIND_WEIGHTS[k] for k in kinds])
    for i in rng.choice(len(kinds), size=len(kinds), replace=False, p=weights / weights.sum()):
      text = PERCEIVE[kinds[int(i)]](task, events, rng)
      if text is not None:
        break
    else:
      raise ValueError(f"no perception question fits this {task} clip: {events}")
  if text is not None and text.kind in CHOICES and options_share and rng.random() < options_share:
    return with_options(text, rng)
  return text


def all_questions(task: str, events: list[Event], rng) -> list[Text]:
  """The description and one question of every kind the clip can answer (the tokenizer's corpus)."""
  texts = [PERCEIVE[kind](task, events, rng) for kind in KINDS]
  return [description(task, events)] + [t for t in texts if t is not None]


# ---------------------------------------------------------------------------- clips


def draw_clip(task: str, key: tuple, frames: int, size: int, excluded) -> tuple:
  """(video, events, rng after drawing, digest) of the first attempt whose video no set in `excluded` holds."""
  for attempt in range(MAX_ATTEMPTS):
    rng = np.random.default_rng((*key, attempt))
    with render.recording() as events:
      clip = synthetic.TASKS[task](rng, frames=frames, size=size)[0]
    digest = synthetic.digest(clip)
    if not any(digest in s for s in excluded):
      return clip, events, rng, digest
  raise RuntimeError(f"{task} clip {key}: {MAX_ATTEMPTS} attempts all drew excluded videos")


class ChatTemplate:
  """The tokenizer folder's chat template rendered as transformers renders it (jinja2, trim/lstrip blocks),
  without importing transformers (seconds, and torch) in every worker."""

  def __init__(self, tokenizer_dir: str):
    path = os.path.join(tokenizer_dir, "chat_template.jinja")
    if os.path.isfile(path):
      with open(path) as f:
        source = f.read()
    else:
      with open(os.path.join(tokenizer_dir, "tokenizer_config.json")) as f:
        source = json.load(f)["chat_template"]
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    self.template = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True).from_string(source)

  def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=True) -> str:
    return self.template.render(messages=messages, add_generation_prompt=add_generation_prompt)


class Tokens:
  """prompt_ids and answer_ids as `prepare.PromptBuilder` builds them, with the `tokenizers` library alone."""

  def __init__(self, tokenizer_dir: str, merge_size: int):
    from tokenizers import Tokenizer

    self.tokenizer = Tokenizer.from_file(os.path.join(tokenizer_dir, "tokenizer.json"))
    self.merge_size = merge_size
    sentinel = "\x00question\x00"
    content = [{"type": "video"}, {"type": "text", "text": sentinel}]
    rendered = ChatTemplate(tokenizer_dir).apply_chat_template([{"role": "user", "content": content}])
    self.head, self.tail = rendered.split(sentinel)  # the user text goes in verbatim
    self.end_id = self.tokenizer.token_to_id(END_TOKEN)

  def prompt_ids(self, text: Text, grid) -> np.ndarray:
    count = int(np.prod(grid)) // self.merge_size ** 2
    prompt = self.head.replace(VIDEO_TOKEN, VIDEO_TOKEN * count) + user_text(
        text.question, text.question_type, text.options) + self.tail
    return np.asarray(self.tokenizer.encode(prompt, add_special_tokens=False).ids, np.int32)

  def answer_ids(self, answer: str) -> np.ndarray:
    return np.asarray(self.tokenizer.encode(answer, add_special_tokens=False).ids + [self.end_id], np.int32)


# ---------------------------------------------------------------------------- worker side

_WORKER: dict = {}


def _init(settings: dict) -> None:
  _WORKER.clear()
  _WORKER.update(settings, tokens=Tokens(settings["tokenizer_dir"], settings["processor"].merge_size))


def _chunk(job: tuple) -> list[dict]:
  """Clips [start, stop): drawn (skipping `extra` digests too), one h264 stream, patches and token ids."""
  start, stop, extra = job
  w = _WORKER
  frames, size, taken, clips = w["frames"], w["size"], set(extra), []
  for i in range(start, stop):
    task = _ALL[i % len(_ALL)]
    clip, events, rng, digest = draw_clip(task, (w["seed"], PRETRAIN_STREAM, i), frames, size,
                                          (w["exclude"], taken))
    taken.add(digest)
    texts = [description(task, events)]
    for _ in range(QUESTIONS_PER_CLIP):  # of different kinds
      texts.append(perception(task, events, rng, skip=tuple(t.kind for t in texts), options_share=CHOICE_SHARE))
    clips.append({"index": i, "task": task, "digest": digest, "video": clip, "texts": texts})
  decoded = video.h264_round_trip(np.concatenate([c.pop("video") for c in clips]), w["fps"], gop=frames)
  for c, clip in zip(clips, decoded.reshape(len(clips), frames, *decoded.shape[1:])):
    c["patches"], c["grid"] = preprocess.patchify_uint8(clip, w["processor"])
    c["ids"] = [(w["tokens"].prompt_ids(t, c["grid"]), w["tokens"].answer_ids(t.answer)) for t in c["texts"]]
  return clips


# ---------------------------------------------------------------------------- parent side


def shard_name(k: int, n: int) -> str:
  return f"shard-{k:05d}-of-{n:05d}.array_record"


def _results(jobs: list, settings: dict, workers: int):
  """Chunk results in job order; at most 2 chunks ahead per worker (bounded memory)."""
  if workers < 1:
    _init(settings)
    yield from map(_chunk, jobs)
    return
  with multiprocessing.get_context("spawn").Pool(workers, _init, (settings,)) as pool:
    pending = collections.deque()
    for job in jobs:
      pending.append(pool.apply_async(_chunk, (job,)))
      if len(pending) >= 2 * workers:
        yield pending.popleft().get()
    while pending:
      yield pending.popleft().get()


def build_corpus(out_dir: str, tokenizer_dir: str, *, clips: int, seed: int, exclude=(), frames: int = 16,
                 size: int = 56, fps: int = 8, workers: int = 2, shard_size: int = 1024) -> dict:
  """Writes `clips` x (description + perception) records as ArrayRecord shards, spec.json and the clips'
  video_digests.txt into `out_dir`; returns a summary."""
  from array_record.python.array_record_module import ArrayRecordWriter

  from vlatent_jax.data import records  # flax: parent only

  if clips < 1 or shard_size < 1 or seed < 0:
    raise ValueError(f"need clips >= 1, shard_size >= 1 and seed >= 0; got {clips=}, {shard_size=}, {seed=}")
  start_time = time.time()
  tokenizer_dir = os.path.abspath(tokenizer_dir)
  processor = preprocess.VideoProcessorConfig.from_pretrained_dir(tokenizer_dir)
  exclude = frozenset(exclude)
  settings = {"tokenizer_dir": tokenizer_dir, "processor": processor, "seed": seed, "frames": frames,
              "size": size, "fps": fps, "exclude": exclude}
  inputs = {"version": SPEC_VERSION, "record_version": records.VERSION, "clips": clips, "seed": seed,
            "frames": frames, "size": size, "fps": fps, "shard_size": shard_size, "chunk": CHUNK,
            "exclude": hashlib.sha256("\n".join(sorted(exclude)).encode()).hexdigest(),
            "tokenizer": sorted((n, file_sha256(os.path.join(tokenizer_dir, n))) for n in os.listdir(tokenizer_dir)
                                if os.path.isfile(os.path.join(tokenizer_dir, n)))}
  fingerprint = hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:16]

  os.makedirs(out_dir, exist_ok=True)
  records_per_clip = 1 + QUESTIONS_PER_CLIP
  n_shards = math.ceil(records_per_clip * clips / shard_size)
  names = [shard_name(k, n_shards) for k in range(n_shards)]
  stale = [f for f in os.listdir(out_dir) if f.startswith("shard-") and f not in names]
  if stale:
    raise FileExistsError(f"{out_dir} holds shards of another corpus ({stale[0]}, ...): use a new folder")
  if os.path.exists(os.path.join(out_dir, "spec.json")):
    os.remove(os.path.join(out_dir, "spec.json"))  # readers trust the shards only once the new spec is written
  jobs = [(s, min(s + CHUNK, clips), frozenset()) for s in range(0, clips, CHUNK)]
  seen, counts, lengths, written, redrawn = set(), collections.Counter(), {"prompt": 0, "answer": 0}, 0, 0
  writer = None

  def finish(k):  # a shard appears under its name once complete
    writer.close()
    os.replace(os.path.join(out_dir, names[k] + ".tmp"), os.path.join(out_dir, names[k]))
  for job, result in zip(jobs, _results(jobs, settings, workers)):
    extra = job[2]
    while clash := {c["digest"] for c in result} & seen:  # a clip of an earlier chunk: redraw here (rare)
      extra = extra | clash
      redrawn += len(clash)
      _init(settings)
      result = _chunk((job[0], job[1], extra))
    for c in result:
      seen.add(c["digest"])
      for text, (prompt_ids, answer_ids) in zip(c["texts"], c["ids"]):
        if written % shard_size == 0:
          if writer is not None:
            finish(written // shard_size - 1)
          writer = ArrayRecordWriter(os.path.join(out_dir, names[written // shard_size] + ".tmp"), "group_size:1")
        meta = {"id": f"pretrain_{c['index']:06d}_{text.kind}", "clip": c["index"], "question": text.question,
                "answer": text.answer, "options": text.options, "question_type": text.question_type,
                "task": c["task"], "kind": text.kind}
        writer.write(records.encode({
            "patches": c["patches"], "video_grid_thw": c["grid"][None],
            "second_per_grid_ts": [processor.temporal_patch_size / fps], "prompt_ids": prompt_ids,
            "answer_ids": answer_ids, "meta": meta}))
        written += 1
        counts[text.kind] += 1
        lengths["prompt"] = max(lengths["prompt"], len(prompt_ids))
        lengths["answer"] = max(lengths["answer"], len(answer_ids))
  finish(n_shards - 1)
  spec = {"version": SPEC_VERSION, "format": "array_record", "fingerprint": fingerprint, "source": "pretrain_corpus",
          "tokenizer": tokenizer_dir, "processor": dataclasses.asdict(processor), "fps": float(fps),
          "max_frames": frames, "num_frames": None, "frame_policy": f"{fps:g} fps, at most {frames} frames",
          "shards": [{"path": name, "count": min(shard_size, records_per_clip * clips - k * shard_size)}
                     for k, name in enumerate(names)],
          "num_records": written, "counts": dict(sorted(counts.items())),
          "max_lengths": {**lengths, "reasoning": 0}, "options": inputs}
  with open(os.path.join(out_dir, "spec.json"), "w") as f:
    json.dump(spec, f, indent=1, sort_keys=True)
  with open(os.path.join(out_dir, synthetic.DIGESTS_FILE), "w") as f:
    f.writelines(d + "\n" for d in sorted(seen))
  seconds = time.time() - start_time
  return {"out_dir": os.path.abspath(out_dir), "clips": clips, "records": written, "shards": n_shards,
          "counts": spec["counts"], "redrawn_across_chunks": redrawn, "seconds": round(seconds, 2),
          "clips_per_second": round(clips / max(seconds, 1e-9), 1)}


def build_perception_eval(out_dir: str, tokenizer_dir: str | None = None, *, count: int, seed: int, exclude=(),
                          frames: int = 16, size: int = 56, fps: int = 8) -> dict:
  """A held-out perception set in the embedded benchmark's layout (test.jsonl, videos/, benchmark.json,
  video_digests.txt; the tokenizer copied in when given): kinds in turn, `task` = the kind; every second round
  asks the closed-vocabulary kinds with shuffled options instead, as task `<kind>_options`."""
  os.makedirs(os.path.join(out_dir, "videos"), exist_ok=True)
  rows, digests, exclude = [], set(), frozenset(exclude)
  for i in range(count):
    kind = KINDS[i % len(KINDS)]
    task = KIND_TASKS[kind][(i // len(KINDS)) % len(KIND_TASKS[kind])]
    offered = kind in CHOICES and (i // len(KINDS)) % 2 == 1
    taken = set(digests)
    for _ in range(MAX_ATTEMPTS):  # a clip that cannot answer the kind (a rejected digit) is redrawn too
      clip, events, rng, digest = draw_clip(task, (seed, EVAL_STREAM, i), frames, size, (exclude, taken))
      text = perception(task, events, rng, kind, options_share=float(offered))
      if text is not None:
        break
      taken.add(digest)
    else:
      raise RuntimeError(f"no {kind} question for perception clip {i}")
    digests.add(digest)
    ex_id = f"perception_{i:05d}"
    row = {"id": ex_id, "video": f"videos/{ex_id}.mp4", "question": text.question, "answer": text.answer}
    if text.options is not None:
      row["options"] = text.options
    rows.append({**row, "question_type": text.question_type, "task": f"{kind}_options" if offered else kind})
    video.write_mp4(clip, os.path.join(out_dir, row["video"]), fps)
  with open(os.path.join(out_dir, "test.jsonl"), "w") as f:
    f.writelines(json.dumps(row) + "\n" for row in rows)
  with open(os.path.join(out_dir, synthetic.DIGESTS_FILE), "w") as f:
    f.writelines(d + "\n" for d in sorted(digests))
  if tokenizer_dir is not None:
    shutil.copytree(tokenizer_dir, os.path.join(out_dir, "tokenizer"), dirs_exist_ok=True)
  bench = {"name": "vlatent_jax held-out perception questions", "seed": seed,
           "video": {"frames": frames, "height": size, "width": size, "fps": fps, "codec": "h264 (libx264, yuv420p)",
                     "read_with": {"fps": fps, "max_frames": frames}},
           "splits": {"test": {"count": len(rows), "file": "test.jsonl",
                               "tasks": dict(collections.Counter(r["task"] for r in rows))}},
           "tasks": {**{kind: {"from": list(KIND_TASKS[kind])} for kind in KINDS},
                     **{f"{kind}_options": {"from": list(KIND_TASKS[kind])} for kind in CHOICES}},
           "tokenizer": "tokenizer" if tokenizer_dir is not None else None}
  with open(os.path.join(out_dir, "benchmark.json"), "w") as f:
    json.dump(bench, f, indent=2)
  return {"out_dir": os.path.abspath(out_dir), "count": len(rows), "tasks": bench["splits"]["test"]["tasks"]}


def main(argv=None) -> dict:
  p = argparse.ArgumentParser(prog="python -m vlatent_jax.data.pretrain_corpus", description=__doc__.split("\n\n")[0])
  p.add_argument("--bench", required=True, help="the embedded benchmark folder (tokenizer/, video_digests.txt)")
  p.add_argument("--out", required=True, help="folder for the shards, spec.json and perception_eval/")
  p.add_argument("--clips", type=int, required=True)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--workers", type=int, default=2)
  p.add_argument("--eval-count", type=int, default=300, help="held-out perception questions (0: none)")
  p.add_argument("--shard-size", type=int, default=1024)
  p.add_argument("--frames", type=int, default=16)
  p.add_argument("--size", type=int, default=56)
  p.add_argument("--fps", type=int, default=8)
  a = p.parse_args(argv)
  tokenizer_dir = os.path.join(a.bench, "tokenizer")
  exclude = synthetic.read_digests(a.bench)
  summary = {}
  if a.eval_count:
    summary["perception_eval"] = build_perception_eval(
        os.path.join(a.out, "perception_eval"), tokenizer_dir, count=a.eval_count, seed=a.seed, exclude=exclude,
        frames=a.frames, size=a.size, fps=a.fps)
    exclude |= synthetic.read_digests(os.path.join(a.out, "perception_eval"))
  summary["corpus"] = build_corpus(a.out, tokenizer_dir, clips=a.clips, seed=a.seed, exclude=exclude,
                                   frames=a.frames, size=a.size, fps=a.fps, workers=a.workers,
                                   shard_size=a.shard_size)
  print(json.dumps(summary, indent=2))
  return summary


if __name__ == "__main__":
  main()
