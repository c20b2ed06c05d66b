"""The embedded benchmark: deterministic, balanced, answers recoverable from pixels, evidence at separate moments,
content that survives h264, rationales and evidence that agree with the pixels, a fixed tokenizer that loads with
AutoTokenizer, and the processor config the clips are meant for."""

import collections
import hashlib
import itertools
import json
import os
import re
import subprocess
import sys
import zlib

import numpy as np
import pytest

from vlatent_jax.data import render
from vlatent_jax.data import synthetic as syn
from vlatent_jax.data.preprocess import VideoProcessorConfig, normalize_patches, patchify_uint8
from vlatent_jax.data.prompts import OPTION_LETTERS, reasoning_texts, user_text
from vlatent_jax.data.render import Event
from vlatent_jax.data.video import read_frames, write_mp4

COUNTS = {"train": 24, "val": 12, "test": 12}
REFERENCE = np.array([syn.BACKGROUND] + [syn.PALETTE[c] for c in syn.COLORS], np.float32)  # label 0 = background


def _cli(out, seed):
  """Runs the CLI in a fresh interpreter (2 spawn workers) and checks that nothing on the path imported torch."""
  args = ["--out", str(out), "--seed", str(seed)] + [a for k, n in COUNTS.items() for a in (f"--{k}", str(n))]
  code = (f"import sys; from vlatent_jax.data.synthetic import main; main({args!r}); "
          "assert 'torch' not in sys.modules, 'the benchmark generator imported torch'")
  proc = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return json.loads(proc.stdout[proc.stdout.index("{"):])


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
  out = tmp_path_factory.mktemp("bench")
  return out, _cli(out, 0)


def _rows(out, split):
  with open(os.path.join(out, f"{split}.jsonl")) as f:
    return [json.loads(line) for line in f]


# ---------------------------------------------------------------------------- reading answers back from pixels


def _labels(video):
  """Per pixel: 0 background, 1.. palette colour (COLORS order), -1 for blends far from every reference colour."""
  d = np.linalg.norm(video[..., None, :].astype(np.float32) - REFERENCE, axis=-1)
  return np.where(d.min(-1) < 60, d.argmin(-1), -1)


def _colors_in(labels_t, min_px=30):
  counts = np.bincount(labels_t[labels_t > 0].ravel(), minlength=len(REFERENCE))
  return [syn.COLORS[c - 1] for c in np.flatnonzero(counts >= min_px)]


def _runs(labels):
  """[(t0, t1)] of maximal runs of frames that show something."""
  busy = [bool(_colors_in(lab)) for lab in labels]
  runs, t0 = [], None
  for t, b in enumerate(busy + [False]):
    if b and t0 is None:
      t0 = t
    elif not b and t0 is not None:
      runs, t0 = runs + [(t0, t)], None
  return runs


def _centroid(labels_t, color=None):
  ys, xs = np.nonzero(labels_t > 0 if color is None else labels_t == syn.COLORS.index(color) + 1)
  return ys.mean(), xs.mean()


def _quadrant(labels_t, size):
  y, x = _centroid(labels_t)
  return syn.QUADRANTS[2 * int(y >= size / 2) + int(x >= size / 2)]


def _box_quadrant(labels_t, size, color=None):
  """Quadrant of the centre of the drawn box (a glyph's pixel mass is off its centre)."""
  ys, xs = np.nonzero(labels_t != 0 if color is None else labels_t == syn.COLORS.index(color) + 1)
  return syn.QUADRANTS[2 * int((ys.min() + ys.max()) / 2 >= size / 2) + int((xs.min() + xs.max()) / 2 >= size / 2)]


def _read_shape(labels_t, color=None):
  """square or circle: how much of its bounding box the object fills (a disc fills ~79%)."""
  mask = labels_t > 0 if color is None else labels_t == syn.COLORS.index(color) + 1
  ys, xs = np.nonzero(mask)
  return "square" if mask[ys.min():ys.max() + 1, xs.min():xs.max() + 1].mean() > 0.9 else "circle"


def _way(labels, color):
  (y0, x0), (y1, x1) = _centroid(labels[0], color), _centroid(labels[-1], color)
  dy, dx = y1 - y0, x1 - x0
  return ("down" if dy > 0 else "up") if abs(dy) > abs(dx) else ("right" if dx > 0 else "left")


