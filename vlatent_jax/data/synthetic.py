"""The embedded benchmark: small procedural videos with questions that need several moments.

VideoLatent's claim is that a model which "thinks" in K latent steps grounded in
the video answers better than one that answers straight from the question. That
can only show where the answer needs evidence from more than one moment: the
latents must gather what happened at time t1 and at time t2 and combine it. So
most tasks here put the evidence in separate moments that never share a frame,
and two are single-moment baselines where latent steps should help little.

Videos are numpy renderings (`render.py`: filled squares / discs, or digits drawn
as scaled 3x5 pixel glyphs, in five well-separated colours on a plain dark
background), by default 16 frames of 56x56 at 8 fps (2 s), written as h264 mp4.
Events last 2-4 frames, so read every frame (`read_frames(path, fps=8, max_frames=16)`);
the usual 2 fps sampling would skip them.

Tasks (E = how many separate moments hold the evidence):
  color_order         MC  E=2  two shapes flash at different times; which colour came first?
  count_events        num E=n  1-5 shapes appear one at a time and vanish; how many in total?
  sum_digits          num E=2  two digits shown at different times; their sum (0-18)?
  unvisited_quadrant  MC  E=3  a shape jumps through three quadrants; which one does it never visit?
  final_position      MC  E=1  a shape slides through 2-3 quadrants; where does it end? (the *last* moment)
  direction           MC  E=1  two shapes move; which way does the named one go? (baseline)

Answers are balanced (uniform over letters and values). Every example draws from
its own stream `np.random.default_rng((seed, crc32(split), index, attempt))`, so
a seed gives byte-identical manifests and splits never share a stream; a video
equal to one already drawn (in any split) is redrawn with the next attempt.

Each task reports the objects it drew (`render.recording`), from which every row
gets a `rationale` (short reasoning steps for the cot mode, written from the
ground truth: `rationale()`) and its `evidence` (the frame spans that hold the
answer: `evidence()`). The tokenizer is trained on a fixed corpus of its own
(`tokenizer_corpus()`), so it does not depend on the seed or the counts, and the
tokenizer folder holds the video processor config these clips are meant for.

    python -m vlatent_jax.data.synthetic --out DIR --seed 0 [--train 2000 --val 200 --test 400]
"""

from __future__ import annotations

import argparse
import collections
import functools
import hashlib
import itertools
import json
import multiprocessing
import os
import re
import time
import zlib

import numpy as np

from vlatent_jax.data import render
from vlatent_jax.data.prompts import OPTION_LETTERS, QUESTION_TYPES, reasoning_texts, user_text
from vlatent_jax.data.render import (  # noqa: F401  (tasks draw with these; callers import the public ones here)
    BACKGROUND,
    COLORS,
    DIRECTIONS,
    GLYPHS,
    PALETTE,
    QUADRANTS,
    SHAPES,
    STEPS,
    Event,
    _anywhere,
    _blank,
    _color,
    _draw,
    _durations,
    _glyph,
    _in_quadrant,
    _mask,
    _overlap,
    _schedule,
    _shape,
    _side,
    _stays,
    quadrant_at,
    record,
    stays_of,
)
from vlatent_jax.data.tokenizer import REASONING_TOKENS, train_tokenizer
from vlatent_jax.data.video import write_mp4

SPLITS = ("train", "val", "test")
DEFAULT_COUNTS = {"train": 2000, "val": 200, "test": 400}
MC, NUM = "multiple choice", "numerical"
MAX_ATTEMPTS = 100  # redraws of a duplicate video before giving up
TOKENIZER_CLIPS = 200  # clips per task behind the tokenizer's fixed corpus
DIGESTS_FILE = "video_digests.txt"
PROCESSOR_FILE = "video_preprocessor_config.json"
_TAGS = re.compile("|".join(map(re.escape, REASONING_TOKENS)))
DESCRIBE_ANY = "Describe the video."  # stands in for any question in the corpus's template lines


# ---------------------------------------------------------------------------- options and scenes


def mc_options(rng, answer: str, distractors: list[str]) -> tuple[list[str], str]:
  """Distractors shuffled, the answer inserted at a uniform position; returns (options, letter)."""
  options = [distractors[i] for i in rng.permutation(len(distractors))]
  pos = int(rng.integers(len(options) + 1))
  options.insert(pos, answer)
  return options, OPTION_LETTERS[pos]


