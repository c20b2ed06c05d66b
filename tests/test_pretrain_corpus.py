"""Stage-1 corpus: descriptions and perception answers agree with the pixels, answers are balanced, the output is
the same for any worker count, excluded and repeated clips are redrawn, shards batch through the Grain pipeline,
the chunked h264 stream matches clips encoded alone, and the held-out perception set reads as a benchmark."""

import collections
import dataclasses
import itertools
import json
import os
import re
import subprocess
import sys
import types

import numpy as np
import pytest
from test_synthetic import _box_quadrant, _colors_in, _labels, _quadrant, _read_digit, _read_shape, _runs, _way
from tiny_models import CONFIG

from vlatent_jax.data import pretrain_corpus as pc
from vlatent_jax.data import records, render
from vlatent_jax.data import synthetic as syn
from vlatent_jax.data.preprocess import VideoProcessorConfig
from vlatent_jax.data.prompts import OPTION_LETTERS
from vlatent_jax.data.video import h264_round_trip, read_frames, write_mp4

CLIPS, EVAL = 96, 14  # EVAL: two questions of every kind
RECORDS = CLIPS * (1 + pc.QUESTIONS_PER_CLIP)  # a description and the perception questions of every clip
ENV = {**os.environ, "JAX_PLATFORMS": "cpu"}
FLASH = ("color_order", "count_events", "sum_digits")
STAYS = ("unvisited_quadrant", "final_position")


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
  root = tmp_path_factory.mktemp("bench")
  syn.generate(str(root), 0, {"test": 12}, workers=1)
  return root


