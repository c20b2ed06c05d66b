"""Drawing primitives of the embedded benchmark, and the semantic scene behind a clip.

Tasks (`synthetic.py`) draw filled squares / discs or 3x5 pixel glyphs in five
well-separated colours on a plain dark background. Inside `recording()` they also
report what they drew as `Event`s, so that rationales, descriptions and
perception questions are written from the ground truth instead of being read
back from pixels. Outside a recording context `record` does nothing, so a task
draws exactly what it drew before scenes existed.

Conventions: frames are 0-based and spans inclusive ([first, last]); an object's
quadrant is the one holding the centre of its drawn box in pixel-index units
(row/column >= size / 2 is bottom/right), as a reader of the frames computes it.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import functools

import numpy as np

BACKGROUND = (24, 24, 24)
PALETTE = {"red": (230, 40, 40), "green": (40, 200, 60), "blue": (50, 90, 255),
           "yellow": (240, 220, 40), "white": (240, 240, 240)}
COLORS = tuple(PALETTE)
SHAPES = ("square", "circle")
QUADRANTS = ("top-left", "top-right", "bottom-left", "bottom-right")  # index = 2 * row + col
DIRECTIONS = ("left", "right", "up", "down")
STEPS = {"left": (0, -1), "right": (0, 1), "up": (-1, 0), "down": (1, 0)}
_GLYPH_ROWS = ("111 101 101 101 111", "010 110 010 010 111", "111 001 111 100 111", "111 001 111 001 111",
               "101 101 111 001 001", "111 100 111 001 111", "111 100 111 101 111", "111 001 001 001 001",
               "111 101 111 101 111", "111 101 111 001 111")
GLYPHS = {d: np.array([[c == "1" for c in row] for row in rows.split()]) for d, rows in enumerate(_GLYPH_ROWS)}
SLIDE_FRAMES = 2  # a sliding object spends up to this many frames of a stay moving in from the previous one


# ---------------------------------------------------------------------------- scenes


@dataclasses.dataclass(frozen=True)
class Event:
  """One object of a clip. `motion`: None (still), a DIRECTIONS entry (steady motion all along), or the stays
  ((quadrant, first, last), ...) of an object that jumps or slides between quadrants."""
  kind: str              # "shape" or "digit"
  what: str | int        # shape name or digit value
  color: str
  first: int             # first frame shown (0-based)
  last: int              # last frame shown (inclusive)
  start: str             # quadrant at `first`
  end: str               # quadrant at `last`
  motion: str | tuple[tuple[str, int, int], ...] | None = None


_RECORDER: contextvars.ContextVar[list | None] = contextvars.ContextVar("render_recorder", default=None)


@contextlib.contextmanager
def recording():
  """`with recording() as events: TASKS[t](rng)` collects the Events the task reports, in report order."""
  events: list[Event] = []
  token = _RECORDER.set(events)
  try:
    yield events
  finally:
    _RECORDER.reset(token)


def record(event: Event) -> None:
  events = _RECORDER.get()
  if events is not None:
    events.append(event)


def quadrant_at(y: int, x: int, h: int, w: int, size: int) -> str:
  """Quadrant of the centre of an h x w box drawn at (y, x)."""
  return QUADRANTS[2 * int(y + (h - 1) / 2 >= size / 2) + int(x + (w - 1) / 2 >= size / 2)]


def stays_of(path: list[int], bounds: list[int]) -> tuple[tuple[str, int, int], ...]:
  """Quadrant indices visited in turn and their frame boundaries -> ((quadrant, first, last), ...)."""
  return tuple((QUADRANTS[q], t0, t1 - 1) for q, t0, t1 in zip(path, bounds[:-1], bounds[1:]))


# ---------------------------------------------------------------------------- drawing


def _blank(frames: int, size: int) -> np.ndarray:
  row = np.tile(np.array(BACKGROUND, np.uint8), (size, 1))  # numpy copies a broadcast row 10x faster than a pixel
  return np.broadcast_to(row, (frames, size, size, 3)).copy()


def _side(size: int) -> int:
  """Object side in pixels: even, ~22% of the frame (12 px at 56), large enough to survive h264."""
  return max(8, round(size * 0.11) * 2)


def _frozen(make):
  """Cache for the masks, drawn thousands of times a second by the pretraining corpus; read-only so none is
  changed in place."""
  @functools.cache
  def cached(*args):
    mask = make(*args)
    mask.flags.writeable = False
    return mask
  return functools.wraps(make)(cached)


@_frozen
def _mask(shape: str, s: int) -> np.ndarray:
  if shape == "square":
    return np.ones((s, s), bool)
  yy, xx = np.mgrid[:s, :s] + 0.5 - s / 2
  return yy**2 + xx**2 <= (s / 2) ** 2


@_frozen
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


# ---------------------------------------------------------------------------- timing


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