def _still(kind: str, what, color: str, t0: int, t1: int, y: int, x: int, mask: np.ndarray, size: int) -> None:
  """Records an object shown unmoved over frames [t0, t1)."""
  q = quadrant_at(y, x, *mask.shape, size)
  record(Event(kind, what, color, t0, t1 - 1, q, q))


def _visits(shape: str, color: str, path: list[int], bounds: list[int]) -> None:
  """Records an object that stays in the quadrants `path` in turn, cut at frames `bounds`."""
  stays = stays_of(path, bounds)
  record(Event("shape", shape, color, 0, bounds[-1] - 1, stays[0][0], stays[-1][0], stays))


# ---------------------------------------------------------------------------- tasks


def color_order(rng, frames: int = 16, size: int = 56):
  """Two shapes of different colours flash (2-4 frames each, >= 2 blank frames apart, never together); "Which
  colour appeared first?" Options: both colours shown and two unseen ones. Needs 2 moments and their order.
  """
  video, s = _blank(frames, size), _side(size)
  first, second, *unseen = (COLORS[i] for i in rng.permutation(len(COLORS)))
  for color, (t0, t1) in zip((first, second), _schedule(rng, frames, _durations(rng, frames, 2, 4, 2), 2)):
    shape = _shape(rng)
    mask, (y, x) = _mask(shape, s), _anywhere(rng, size, s, s)
    _draw(video, t0, t1, mask, color, y, x)
    _still("shape", shape, color, t0, t1, y, x, mask, size)
  options, letter = mc_options(rng, first, [second] + unseen[:2])
  return video, "Two shapes flash one after the other. Which colour appeared first?", letter, options, MC