@pytest.fixture(scope="module")
def built(bench, tmp_path_factory):
  """The CLI (2 spawn workers): a held-out perception set, then the corpus excluding it and the benchmark."""
  out = tmp_path_factory.mktemp("corpus")
  args = ["--bench", str(bench), "--out", str(out), "--clips", str(CLIPS), "--workers", "2", "--eval-count",
          str(EVAL), "--shard-size", "64"]
  proc = subprocess.run([sys.executable, "-m", "vlatent_jax.data.pretrain_corpus", *args], capture_output=True,
                        text=True, env=ENV, check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return out, json.loads(proc.stdout[proc.stdout.index("{"):])


def _scene(task, seed):
  rng = np.random.default_rng(seed)
  with render.recording() as events:
    video = syn.TASKS[task](rng)[0]
  return video, events, rng


# ---------------------------------------------------------------------------- texts agree with the pixels


def _check_description(task, text, video, labels):
  size = video.shape[1]
  runs = [(t0, t1 - 1) for t0, t1 in _runs(labels)]
  parts = text.split("; ")
  if task in FLASH:
    assert len(parts) == len(runs), (text, runs)
    for part, (t0, t1) in zip(parts, runs):  # in time order
      color, what, q = re.fullmatch(r"(\w+) (square|circle|digit \d) ([a-z]+-[a-z]+)", part).groups()
      assert [color] == _colors_in(labels[t0])
      assert q == _box_quadrant(labels[t0], size)
      if task == "sum_digits":
        assert [int(what[-1])] == _read_digit(labels[t0], size)
      else:
        assert what == _read_shape(labels[t0])
  elif task in STAYS:
    (part,) = parts
    first, *moves = part.split(", ")
    color, shape, q0 = re.fullmatch(r"(\w+) (square|circle) ([a-z]+-[a-z]+)", first).groups()
    assert {color} == set(_colors_in(labels[0])) and shape == _read_shape(labels[0])
    verb = "slides" if task == "final_position" else "jumps"
    said = [q0] + [re.fullmatch(rf"{verb} to ([a-z]+-[a-z]+)", m)[1] for m in moves]
    # the quadrants the object is in, frame after frame (a slide only crosses into the next stay's quadrant)
    assert said == [q for q, _ in itertools.groupby(_quadrant(lab, size) for lab in labels)]
  else:
    assert len(parts) == 2
    for part in parts:
      color, shape, way = re.fullmatch(r"(\w+) (square|circle) moves (\w+)", part).groups()
      assert _read_shape(labels[0], color) == shape and _way(labels, color) == way


def _shape_by_template(frame, color):
  """square or circle for a decoded frame (h264 blurs the corners a fill ratio looks at): the drawn shape, placed
  around the colour's centroid, that differs least from the frame."""
  size, s = frame.shape[0], syn._side(frame.shape[0])
  ys, xs = np.nonzero(_labels(frame[None])[0] == syn.COLORS.index(color) + 1)
  errors = {}
  for shape in syn.SHAPES:
    stamp = np.broadcast_to(np.array(syn.BACKGROUND, float), (s + 2, s + 2, 3)).copy()
    stamp[1:-1, 1:-1][syn._mask(shape, s)] = syn.PALETTE[color]
    for dy in (-1, 0, 1):
      for dx in (-1, 0, 1):
        y, x = round(ys.mean() - (s - 1) / 2) + dy - 1, round(xs.mean() - (s - 1) / 2) + dx - 1
        if 0 <= y <= size - s - 2 and 0 <= x <= size - s - 2:
          err = np.abs(frame[y:y + s + 2, x:x + s + 2] - stamp).sum()
          errors[shape] = min(errors.get(shape, np.inf), err)
  return min(errors, key=errors.get)


def _from_pixels(text, video, decoded=False, labels=None):
  """The answer to a perception question worked out from the frames alone (`decoded`: frames read back from h264)."""
  labels, size, q = _labels(video) if labels is None else labels, video.shape[1], text.question

  def shape_at(t, color=None):
    if not decoded:
      return _read_shape(labels[t], color)
    return _shape_by_template(video[t].astype(float), color or _colors_in(labels[t])[0])
  runs = [(t0, t1 - 1) for t0, t1 in _runs(labels)]
  if m := re.fullmatch(r"What colour is the (first|second|third|fourth|fifth|last) (shape|digit)\?", q):
    k = -1 if m[1] == "last" else ("first", "second", "third", "fourth", "fifth").index(m[1])
    (value,) = _colors_in(labels[runs[k][0]])
  elif m := re.fullmatch(r"What colour is the (square|circle|digit) shown at frame (\d+)\?", q):
    (value,) = _colors_in(labels[int(m[2])])
    assert m[1] == "digit" or shape_at(int(m[2])) == m[1]
  elif m := re.fullmatch(r"What colour is the (square|circle) that moves (\w+)\?", q):
    (value,) = [c for c in _colors_in(labels[0]) if _way(labels, c) == m[2] and shape_at(0, c) == m[1]]
  elif m := re.fullmatch(r"What shape is shown at frame (\d+)\?", q):
    value = shape_at(int(m[1]))
  elif m := re.fullmatch(r"What shape is the (\w+) object\?", q):
    value = shape_at(0, m[1])
  elif m := re.fullmatch(r"Where is the (\w+) (square|circle) at frame (\d+)\?", q):
    assert _colors_in(labels[int(m[3])]) == [m[1]]
    value = _quadrant(labels[int(m[3])], size)
  elif m := re.fullmatch(r"Which digit is shown at frame (\d+)\?", q):
    (digit,) = _read_digit(labels[int(m[1])], size)
    value = str(digit)
  elif m := re.fullmatch(r"Which way does the (\w+) (square|circle) move\?", q):
    assert shape_at(0, m[1]) == m[2]
    value = _way(labels, m[1])
  elif m := re.fullmatch(r"In which frames is the (\w+) (square|circle) in the ([a-z]+-[a-z]+)\?", q):
    frames = [t for t, lab in enumerate(labels) if _quadrant(lab, size) == m[3]]
    assert frames == list(range(frames[0], frames[-1] + 1))
    value = f"{frames[0]}-{frames[-1]}"
  elif m := re.fullmatch(r"In which frames is the (first|second|third|fourth|fifth) (shape|digit) shown\?", q):
    value = "{}-{}".format(*runs[("first", "second", "third", "fourth", "fifth").index(m[1])])
  elif m := re.fullmatch(r"In which frames is the (\w+) (square|circle|digit \d) shown\?", q):
    def same(t):
      is_digit = m[2].startswith("digit")
      return _colors_in(labels[t]) == [m[1]] and (
          _read_digit(labels[t], size) == [int(m[2][-1])] if is_digit else shape_at(t) == m[2])
    (value,) = ["{}-{}".format(t0, t1) for t0, t1 in runs if same(t0)]
  else:
    raise AssertionError(f"no pixel reader for {q!r}")
  return value if text.options is None else OPTION_LETTERS[text.options.index(value)]


def test_descriptions_and_every_kind_of_question_agree_with_the_pixels():
  kinds = collections.Counter()
  for task in syn.TASKS:
    for i in range(25):
      video, events, rng = _scene(task, [4, i])
      texts, labels = pc.all_questions(task, events, rng), _labels(video)
      assert texts[0].question == pc.DESCRIBE and texts[0].question_type == "free-form"
      _check_description(task, texts[0].answer, video, labels)
      for text in texts[1:]:
        assert _from_pixels(text, video, labels=labels) == text.answer, (task, i, text)
        kinds[text.kind] += 1
        if text.kind in pc.CHOICES:  # the same fact offered with shuffled options: the letter points at it
          offered = pc.with_options(text, rng)
          assert offered.question_type == "multiple choice" and len(set(offered.options)) == len(offered.options)
          assert _from_pixels(offered, video, labels=labels) == offered.answer, (task, i, offered)
  assert set(kinds) == set(pc.KINDS)


def test_hand_worked_descriptions():
  q = syn.QUADRANTS
  flashes = [render.Event("shape", "square", "red", 2, 4, q[0], q[0]),
             render.Event("digit", 7, "yellow", 9, 11, q[3], q[3])]
  assert pc.describe("color_order", flashes[::-1]) == "red square top-left; yellow digit 7 bottom-right"
  movers = [render.Event("shape", "circle", "green", 0, 15, q[1], q[0], "left"),
            render.Event("shape", "square", "white", 0, 15, q[0], q[2], "down")]
  assert pc.describe("direction", movers) == "green circle moves left; white square moves down"
  stays = ((q[0], 0, 4), (q[1], 5, 9))
  slider = [render.Event("shape", "square", "red", 0, 9, q[0], q[1], stays)]
  assert pc.describe("final_position", slider) == "red square top-left, slides to top-right"
  assert pc.describe("unvisited_quadrant", slider) == "red square top-left, jumps to top-right"


def test_answers_are_balanced():
  """Each kind on the tasks that can answer it: option letters uniform, digits uniform."""
  for kind, tasks in pc.KIND_TASKS.items():
    answers = collections.Counter()
    for i in range(480):
      task = tasks[i % len(tasks)]
      _, events, rng = _scene(task, [6, i])
      text = pc.perception(task, events, rng, kind)
      if text is not None:
        answers[text.answer] += 1
    if kind == "frames":
      continue  # spans, not choices
    values = {"digit": [str(d) for d in range(10)], "shape": list(syn.SHAPES), "colour": list(syn.COLORS),
              "order": list(syn.COLORS)}.get(kind, list("ABCD"))
    assert set(answers) == set(values), (kind, answers)
    expected = sum(answers.values()) / len(values)
    assert all(0.5 * expected <= answers[v] <= 1.6 * expected for v in values), (kind, answers)
  kinds = collections.Counter()
  for i in range(600):  # the corpus's own draw: every kind well represented
    task = pc._ALL[i % len(pc._ALL)]
    _, events, rng = _scene(task, [7, i])
    kinds[pc.perception(task, events, rng).kind] += 1
  assert set(kinds) == set(pc.KINDS) and min(kinds.values()) > 600 / len(pc.KINDS) / 2, kinds


# ---------------------------------------------------------------------------- the codec and the worker side


def test_chunked_h264_stream_matches_clips_encoded_alone(tmp_path):
  clips = [syn.TASKS[task](np.random.default_rng(i))[0] for i, task in enumerate(list(syn.TASKS) * 2)]
  chunked = h264_round_trip(np.concatenate(clips), fps=8, gop=16).reshape(len(clips), *clips[0].shape)
  for i, (clip, got) in enumerate(zip(clips, chunked)):
    write_mp4(clip, str(tmp_path / "alone.mp4"), fps=8)
    alone, _ = read_frames(str(tmp_path / "alone.mp4"), fps=8, max_frames=16)
    err = np.abs(got.astype(int) - alone.astype(int))
    assert err.mean() < 1.0 and np.percentile(err, 99) <= 12, (i, err.mean(), np.percentile(err, 99))
    assert (_labels(got) == _labels(alone)).mean() > 0.99
    assert not np.array_equal(got, clip)  # it did go through the codec


def test_worker_side_needs_neither_jax_nor_transformers(bench):
  code = ("import sys; from vlatent_jax.data import pretrain_corpus as pc, preprocess; "
          f"tok = {str(bench / 'tokenizer')!r}; "
          "pc._init(dict(tokenizer_dir=tok, processor=preprocess.VideoProcessorConfig.from_pretrained_dir(tok), "
          "seed=0, frames=16, size=56, fps=8, exclude=frozenset())); out = pc._chunk((0, 3, frozenset())); "
          "assert len(out) == 3 and out[0]['patches'].shape == (128, 1176); "
          "bad = [m for m in ('jax', 'flax', 'transformers', 'torch') if m in sys.modules]; assert not bad, bad")
  proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]