def _read_digit(labels_t, size):
  ys, xs = np.nonzero(labels_t != 0)  # blended edge pixels (-1) belong to the glyph's box too
  k = max(2, size // 14)
  cells = (labels_t[ys.min():ys.max() + 1, xs.min():xs.max() + 1] > 0)[k // 2::k, k // 2::k]
  return [d for d, g in syn.GLYPHS.items() if g.shape == cells.shape and (g == cells).all()]


def _answer_from_pixels(task, video, question, options):
  """The answer (letter or number) worked out from the frames alone; asserts the task's temporal structure."""
  labels, size = _labels(video), video.shape[1]
  runs = _runs(labels)
  if task in ("color_order", "count_events", "sum_digits"):
    # evidence at separate moments: blank frames between runs, one object (constant image) within a run
    for t0, t1 in runs:
      assert len(_colors_in(labels[t0])) == 1
      assert all((labels[t] == labels[t0]).mean() > 0.98 for t in range(t0, t1))
    assert all(b[0] - a[1] >= (1 if task == "count_events" else 2) for a, b in itertools.pairwise(runs))
  if task == "color_order":
    assert len(runs) == 2
    first, second = (_colors_in(labels[t0])[0] for t0, _ in runs)
    assert first != second and first in options and second in options
    return OPTION_LETTERS[options.index(first)]
  if task == "count_events":
    return str(len(runs))
  if task == "sum_digits":
    assert len(runs) == 2
    digits = [_read_digit(labels[t0], size) for t0, _ in runs]
    assert all(len(d) == 1 for d in digits), digits
    return str(digits[0][0] + digits[1][0])
  if task in ("unvisited_quadrant", "final_position"):
    assert runs == [(0, len(video))]  # the shape is on screen throughout
    stays = [_quadrant(lab, size) for lab in labels]
    if task == "final_position":
      assert len(set(stays)) >= 2
      return OPTION_LETTERS[options.index(stays[-1])]
    assert len(set(stays)) == 3 and len([q for a, q in itertools.pairwise(stays) if a != q]) == 2  # 3 stays, 2 jumps
    return OPTION_LETTERS[options.index(next(q for q in syn.QUADRANTS if q not in stays))]
  if task == "direction":
    color = next(c for c in syn.COLORS if f" {c} " in question)
    return OPTION_LETTERS[options.index(_way(labels, color))]
  raise AssertionError(f"no pixel reader for task {task}")


# ---------------------------------------------------------------------------- tests on TASKS directly (no video files)


def test_tasks_cover_both_question_types():
  assert len(syn.TASKS) >= 5
  types = {name: fn(np.random.default_rng(0))[4] for name, fn in syn.TASKS.items()}
  assert set(types.values()) == {"multiple choice", "numerical"}
  assert {"color_order", "count_events", "sum_digits"} <= set(types)


@pytest.mark.parametrize("frames,size", [(16, 56), (8, 32), (24, 64)])
def test_examples_are_well_formed_and_answers_match_the_pixels(frames, size):
  for name, fn in syn.TASKS.items():
    for i in range(40 if (frames, size) == (16, 56) else 10):
      video, question, answer, options, qtype = fn(np.random.default_rng([5, i]), frames=frames, size=size)
      assert video.dtype == np.uint8 and video.shape == (frames, size, size, 3)
      if qtype == "multiple choice":
        assert 2 <= len(options) <= 4 and len(set(options)) == len(options)
        assert all(isinstance(o, str) and o[1:2] != "." for o in options)
        assert answer in OPTION_LETTERS[:len(options)]
      else:
        assert qtype == "numerical" and options is None and str(int(answer)) == answer
      assert question in user_text(question, qtype, options)
      assert _answer_from_pixels(name, video, question, options) == answer, (name, i)


def test_answers_are_balanced():
  for name, fn in syn.TASKS.items():
    n = 600
    answers = collections.Counter(fn(np.random.default_rng([11, i]))[2] for i in range(n))
    values = {"count_events": [str(v) for v in range(1, 6)], "sum_digits": [str(v) for v in range(19)]}.get(
        name, list(OPTION_LETTERS[:4]))
    assert set(answers) == set(values), (name, answers)
    expected = n / len(values)
    assert all(0.5 * expected <= answers[v] <= 1.6 * expected for v in values), (name, answers)


def test_content_survives_h264(tmp_path):
  for name, fn in syn.TASKS.items():
    video = fn(np.random.default_rng(7))[0]
    path = str(tmp_path / f"{name}.mp4")
    write_mp4(video, path, fps=8)
    decoded, fps = read_frames(path, fps=8, max_frames=16)
    assert decoded.shape == video.shape and fps == pytest.approx(8.0)
    raw = _labels(video)
    # interior of every object (pixels whose 3x3 neighbourhood has one label): colour kept within tolerance
    pad = np.pad(raw, ((0, 0), (1, 1), (1, 1)), mode="edge")
    same = np.all([pad[:, 1 + dy:1 + dy + raw.shape[1], 1 + dx:1 + dx + raw.shape[2]] == raw
                   for dy in (-1, 0, 1) for dx in (-1, 0, 1)], axis=0)
    err = np.abs(decoded.astype(int) - video.astype(int))
    for lab in np.unique(raw):
      inner = same & (raw == lab)
      assert np.abs(decoded[inner].mean(0) - REFERENCE[lab]).max() < 12, (name, lab)
      assert np.median(err[inner].max(-1)) < 20, (name, lab)
    assert (_labels(decoded) == raw).mean() > 0.97, name


# ---------------------------------------------------------------------------- scenes, rationales and evidence

Q = syn.QUADRANTS
HAND_WORKED = [  # task, scene, question, answer, options, steps, evidence
    ("color_order", [Event("shape", "square", "red", 2, 4, "top-left", "top-left"),
                     Event("shape", "circle", "blue", 9, 11, "bottom-right", "bottom-right")],
     "Which colour appeared first?", "B", ["blue", "red", "green", "white"],
     ["first: red square, frames 2-4", "then: blue circle, frames 9-11"], [[2, 4], [9, 11]]),
    ("count_events", [Event("shape", "square", "red", 0, 1, "top-left", "top-left"),
                      Event("shape", "circle", "green", 4, 5, "top-right", "top-right"),
                      Event("shape", "square", "red", 8, 9, "bottom-left", "bottom-left")],
     "How many shapes appeared in total?", "3", None,
     ["1: red square, frames 0-1", "2: green circle, frames 4-5", "3: red square, frames 8-9"],
     [[0, 1], [4, 5], [8, 9]]),
    ("sum_digits", [Event("digit", 3, "yellow", 2, 4, "top-right", "top-right"),
                    Event("digit", 5, "white", 9, 12, "bottom-left", "bottom-left")],
     "What is the sum of the two digits?", "8", None,
     ["first digit: 3, frames 2-4", "second digit: 5, frames 9-12", "3 + 5 = 8"], [[2, 4], [9, 12]]),
    ("unvisited_quadrant", [Event("shape", "square", "green", 0, 15, Q[0], Q[3], ((Q[0], 0, 4), (Q[1], 5, 9),
                                                                                   (Q[3], 10, 15)))],
     "Which quadrant does it never visit?", "C", list(Q),
     ["top-left, frames 0-4", "top-right, frames 5-9", "bottom-right, frames 10-15", "never: bottom-left"],
     [[0, 4], [5, 9], [10, 15]]),
    ("final_position", [Event("shape", "circle", "red", 0, 15, Q[0], Q[3], ((Q[0], 0, 4), (Q[1], 5, 9),
                                                                            (Q[3], 10, 15)))],
     "In which quadrant does it end?", "D", list(Q),
     ["top-left, frames 0-4", "slides to top-right, frames 5-9", "slides to bottom-right, frames 10-15"], [[10, 15]]),
    ("direction", [Event("shape", "circle", "red", 0, 15, Q[0], Q[1], "right"),
                   Event("shape", "square", "white", 0, 15, Q[3], Q[1], "up")],
     "Which way does the red circle move?", "B", list(syn.DIRECTIONS),
     ["red circle: top-left at frame 0", "top-right at frame 15", "moves right"], [[0, 15]]),
]


@pytest.mark.parametrize("task,events,question,answer,options,steps,spans", HAND_WORKED,
                         ids=[h[0] for h in HAND_WORKED])
def test_rationale_and_evidence_of_hand_worked_scenes(task, events, question, answer, options, steps, spans):
  assert syn.rationale(task, events, question, answer, options) == steps
  assert syn.rationale(task, events[::-1], question, answer, options) == steps  # steps follow time, not report order
  assert syn.evidence(task, events) == spans
  wrong = str(int(answer) + 1) if options is None else OPTION_LETTERS[(OPTION_LETTERS.index(answer) + 1) % 4]
  with pytest.raises(ValueError, match="does not lead to"):
    syn.rationale(task, events, question, wrong, options)
  assert reasoning_texts(steps, answer)[0] == f"<think>{'; '.join(steps)}</think><answer>{answer}</answer>"


def test_recording_leaves_the_draws_unchanged():
  for name, fn in syn.TASKS.items():
    plain = fn(np.random.default_rng(3))
    with render.recording() as events:
      recorded = fn(np.random.default_rng(3))
    np.testing.assert_array_equal(plain[0], recorded[0])
    assert plain[1:] == recorded[1:] and events and all(isinstance(e, Event) for e in events)


def _span_of(step):
  first, last = re.search(r"frames (\d+)-(\d+)$", step).groups()
  return int(first), int(last)


@pytest.mark.parametrize("frames,size", [(16, 56), (8, 56), (24, 64)])  # (at 32 px a glyph 7 is under 30 px)
def test_rationales_and_evidence_agree_with_the_pixels(frames, size):
  """Every fact of every step (colours, shapes, digits, order, counts, quadrants, frames, motion) is read back
  from the raw frames, and the evidence spans hold the frames the pixel reader answers from."""
  for name, fn in syn.TASKS.items():
    for i in range(30 if frames == 16 else 10):
      with render.recording() as events:
        video, question, answer, options, _ = fn(np.random.default_rng([9, i]), frames=frames, size=size)
      steps, spans = syn.rationale(name, events, question, answer, options), syn.evidence(name, events)
      labels = _labels(video)
      runs = [(t0, t1 - 1) for t0, t1 in _runs(labels)]
      if name in ("color_order", "count_events", "sum_digits"):
        objects = steps[:-1] if name == "sum_digits" else steps
        assert len(objects) == len(runs) and spans == [list(r) for r in runs]
        for k, (step, (t0, t1)) in enumerate(zip(objects, runs)):
          assert _span_of(step) == (t0, t1)
          if name == "sum_digits":
            lead, digit = re.fullmatch(r"(first|second) digit: (\d), frames \d+-\d+", step).groups()
            assert [int(digit)] == _read_digit(labels[t0], size)
          else:
            lead, color, shape = re.fullmatch(r"(first|then|\d+): (\w+) (square|circle), frames \d+-\d+", step).groups()
            assert [color] == _colors_in(labels[t0]) and shape == _read_shape(labels[t0])
          assert lead == ({"color_order": ("first", "then"), "sum_digits": ("first", "second")}.get(name) or
                          [str(j) for j in range(1, 6)])[k]
        if name == "sum_digits":
          a, b = (_read_digit(labels[t0], size)[0] for t0, _ in runs)
          assert steps[-1] == f"{a} + {b} = {a + b}"
      elif name in ("unvisited_quadrant", "final_position"):
        seen = [_quadrant(lab, size) for lab in labels]
        stays = steps[:-1] if name == "unvisited_quadrant" else steps
        parsed = [re.fullmatch(r"(?:slides to )?([a-z]+-[a-z]+), frames (\d+)-(\d+)", st).groups() for st in stays]
        assert [int(a) for _, a, _ in parsed] == [0] + [int(b) + 1 for _, _, b in parsed[:-1]]  # they tile the clip
        assert int(parsed[-1][2]) == frames - 1
        for k, (q, a, b) in enumerate(parsed):
          rest = int(a) + (min(render.SLIDE_FRAMES, int(b) - int(a)) if name == "final_position" and k else 0)
          assert set(seen[rest:int(b) + 1]) == {q}, (name, i, steps, seen)
          assert stays[k].startswith("slides to ") == (name == "final_position" and k > 0)
        if name == "unvisited_quadrant":
          assert steps[-1] == f"never: {next(q for q in syn.QUADRANTS if q not in seen)}"
          assert spans == [[int(a), int(b)] for _, a, b in parsed]
        else:
          assert spans == [[int(parsed[-1][1]), frames - 1]]  # the evidence holds the last frame
      else:
        color, shape, start = re.fullmatch(r"(\w+) (square|circle): ([a-z]+-[a-z]+) at frame 0", steps[0]).groups()
        assert f" {color} {shape} " in f" {question} " and _read_shape(labels[0], color) == shape
        assert start == _box_quadrant(labels[0], size, color)
        assert steps[1:] == [f"{_box_quadrant(labels[-1], size, color)} at frame {frames - 1}",
                             f"moves {_way(labels, color)}"]
        assert spans == [[0, frames - 1]]


# ---------------------------------------------------------------------------- tests on a written benchmark


def test_benchmark_files(bench):
  out, summary = bench
  with open(os.path.join(out, "benchmark.json")) as f:
    meta = json.load(f)
  assert meta["seed"] == 0 and set(meta["tasks"]) == set(syn.TASKS)
  assert summary["tokenizer"] == os.path.join(os.path.abspath(out), "tokenizer")
  for split, n in COUNTS.items():
    rows = _rows(out, split)
    assert len(rows) == n == meta["splits"][split]["count"]
    assert collections.Counter(r["task"] for r in rows) == meta["splits"][split]["tasks"]
    assert len(meta["splits"][split]["tasks"]) == len(syn.TASKS)
    for row in rows:
      mc = row["question_type"] == "multiple choice"
      assert set(row) == ({"id", "video", "question", "answer", "question_type", "task", "rationale", "evidence"} |
                          ({"options"} if mc else set()))
      assert row["video"] == f"videos/{row['id']}.mp4" and row["id"].startswith(split)
      assert (row["answer"] in OPTION_LETTERS[:len(row["options"])]) if mc else row["answer"].isdigit()


def test_videos_decode_and_answers_survive_encoding(bench):
  out, _ = bench
  for split in COUNTS:
    for row in _rows(out, split):
      video, fps = read_frames(os.path.join(out, row["video"]), fps=8, max_frames=16)
      assert video.shape == (16, 56, 56, 3) and fps == pytest.approx(8.0)
      assert _answer_from_pixels(row["task"], video, row["question"], row.get("options")) == row["answer"], row


def test_splits_are_disjoint(bench):
  out, _ = bench
  digests = {}
  for split in COUNTS:
    for row in _rows(out, split):
      with open(os.path.join(out, row["video"]), "rb") as f:
        digests.setdefault(hashlib.sha1(f.read()).hexdigest(), []).append(row["id"])
  assert len(digests) == sum(COUNTS.values()), [ids for ids in digests.values() if len(ids) > 1]


def test_deterministic_for_a_seed(bench, tmp_path):
  out, _ = bench
  again, other = tmp_path / "again", tmp_path / "other"
  syn.generate(str(again), 0, COUNTS, workers=1)  # serial in-process vs the CLI's 2 workers
  syn.generate(str(other), 1, {split: n // 2 for split, n in COUNTS.items()}, workers=1)
  for split in COUNTS:
    with open(os.path.join(out, f"{split}.jsonl"), "rb") as a, open(again / f"{split}.jsonl", "rb") as b:
      assert a.read() == b.read()
    assert _rows(other, split) != _rows(out, split)
  with open(os.path.join(out, "benchmark.json")) as a, open(again / "benchmark.json") as b:
    assert a.read() == b.read()
  for name in os.listdir(os.path.join(out, "tokenizer")):  # the tokenizer depends on neither seed nor counts
    with open(os.path.join(out, "tokenizer", name), "rb") as a, open(other / "tokenizer" / name, "rb") as b:
      assert a.read() == b.read(), name
  for row in _rows(out, "test")[:6]:
    a, _ = read_frames(os.path.join(out, row["video"]), fps=8, max_frames=16)
    b, _ = read_frames(str(again / row["video"]), fps=8, max_frames=16)
    np.testing.assert_array_equal(a, b)


def test_duplicate_videos_are_redrawn_or_refused(tmp_path, monkeypatch):
  def tiny(rng, frames=16, size=56):
    """Only 4 distinct videos exist."""
    video = syn._blank(frames, size)
    video[:, :8, :8] = syn.PALETTE[syn.COLORS[int(rng.integers(4))]]
    return video, "Which colour?", "A", ["red", "green"], "multiple choice"

  monkeypatch.setattr(syn, "TASKS", {"tiny": tiny})
  syn.generate(str(tmp_path / "ok"), 0, {"train": 2, "val": 1, "test": 1}, workers=1)
  labels = [_labels(read_frames(str(tmp_path / "ok" / r["video"]), 8, 16)[0])[0, 4, 4] for s in COUNTS
            for r in _rows(tmp_path / "ok", s)]
  assert sorted(labels) == [1, 2, 3, 4]  # all four possible videos, none twice
  assert not any({"rationale", "evidence"} & set(r) for r in _rows(tmp_path / "ok", "train"))  # no scene recorded
  with pytest.raises(RuntimeError, match="cannot fill"):
    syn.generate(str(tmp_path / "full"), 0, {"train": 5}, workers=1)


def test_tokenizer_loads_and_round_trips(bench):
  from transformers import AutoTokenizer

  out, summary = bench
  tok = AutoTokenizer.from_pretrained(summary["tokenizer"])
  assert 300 < len(tok) <= 512
  for row in _rows(out, "test")[:12]:
    text = user_text(row["question"], row["question_type"], row.get("options"))
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == text and len(ids) < 80
  for special in ("<|latent_start|>", "<|latent_end|>", "<|latent_pad|>", "<|video_pad|>"):
    assert len(tok(special, add_special_tokens=False)["input_ids"]) == 1
  prompt = tok.apply_chat_template([{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "Hi"}]}],
                                   tokenize=False, add_generation_prompt=True)
  assert "<|video_pad|>" in prompt and prompt.endswith("<|im_start|>assistant\n")


def test_reasoning_tags_are_single_plain_tokens(bench):
  from transformers import AutoTokenizer

  out, summary = bench
  tok = AutoTokenizer.from_pretrained(summary["tokenizer"])
  for tag in ("<think>", "</think>", "<answer>", "</answer>"):
    assert len(tok(tag, add_special_tokens=False)["input_ids"]) == 1 and tag not in tok.all_special_tokens
  for word in syn.COLORS + syn.SHAPES + ("frames", "frame", "digit", "never", "then", "moves", "top", "bottom"):
    assert len(tok(" " + word, add_special_tokens=False)["input_ids"]) == 1, word
  for row in _rows(out, "test"):
    for text in reasoning_texts(row["rationale"], row["answer"]):
      ids = tok(text, add_special_tokens=False)["input_ids"]
      assert tok.decode(ids, skip_special_tokens=True) == text and len(ids) < 60, text


def test_processor_config_keeps_frames_and_zeroes_the_background(bench):
  _, summary = bench
  with open(os.path.join(summary["tokenizer"], "video_preprocessor_config.json")) as f:
    raw = json.load(f)
  assert raw["video_processor_type"] == "Qwen2VLVideoProcessor" and raw["do_rescale"] and raw["do_normalize"]
  assert raw["size"] == {"shortest_edge": 28 * 28, "longest_edge": 56 * 56}
  config = VideoProcessorConfig.from_pretrained_dir(summary["tokenizer"])
  assert (config.patch_size, config.temporal_patch_size, config.merge_size) == (14, 2, 2)
  assert (config.min_pixels, config.max_pixels) == (28 * 28, 56 * 56) and config.rescale_factor == 1 / 255
  assert config.image_mean == tuple(c / 255 for c in syn.BACKGROUND) and config.image_std == (0.25, 0.25, 0.25)
  video = syn.TASKS["direction"](np.random.default_rng(0))[0]
  patches, grid = patchify_uint8(video, config)
  assert grid.tolist() == [8, 4, 4]  # 56x56 kept: one merged token per 28x28 quadrant
  normed = normalize_patches(patches, config)
  assert (normed[patches == syn.BACKGROUND[0]] == 0).all() and (normed != 0).any()


def test_video_digests_list_every_clip(bench):
  out, _ = bench
  with open(os.path.join(out, "video_digests.txt")) as f:
    lines = f.read().splitlines()
  assert lines == sorted(set(lines)) and len(lines) == sum(COUNTS.values())
  first = syn._render("color_order", (0, zlib.crc32(b"train"), 0, 0), 16, 56)[0]  # train_00000, first attempt
  assert syn.digest(first) in lines