def count_events(rng, frames: int = 16, size: int = 56):
  """1-5 shapes appear one at a time (2 frames each, >= 1 blank frame between, each away from the previous one) and
  vanish; "How many shapes appeared in total?" Needs every moment: no frame shows two shapes.
  """
  video, s = _blank(frames, size), _side(size)
  n = int(rng.integers(1, min(5, (frames + 1) // 3) + 1))
  prev = None
  for t0, t1 in _schedule(rng, frames, [2] * n, 1):
    pos = _anywhere(rng, size, s, s)
    while prev is not None and _overlap(pos, prev, s):
      pos = _anywhere(rng, size, s, s)
    shape, color = _shape(rng), _color(rng)
    mask = _mask(shape, s)
    _draw(video, t0, t1, mask, color, *pos)
    _still("shape", shape, color, t0, t1, *pos, mask, size)
    prev = pos
  return video, "Shapes appear one at a time and then vanish. How many shapes appeared in total?", str(n), None, NUM


def sum_digits(rng, frames: int = 16, size: int = 56):
  """Two digits (3x5 pixel glyphs scaled up, random colours and places) are shown 3-4 frames each, >= 2 blank
  frames apart; "What is the sum of the two digits?" The sum is uniform over 0-18. Needs 2 moments.
  """
  video = _blank(frames, size)
  total = int(rng.integers(0, 19))
  first = int(rng.integers(max(0, total - 9), min(9, total) + 1))
  for digit, (t0, t1) in zip((first, total - first), _schedule(rng, frames, _durations(rng, frames, 3, 4, 2), 2)):
    mask, color = _glyph(digit, size), _color(rng)
    y, x = _anywhere(rng, size, *mask.shape)
    _draw(video, t0, t1, mask, color, y, x)
    _still("digit", digit, color, t0, t1, y, x, mask, size)
  return video, "Two digits are shown one after the other. What is the sum of the two digits?", str(total), None, NUM


def unvisited_quadrant(rng, frames: int = 16, size: int = 56):
  """One shape stays in three different quadrants in turn, jumping between them (no sliding through a fourth);
  "Which quadrant does it never visit?" Any two stays leave two candidates: needs all 3 moments.
  """
  video, s = _blank(frames, size), _side(size)
  order, color, shape = rng.permutation(4), _color(rng), _shape(rng)
  bounds = _stays(rng, frames, 3, max(2, min(3, frames // 3)))
  for q, t0, t1 in zip(order[:3], bounds[:-1], bounds[1:]):
    _draw(video, t0, t1, _mask(shape, s), color, *_in_quadrant(rng, int(q), size, s))
  _visits(shape, color, [int(q) for q in order[:3]], bounds)
  question = f"The {color} {shape} jumps between quadrants of the frame. Which quadrant does it never visit?"
  return video, question, OPTION_LETTERS[int(order[3])], list(QUADRANTS), MC


def final_position(rng, frames: int = 16, size: int = 56):
  """One shape slides 2-3 times between neighbouring quadrants, resting in each; "In which quadrant does it end?"
  The answer is in the last moment, the earlier stays are distractors: a temporal-localisation baseline.
  """
  video, s = _blank(frames, size), _side(size)
  color, shape, moves = _color(rng), _shape(rng), int(rng.integers(2, 4))
  path = [int(rng.integers(4))]
  for _ in range(moves):
    path.append(path[-1] ^ (1 if rng.integers(2) else 2))  # flip column or row: a neighbouring quadrant
  bounds = _stays(rng, frames, moves + 1, max(2, min(4, frames // (moves + 1))))
  mask, prev = _mask(shape, s), None
  for q, t0, t1 in zip(path, bounds[:-1], bounds[1:]):
    pos = _in_quadrant(rng, q, size, s)
    slide = 0 if prev is None else min(render.SLIDE_FRAMES, t1 - t0 - 1)  # the stay's first frames slide in
    for j in range(slide):
      f = (j + 1) / (slide + 1)
      _draw(video, t0 + j, t0 + j + 1, mask, color, *(round(a + f * (b - a)) for a, b in zip(prev, pos)))
    _draw(video, t0 + slide, t1, mask, color, *pos)
    prev = pos
  _visits(shape, color, path, bounds)
  question = f"The {color} {shape} slides between quadrants of the frame. In which quadrant does it end?"
  return video, question, OPTION_LETTERS[path[-1]], list(QUADRANTS), MC


def direction(rng, frames: int = 16, size: int = 56):
  """Two shapes of different colours move steadily in different directions all clip long, never touching; "Which
  way does the <colour> <shape> move?" Any two frames answer it: the single-event baseline.
  """
  video, s = _blank(frames, size), _side(size)
  travel = size // 2
  target, other = (COLORS[i] for i in rng.permutation(len(COLORS))[:2])
  dirs = rng.permutation(4)[:2]

  def track(d):
    dy, dx = STEPS[DIRECTIONS[int(d)]]
    lo = [1 + travel if v < 0 else 1 for v in (dy, dx)]
    hi = [size - s - 1 - (travel if v > 0 else 0) for v in (dy, dx)]
    y0, x0 = (int(rng.integers(a, b + 1)) for a, b in zip(lo, hi))
    steps = np.round(travel * np.arange(frames) / max(frames - 1, 1)).astype(int)
    return [(y0 + dy * k, x0 + dx * k) for k in steps]

  for _ in range(1000):  # redraw both tracks until the shapes never touch
    first, second = track(dirs[0]), track(dirs[1])
    if not any(_overlap(a, b, s) for a, b in zip(first, second)):
      break
  else:
    raise RuntimeError(f"no non-touching tracks for {size}x{size}")
  shapes = (_shape(rng), _shape(rng))
  for t, (a, b) in enumerate(zip(first, second)):
    _draw(video, t, t + 1, _mask(shapes[0], s), target, *a)
    _draw(video, t, t + 1, _mask(shapes[1], s), other, *b)
  for color, shape, way, path in ((target, shapes[0], dirs[0], first), (other, shapes[1], dirs[1], second)):
    record(Event("shape", shape, color, 0, frames - 1, quadrant_at(*path[0], s, s, size),
                 quadrant_at(*path[-1], s, s, size), DIRECTIONS[int(way)]))
  question = f"Which way does the {target} {shapes[0]} move?"
  return video, question, OPTION_LETTERS[int(dirs[0])], list(DIRECTIONS), MC


TASKS = {f.__name__: f for f in (color_order, count_events, sum_digits, unvisited_quadrant, final_position,
                                 direction)}
_BUILTIN_TASKS = dict(TASKS)  # the tokenizer corpus always uses these (tests may monkeypatch TASKS)


# ---------------------------------------------------------------------------- rationales and evidence


def _frames(first: int, last: int) -> str:
  return f"frames {first}-{last}"


def noun(event: Event) -> str:
  """'red square', 'yellow digit 7'."""
  return f"{event.color} {event.what}" if event.kind == "shape" else f"{event.color} digit {event.what}"


def _chosen(answer: str, options: list[str] | None) -> str:
  return options[OPTION_LETTERS.index(answer)]


def rationale(task: str, events: list[Event], question: str, answer: str, options: list[str] | None = None
              ) -> list[str]:
  """The reasoning steps from the recorded scene to the answer, short (decoding pays for every token):

      color_order         first: red square, frames 2-4 | then: blue circle, frames 9-11
      count_events        1: red square, frames 0-1 | 2: green circle, frames 4-5 | ...
      sum_digits          first digit: 3, frames 2-4 | second digit: 5, frames 9-12 | 3 + 5 = 8
      unvisited_quadrant  top-left, frames 0-4 | top-right, frames 5-9 | bottom-right, frames 10-15 | never: bottom-left
      final_position      top-left, frames 0-4 | slides to top-right, frames 5-9 | ...
      direction           red circle: top-left at frame 0 | top-right at frame 15 | moves right

  The option letter itself is not a step (`prompts.reasoning_texts` appends the answer). Raises ValueError
  when the scene does not lead to `answer`, so a rationale never argues for another answer.
  """
  events = sorted(events, key=lambda e: e.first)  # time order (stable: direction's objects keep theirs)
  if task == "color_order":
    a, b = events
    steps = [f"first: {noun(a)}, {_frames(a.first, a.last)}", f"then: {noun(b)}, {_frames(b.first, b.last)}"]
    ok = _chosen(answer, options) == a.color
  elif task == "count_events":
    steps = [f"{k}: {noun(e)}, {_frames(e.first, e.last)}" for k, e in enumerate(events, 1)]
    ok = str(len(events)) == answer
  elif task == "sum_digits":
    a, b = events
    steps = [f"first digit: {a.what}, {_frames(a.first, a.last)}",
             f"second digit: {b.what}, {_frames(b.first, b.last)}", f"{a.what} + {b.what} = {a.what + b.what}"]
    ok = str(a.what + b.what) == answer
  elif task == "unvisited_quadrant":
    (e,) = events
    never = [q for q in QUADRANTS if q not in {q for q, _, _ in e.motion}]
    steps = [f"{q}, {_frames(t0, t1)}" for q, t0, t1 in e.motion] + [f"never: {never[0]}"]
    ok = never == [_chosen(answer, options)]
  elif task == "final_position":
    (e,) = events
    steps = [f"{'slides to ' if k else ''}{q}, {_frames(t0, t1)}" for k, (q, t0, t1) in enumerate(e.motion)]
    ok = e.end == _chosen(answer, options)
  elif task == "direction":
    e = next(e for e in events if f" {noun(e)} " in f" {question} ")
    steps = [f"{noun(e)}: {e.start} at frame {e.first}", f"{e.end} at frame {e.last}", f"moves {e.motion}"]
    ok = e.motion == _chosen(answer, options)
  else:
    raise ValueError(f"no rationale for task {task!r}")
  if not ok:
    raise ValueError(f"{task}: the recorded scene {events} does not lead to answer {answer!r} ({options})")
  return steps


def evidence(task: str, events: list[Event]) -> list[list[int]]:
  """Frame spans [first, last] (inclusive) that hold the evidence of the answer, in time order."""
  events = sorted(events, key=lambda e: e.first)
  if task in ("color_order", "count_events", "sum_digits"):
    return [[e.first, e.last] for e in events]
  if task == "unvisited_quadrant":
    return [[t0, t1] for _, t0, t1 in events[0].motion]
  if task == "final_position":
    return [list(events[0].motion[-1][1:])]
  if task == "direction":
    return [[min(e.first for e in events), max(e.last for e in events)]]
  raise ValueError(f"no evidence spans for task {task!r}")


# ---------------------------------------------------------------------------- tokenizer and processor


@functools.cache
def tokenizer_corpus() -> tuple[str, ...]:
  """Everything ever tokenized for this benchmark, from a fixed stream of clips that are never written: the
  questions, options, answers and prompts of every task, their cot targets, the stage-1 descriptions and
  perception questions, the chat template's words and the numbers 0-100. Independent of seed and counts."""
  from vlatent_jax.data import pretrain_corpus  # it builds on this module's tasks: import when needed

  texts = [str(n) for n in range(101)] + [user_text(DESCRIBE_ANY, t, ["A"]) for t in QUESTION_TYPES]
  for name, fn in _BUILTIN_TASKS.items():
    for i in range(TOKENIZER_CLIPS):
      rng = np.random.default_rng((0, zlib.crc32(b"tokenizer"), zlib.crc32(name.encode()), i))
      with render.recording() as events:
        _, question, answer, options, qtype = fn(rng)
      targets = reasoning_texts(rationale(name, events, question, answer, options), answer)  # every stage
      texts += ["user\n", question, *(options or []), user_text(question, qtype, options), "\nassistant\n",
                *(piece for t in targets for piece in _TAGS.split(t))]  # a tag is one token: BPE sees the rest
      for q, a, opts, t, _ in pretrain_corpus.all_questions(name, events, rng):
        texts += ["user\n", user_text(q, t, opts), "\nassistant\n", a]
  return tuple(texts)


def processor_config(size: int) -> dict:
  """Hugging Face video processor config for these clips: frames keep their size (28 px multiples), the dark
  background normalises to exactly 0 and the palette to about +-3."""
  pixels = size * size
  return {"video_processor_type": "Qwen2VLVideoProcessor", "patch_size": 14, "temporal_patch_size": 2,
          "merge_size": 2, "min_pixels": 28 * 28, "max_pixels": pixels,
          "size": {"shortest_edge": 28 * 28, "longest_edge": pixels}, "do_resize": True, "resample": 3,
          "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True,
          "image_mean": [c / 255 for c in BACKGROUND], "image_std": [0.25, 0.25, 0.25], "do_convert_rgb": True}


def write_tokenizer(tok_dir: str, size: int = 56, vocab_size: int = 512):
  """The benchmark's tokenizer (fixed corpus, `<think>`/`<answer>` tags as plain tokens) and processor config."""
  tokenizer = train_tokenizer(tokenizer_corpus(), tok_dir, vocab_size=vocab_size, added_tokens=REASONING_TOKENS)
  with open(os.path.join(tok_dir, PROCESSOR_FILE), "w") as f:
    json.dump(processor_config(size), f, indent=2)
  return tokenizer


# ---------------------------------------------------------------------------- writing a benchmark


def _render(task: str, key: tuple[int, ...], frames: int, size: int):
  return TASKS[task](np.random.default_rng(key), frames=frames, size=size)


def _encode(job) -> None:
  task, key, frames, size, fps, path = job
  write_mp4(_render(task, key, frames, size)[0], path, fps)


def digest(video: np.ndarray) -> str:
  """The identity of a rendered clip (sha1 of its raw uint8 bytes), as listed in video_digests.txt."""
  return hashlib.sha1(np.ascontiguousarray(video, np.uint8).tobytes()).hexdigest()


def read_digests(path: str) -> set[str]:
  """A video_digests.txt file (or a folder holding one) -> its set of digests."""
  if os.path.isdir(path):
    path = os.path.join(path, DIGESTS_FILE)
  with open(path) as f:
    return {line.strip() for line in f if line.strip()}


def generate(out_dir: str, seed: int, counts: dict[str, int] | None = None, frames: int = 16, size: int = 56,
             fps: int = 8, workers: int | None = None, vocab_size: int = 512, tasks: list[str] | None = None) -> dict:
  """Writes videos/, <split>.jsonl, video_digests.txt, tokenizer/ and benchmark.json under `out_dir`; returns
  a summary. `tasks`: a subset of TASKS (default all), taken in turn."""
  if size < 32 or size % 2 or frames < 8 or seed < 0:
    raise ValueError(f"need an even size >= 32, frames >= 8 and seed >= 0; got {size=}, {frames=}, {seed=}")
  start = time.time()
  counts = dict(DEFAULT_COUNTS if counts is None else counts)
  order = sorted(counts, key=lambda k: (SPLITS.index(k) if k in SPLITS else len(SPLITS), k))
  os.makedirs(os.path.join(out_dir, "videos"), exist_ok=True)
  names, seen, jobs, rows = list(tasks or TASKS), set(), [], {}
  if unknown := [t for t in names if t not in TASKS]:
    raise ValueError(f"unknown tasks {unknown}; choose from {list(TASKS)}")
  for split in order:
    rows[split] = []
    for i in range(counts[split]):
      task = names[i % len(names)]
      for attempt in itertools.count():  # redraw a video already used in any split
        if attempt == MAX_ATTEMPTS:
          raise RuntimeError(f"task {task!r} drew {attempt} videos already used; it cannot fill {split}[{i}]")
        key = (seed, zlib.crc32(split.encode()), i, attempt)
        with render.recording() as events:
          video, question, answer, options, qtype = _render(task, key, frames, size)
        video_digest = digest(video)
        if video_digest not in seen:
          break
      seen.add(video_digest)
      ex_id = f"{split}_{i:05d}"
      row = {"id": ex_id, "video": f"videos/{ex_id}.mp4", "question": question, "answer": answer}
      if options is not None:
        row["options"] = options
      row.update(question_type=qtype, task=task)
      if events:  # tasks that report no scene (e.g. stand-ins in tests) get no supervision beyond the answer
        row.update(rationale=rationale(task, events, question, answer, options), evidence=evidence(task, events))
      rows[split].append(row)
      jobs.append((task, key, frames, size, fps, os.path.join(out_dir, row["video"])))

  workers = workers or min(2, os.cpu_count() or 1)
  if workers > 1:  # spawn: the parent may hold JAX threads, which fork does not like
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
      for _ in pool.imap_unordered(_encode, jobs, chunksize=32):
        pass
  else:
    for job in jobs:
      _encode(job)

  manifests = {}
  for split in order:
    manifests[split] = os.path.join(out_dir, f"{split}.jsonl")
    with open(manifests[split], "w") as f:
      f.writelines(json.dumps(row) + "\n" for row in rows[split])
  with open(os.path.join(out_dir, DIGESTS_FILE), "w") as f:
    f.writelines(d + "\n" for d in sorted(seen))
  tok_dir = os.path.join(out_dir, "tokenizer")
  write_tokenizer(tok_dir, size, vocab_size)

  info = {name: {"question_type": fn(np.random.default_rng(0))[4],
                 "description": " ".join((fn.__doc__ or name).split())} for name, fn in TASKS.items() if name in names}
  bench = {
      "name": "vlatent_jax synthetic multi-moment video QA", "seed": seed,
      "video": {"frames": frames, "height": size, "width": size, "fps": fps, "codec": "h264 (libx264, yuv420p)",
                "background": list(BACKGROUND), "palette": {k: list(v) for k, v in PALETTE.items()},
                "read_with": {"fps": fps, "max_frames": frames},
                "note": "events last 2-4 frames: decode every frame; 2 fps sampling would miss some"},
      "splits": {split: {"count": len(rows[split]), "file": f"{split}.jsonl",
                         "tasks": dict(collections.Counter(r["task"] for r in rows[split]))} for split in order},
      "tasks": info, "tokenizer": "tokenizer", "vocab_size": vocab_size,
  }
  with open(os.path.join(out_dir, "benchmark.json"), "w") as f:
    json.dump(bench, f, indent=2)
  return {"out_dir": os.path.abspath(out_dir), "tokenizer": os.path.abspath(tok_dir),
          "manifests": {k: os.path.abspath(v) for k, v in manifests.items()},
          "video_digests": os.path.abspath(os.path.join(out_dir, DIGESTS_FILE)),
          "counts": {split: len(rows[split]) for split in order}, "tasks": names,
          "seconds": round(time.time() - start, 2)}


def main(argv=None) -> dict:
  p = argparse.ArgumentParser(description="Write the synthetic multi-moment video QA benchmark.")
  p.add_argument("--out", required=True)
  p.add_argument("--seed", type=int, default=0)
  for split, n in DEFAULT_COUNTS.items():
    p.add_argument(f"--{split}", type=int, default=n, help=f"number of {split} examples")
  p.add_argument("--frames", type=int, default=16)
  p.add_argument("--size", type=int, default=56, help="frame height and width (even)")
  p.add_argument("--fps", type=int, default=8)
  p.add_argument("--workers", type=int, default=None, help="encoding processes (default: min(2, cpus))")
  p.add_argument("--vocab-size", type=int, default=512)
  p.add_argument("--tasks", help=f"comma-separated subset of {','.join(TASKS)} (default: all)")
  a = p.parse_args(argv)
  summary = generate(a.out, a.seed, {s: getattr(a, s) for s in DEFAULT_COUNTS}, frames=a.frames, size=a.size,
                     fps=a.fps, workers=a.workers, vocab_size=a.vocab_size,
                     tasks=a.tasks.split(",") if a.tasks else None)
  print(json.dumps(summary, indent=2))
  return summary


if __name__ == "__main__":
  main()