def test_prompt_and_answer_ids_match_prepare(bench):
  from vlatent_jax.data.prepare import PromptBuilder

  tok_dir = str(bench / "tokenizer")
  builder, tokens = PromptBuilder(tok_dir, 2), pc.Tokens(tok_dir, 2)
  grid = np.array([8, 4, 4])
  for task in syn.TASKS:
    video, events, rng = _scene(task, [8, 1])
    for text in pc.all_questions(task, events, rng):
      row = types.SimpleNamespace(question=text.question, question_type=text.question_type, options=text.options)
      np.testing.assert_array_equal(tokens.prompt_ids(text, grid), builder.prompt_ids(row, grid))
      np.testing.assert_array_equal(tokens.answer_ids(text.answer), builder.answer_ids(text.answer))


# ---------------------------------------------------------------------------- the written corpus


def test_spec_and_records(built, bench):
  out, summary = built
  with open(out / "spec.json") as f:
    spec = json.load(f)
  for key in ("version", "format", "fingerprint", "tokenizer", "processor", "fps", "max_frames", "num_frames",
              "frame_policy", "shards", "num_records", "counts"):
    assert key in spec, key
  assert spec["num_records"] == RECORDS == sum(s["count"] for s in spec["shards"]) == sum(spec["counts"].values())
  assert spec["counts"]["describe"] == CLIPS and set(spec["counts"]) == {"describe", *pc.KINDS}
  assert summary["corpus"]["counts"] == spec["counts"] and len(spec["shards"]) == -(-RECORDS // 64)
  config = VideoProcessorConfig.from_pretrained_dir(bench / "tokenizer")
  assert spec["processor"] == json.loads(json.dumps(dataclasses.asdict(config)))
  from vlatent_jax.data import pipeline

  assert pipeline.processor_config(str(out)) == config and pipeline.dataset_size(str(out)) == RECORDS
  import grain

  source = grain.sources.ArrayRecordDataSource([str(out / spec["shards"][0]["path"])])
  first = [records.decode(source[i]) for i in range(4)]
  per_clip = 1 + pc.QUESTIONS_PER_CLIP
  assert [r["meta"]["kind"] for r in first[::per_clip]] == ["describe"] * len(first[::per_clip])
  assert [r["meta"]["clip"] for r in first] == [k // per_clip for k in range(4)]
  assert first[0]["meta"]["task"] == "color_order"
  assert len({r["meta"]["kind"] for r in first[1:per_clip]}) == pc.QUESTIONS_PER_CLIP  # different kinds
  metas = [records.decode(r)["meta"] for s in spec["shards"]
           for r in grain.sources.ArrayRecordDataSource([str(out / s["path"])])]
  closed = [m for m in metas if m["kind"] in pc.CHOICES]
  offered = [m for m in closed if m["options"] is not None]
  assert all(m["question_type"] == "multiple choice" and m["answer"] in "ABCD" for m in offered)
  assert 0.3 < len(offered) / len(closed) < 0.7, (len(offered), len(closed))  # CHOICE_SHARE = 0.5
  for r in first:
    assert r["patches"].shape == (128, 1176) and r["video_grid_thw"].tolist() == [[8, 4, 4]]
    assert r["second_per_grid_ts"].tolist() == [0.25] and r["answer_ids"][-1] == pc.Tokens(
        str(bench / "tokenizer"), 2).end_id
  np.testing.assert_array_equal(first[0]["patches"], first[1]["patches"])  # one clip, several records


def test_same_output_for_any_worker_count(built, bench, tmp_path):
  out, _ = built
  exclude = syn.read_digests(str(bench)) | syn.read_digests(str(out / "perception_eval"))
  pc.build_corpus(str(tmp_path), str(bench / "tokenizer"), clips=CLIPS, seed=0, exclude=exclude, workers=0,
                  shard_size=64)
  names = sorted(n for n in os.listdir(out) if n.startswith("shard-") or n in ("spec.json", "video_digests.txt"))
  assert names == sorted(os.listdir(tmp_path)) and len(names) == -(-RECORDS // 64) + 2
  for name in names:
    assert (out / name).read_bytes() == (tmp_path / name).read_bytes(), name


def test_excluded_and_repeated_clips_are_redrawn(built, bench, tmp_path, monkeypatch):
  out, _ = built
  corpus = syn.read_digests(str(out))
  assert len(corpus) == CLIPS and not corpus & syn.read_digests(str(bench))
  assert not corpus & syn.read_digests(str(out / "perception_eval"))
  tok = str(bench / "tokenizer")
  first = pc.build_corpus(str(tmp_path / "a"), tok, clips=6, seed=0, workers=0)
  pc.build_corpus(str(tmp_path / "b"), tok, clips=6, seed=0, exclude=syn.read_digests(str(tmp_path / "a")),
                  workers=0)
  assert first["records"] == 6 * (1 + pc.QUESTIONS_PER_CLIP) and not syn.read_digests(str(tmp_path / "a")) & syn.read_digests(str(tmp_path / "b"))

  def tiny(rng, frames=16, size=56):
    """Only 8 distinct clips: 4 colours x 2 places."""
    video, color, y = syn._blank(frames, size), syn.COLORS[int(rng.integers(4))], 4 + 30 * int(rng.integers(2))
    video[2:5, y:y + 12, 4:16] = syn.PALETTE[color]
    render.record(render.Event("shape", "square", color, 2, 4, render.quadrant_at(y, 4, 12, 12, size), "top-left"))
    return video, "Which colour?", "A", ["red", "green"], "multiple choice"

  monkeypatch.setattr(syn, "TASKS", {name: tiny for name in pc._ALL})
  monkeypatch.setattr(pc, "CHUNK", 2)  # repeats across chunks: the parent redraws them
  summary = pc.build_corpus(str(tmp_path / "tiny"), tok, clips=8, seed=0, workers=0)
  assert len(syn.read_digests(str(tmp_path / "tiny"))) == 8 and summary["redrawn_across_chunks"] > 0
  with pytest.raises(RuntimeError, match="attempts"):
    pc.build_corpus(str(tmp_path / "full"), tok, clips=9, seed=0, workers=0)


def test_shards_batch_through_the_pipeline(built, bench):
  from transformers import AutoTokenizer

  from vlatent_jax.train.batch import make_dataset

  out, _ = built
  tok = AutoTokenizer.from_pretrained(str(bench / "tokenizer"))
  ids = {k: tok.convert_tokens_to_ids(t) for k, t in (
      ("video_token_id", "<|video_pad|>"), ("image_token_id", "<|image_pad|>"),
      ("vision_start_token_id", "<|vision_start|>"), ("vision_end_token_id", "<|vision_end|>"),
      ("latent_start_token_id", "<|latent_start|>"), ("latent_end_token_id", "<|latent_end|>"))}
  config = dataclasses.replace(CONFIG, llm=dataclasses.replace(CONFIG.llm, vocab_size=len(tok)), **ids)
  ds = make_dataset(str(out), model_config=config, num_latents=0, batch_size=4, max_answer_len=64, seed=0,
                    process_index=0, process_count=1, num_epochs=1)
  batches = list(iter(ds))
  assert len(batches) == RECORDS // 4
  batch = batches[0]
  assert batch["input_ids"].shape[0] == 4 and batch["vision"].patches.dtype == np.float32
  assert int((batch["input_ids"] == ids["video_token_id"]).sum()) == 4 * 32  # 8x4x4 patches, merged 2x2


def test_held_out_perception_set_reads_as_a_benchmark(built):
  from vlatent_jax.eval.readers import read

  out, summary = built
  questions, errors = read("embedded", str(out / "perception_eval"))
  assert not errors and len(questions) == EVAL == summary["perception_eval"]["count"]
  rounds = EVAL // len(pc.KINDS)  # every second round offers the closed-vocabulary kinds with options
  expected = {kind: rounds - (rounds // 2 if kind in pc.CHOICES else 0) for kind in pc.KINDS}
  expected.update({f"{kind}_options": rounds // 2 for kind in pc.CHOICES})
  assert collections.Counter(q.category for q in questions) == expected
  assert all((q.options is not None) == q.category.endswith("_options") for q in questions
             if q.category.split("_")[0] in pc.CHOICES)
  with open(out / "perception_eval" / "benchmark.json") as f:
    assert json.load(f)["video"]["read_with"] == {"fps": 8, "max_frames": 16}
  for q in questions:
    video, _ = read_frames(q.video, fps=8, max_frames=16)
    text = pc.Text(q.question, q.answer, q.options, q.question_type, q.category)
    assert _from_pixels(text, video, decoded=True) == q.answer, q
