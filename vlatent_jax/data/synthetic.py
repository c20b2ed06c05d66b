"""The embedded benchmark: small procedural videos with questions that need several moments.

VideoLatent's claim is that a model which "thinks" in K latent steps grounded in
the video answers better than one that answers straight from the question. That
can only show where the answer needs evidence from more than one moment: the
latents must gather what happened at time t1 and at time t2 and combine it. So
most tasks here put the evidence in separate moments that never share a frame,
and two are single-moment baselines where latent steps should help little.

Videos are numpy renderings (filled squares / discs, or digits drawn as scaled
3x5 pixel glyphs, in five well-separated colours on a plain dark background),
by default 16 frames of 56x56 at 8 fps (2 s), written as h264 mp4. Events last
2-4 frames, so read every frame (`read_frames(path, fps=8, max_frames=16)`);
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

    python -m vlatent_jax.data.synthetic --out DIR --seed 0 [--train 2000 --val 200 --test 400]
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import itertools
import json
import multiprocessing
import os
import time
import zlib

import numpy as np

from vlatent_jax.data.prompts import OPTION_LETTERS, user_text
from vlatent_jax.data.tokenizer import train_tokenizer
from vlatent_jax.data.video import write_mp4

BACKGROUND = (24, 24, 24)
PALETTE = {"red": (230, 40, 40), "green": (40, 200, 60), "blue": (50, 90, 255),
           "yellow": (240, 220, 40), "white": (240, 240, 240)}
COLORS = tuple(PALETTE)
SHAPES = ("square", "circle")
QUADRANTS = ("top-left", "top-right", "bottom-left", "bottom-right")  # index = 2 * row + col
DIRECTIONS = ("left", "right", "up", "down")
_STEPS = {"left": (0, -1), "right": (0, 1), "up": (-1, 0), "down": (1, 0)}
_GLYPH_ROWS = ("111 101 101 101 111", "010 110 010 010 111", "111 001 111 100 111", "111 001 111 001 111",
               "101 101 111 001 001", "111 100 111 001 111", "111 100 111 101 111", "111 001 001 001 001",
               "111 101 111 101 111", "111 101 111 001 111")
GLYPHS = {d: np.array([[c == "1" for c in row] for row in rows.split()]) for d, rows in enumerate(_GLYPH_ROWS)}
SPLITS = ("train", "val", "test")
DEFAULT_COUNTS = {"train": 2000, "val": 200, "test": 400}
MC, NUM = "multiple choice", "numerical"
MAX_ATTEMPTS = 100  # redraws of a duplicate video before giving up


# ---------------------------------------------------------------------------- drawing


def _blank(frames: int, size: int) -> np.ndarray:
  return np.broadcast_to(np.array(BACKGROUND, np.uint8), (frames, size, size, 3)).copy()


def _side(size: int) -> int:
  """Object side in pixels: even, ~22% of the frame (12 px at 56), large enough to survive h264."""
  return max(8, round(size * 0.11) * 2)


def _mask(shape: str, s: int) -> np.ndarray:
  if shape == "square":
    return np.ones((s, s), bool)
  yy, xx = np.mgrid[:s, :s] + 0.5 - s / 2
  return yy**2 + xx**2 <= (s / 2) ** 2


def _glyph(digit: int, size: int) -> np.ndarray:
  k = max(2, size // 14)  # 3x5 glyph -> 3k x 5k pixels (12x20 at 56)
  return np.repeat(np.repeat(GLYPHS[digit], k, 0), k, 1)


def _draw(video: np.ndarray, t0: int, t1: int, mask: np.ndarray, color: str, y: int, x: int) -> None:
  h, w = mask.shape
  video[t0:t1, y:y + h, x:x + w][:, mask] = PALETTE[color]


def _anywhere(rng, size: int, h: int, w: int) -> tuple[int, int]:
  return int(rng.integers(1, size - h)), int(rng.integers(1, size - w))


def _in_quadrant(rng, q: int, size: int, s: int) -> tuple[int, int]:
  half = size // 2
  return (q // 2) * half + int(rng.integers(1, half - s)), (q % 2) * half + int(rng.integers(1, half - s))


def _overlap(a: tuple[int, int], b: tuple[int, int], s: int, margin: int = 2) -> bool:
  return abs(a[0] - b[0]) < s + margin and abs(a[1] - b[1]) < s + margin


def _shape(rng) -> str:
  return SHAPES[int(rng.integers(len(SHAPES)))]


def _color(rng) -> str:
  return COLORS[int(rng.integers(len(COLORS)))]


# ---------------------------------------------------------------------------- timing and options


def _schedule(rng, frames: int, durations: list[int], min_gap: int) -> list[tuple[int, int]]:
  """Frame spans [t0, t1) for events in order, separated by at least `min_gap` blank frames."""
  slack = frames - sum(durations) - (len(durations) - 1) * min_gap
  if slack < 0:
    raise ValueError(f"{frames} frames cannot hold events of {durations} frames with gaps of {min_gap}")
  cuts = np.sort(rng.integers(0, slack + 1, size=len(durations)))
  extra = np.diff(np.concatenate([[0], cuts, [slack]]))
  spans, t = [], int(extra[0])
  for i, d in enumerate(durations):
    spans.append((t, t + int(d)))
    t += int(d) + min_gap + int(extra[i + 1])
  return spans


def _durations(rng, frames: int, lo: int, hi: int, gap: int, n: int = 2) -> list[int]:
  """n event lengths in [lo, hi], shortened where a short clip could not hold them with their gaps."""
  hi = min(hi, (frames - gap * (n - 1)) // n)
  return rng.integers(min(lo, hi), hi + 1, size=n).tolist()


def _stays(rng, frames: int, n: int, min_len: int) -> list[int]:
  """Boundaries 0 = b_0 < ... < b_n = frames cutting the clip into n stays of >= min_len frames."""
  bounds = [0]
  for i in range(1, n):
    bounds.append(int(rng.integers(bounds[-1] + min_len, frames - (n - i) * min_len + 1)))
  return bounds + [frames]


def _mc(rng, answer: str, distractors: list[str]) -> tuple[list[str], str]:
  """Distractors shuffled, the answer inserted at a uniform position; returns (options, letter)."""
  options = [distractors[i] for i in rng.permutation(len(distractors))]
  pos = int(rng.integers(len(options) + 1))
  options.insert(pos, answer)
  return options, OPTION_LETTERS[pos]


# ---------------------------------------------------------------------------- tasks


def color_order(rng, frames: int = 16, size: int = 56):
  """Two shapes of different colours flash (2-4 frames each, >= 2 blank frames apart, never together); "Which
  colour appeared first?" Options: both colours shown and two unseen ones. Needs 2 moments and their order.
  """
  video, s = _blank(frames, size), _side(size)
  first, second, *unseen = (COLORS[i] for i in rng.permutation(len(COLORS)))
  for color, (t0, t1) in zip((first, second), _schedule(rng, frames, _durations(rng, frames, 2, 4, 2), 2)):
    _draw(video, t0, t1, _mask(_shape(rng), s), color, *_anywhere(rng, size, s, s))
  options, letter = _mc(rng, first, [second] + unseen[:2])
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
    _draw(video, t0, t1, _mask(_shape(rng), s), _color(rng), *pos)
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
    mask = _glyph(digit, size)
    _draw(video, t0, t1, mask, _color(rng), *_anywhere(rng, size, *mask.shape))
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
    slide = 0 if prev is None else min(2, t1 - t0 - 1)  # the first frames of a stay slide in from prev
    for j in range(slide):
      f = (j + 1) / (slide + 1)
      _draw(video, t0 + j, t0 + j + 1, mask, color, *(round(a + f * (b - a)) for a, b in zip(prev, pos)))
    _draw(video, t0 + slide, t1, mask, color, *pos)
    prev = pos
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
    dy, dx = _STEPS[DIRECTIONS[int(d)]]
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
  question = f"Which way does the {target} {shapes[0]} move?"
  return video, question, OPTION_LETTERS[int(dirs[0])], list(DIRECTIONS), MC


TASKS = {f.__name__: f for f in (color_order, count_events, sum_digits, unvisited_quadrant, final_position,
                                 direction)}


# ---------------------------------------------------------------------------- writing a benchmark


def _render(task: str, key: tuple[int, ...], frames: int, size: int):
  return TASKS[task](np.random.default_rng(key), frames=frames, size=size)


def _encode(job) -> None:
  task, key, frames, size, fps, path = job
  write_mp4(_render(task, key, frames, size)[0], path, fps)


def generate(out_dir: str, seed: int, counts: dict[str, int] | None = None, frames: int = 16, size: int = 56,
             fps: int = 8, workers: int | None = None, vocab_size: int = 512) -> dict:
  """Writes videos/, <split>.jsonl, tokenizer/ and benchmark.json under `out_dir`; returns a summary."""
  if size < 32 or size % 2 or frames < 8 or seed < 0:
    raise ValueError(f"need an even size >= 32, frames >= 8 and seed >= 0; got {size=}, {frames=}, {seed=}")
  start = time.time()
  counts = dict(DEFAULT_COUNTS if counts is None else counts)
  order = sorted(counts, key=lambda k: (SPLITS.index(k) if k in SPLITS else len(SPLITS), k))
  os.makedirs(os.path.join(out_dir, "videos"), exist_ok=True)
  names, seen, jobs, rows = list(TASKS), set(), [], {}
  for split in order:
    rows[split] = []
    for i in range(counts[split]):
      task = names[i % len(names)]
      for attempt in itertools.count():  # redraw a video already used in any split
        if attempt == MAX_ATTEMPTS:
          raise RuntimeError(f"task {task!r} drew {attempt} videos already used; it cannot fill {split}[{i}]")
        key = (seed, zlib.crc32(split.encode()), i, attempt)
        video, question, answer, options, qtype = _render(task, key, frames, size)
        digest = hashlib.sha1(video.tobytes()).digest()
        if digest not in seen:
          break
      seen.add(digest)
      ex_id = f"{split}_{i:05d}"
      row = {"id": ex_id, "video": f"videos/{ex_id}.mp4", "question": question, "answer": answer}
      if options is not None:
        row["options"] = options
      rows[split].append({**row, "question_type": qtype, "task": task})
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

  corpus = [str(d) for d in range(100)]
  for row in itertools.chain.from_iterable(rows.values()):
    corpus += [row["question"], row["answer"], *row.get("options", []),
               user_text(row["question"], row["question_type"], row.get("options"))]
  tok_dir = os.path.join(out_dir, "tokenizer")
  train_tokenizer(corpus, tok_dir, vocab_size=vocab_size)

  info = {name: {"question_type": fn(np.random.default_rng(0))[4],
                 "description": " ".join((fn.__doc__ or name).split())} for name, fn in TASKS.items()}
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
  a = p.parse_args(argv)
  summary = generate(a.out, a.seed, {s: getattr(a, s) for s in DEFAULT_COUNTS}, frames=a.frames, size=a.size,
                     fps=a.fps, workers=a.workers, vocab_size=a.vocab_size)
  print(json.dumps(summary, indent=2))
  return summary


if __name__ == "__main__":
  main()
