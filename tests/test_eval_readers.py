"""Benchmark readers on small files in each benchmark's released schema: questions, answers, videos, categories."""

import json
import os

import numpy as np
import pytest

from vlatent_jax.data.video import write_mp4
from vlatent_jax.eval import readers
from vlatent_jax.eval.readers import Question, read


def _clip(path):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  write_mp4(np.full((2, 16, 16, 3), 128, np.uint8), str(path), fps=2)
  return str(path)


def _json(path, obj, lines=False):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "w") as f:
    if lines:
      f.writelines((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in obj)
    else:
      json.dump(obj, f, indent=2)
  return str(path)


def test_embedded_rows_from_file_and_folder(tmp_path):
  video = _clip(tmp_path / "videos" / "test_00000.mp4")
  _json(tmp_path / "test.jsonl", [
      {"id": "test_00000", "video": "videos/test_00000.mp4", "question": "Which colour appeared first?",
       "answer": "C", "options": ["red", "blue", "green", "white"], "question_type": "multiple choice",
       "task": "color_order"},
      {"id": "test_00001", "video": "videos/test_00001.mp4", "question": "How many shapes?", "answer": "3",
       "question_type": "numerical", "task": "count_events"},
      '{"id": "broken", "video": ',
      {"id": "test_00003", "video": "videos/x.mp4", "question": "Q?", "answer": "E", "options": ["a", "b"],
       "question_type": "multiple choice", "task": "color_order"},
  ], lines=True)
  questions, errors = read("embedded", str(tmp_path))  # the folder + split "test"
  assert questions[0] == Question("test_00000", video, "Which colour appeared first?", ["red", "blue", "green", "white"],
                                  "C", "multiple choice", "color_order", 1)
  assert (questions[1].answer, questions[1].question_type, questions[1].category) == ("3", "numerical", "count_events")
  assert [(e.line, "JSON" in e.reason) for e in errors[:1]] == [(3, True)]
  assert errors[1].line == 4 and "not one of the option letters" in errors[1].reason
  assert read("embedded", str(tmp_path / "test.jsonl"), limit=1)[0] == questions[:1]


def test_video_r1_eval_json(tmp_path):
  video = _clip(tmp_path / "Evaluation" / "MVBench" / "clip.mp4")  # paths are relative to src/r1-v/
  _json(tmp_path / "Evaluation" / "eval_mvbench.json", [
      {"problem_id": 1, "problem": "What happens?", "data_type": "video", "problem_type": "multiple choice",
       "options": ["A. a cup falls", "B. a door opens"], "process": "", "solution": "<answer>B</answer>",
       "path": "./Evaluation/MVBench/clip.mp4", "data_source": "MVBench"},
      {"problem_id": 2, "problem": "How far?", "data_type": "video", "problem_type": "regression", "options": [],
       "solution": "<answer>2.5</answer>", "path": "./Evaluation/MVBench/clip.mp4",
       "original_question_type": "object_abs_distance"},
      {"problem_id": 3, "problem": "Image?", "data_type": "image", "problem_type": "OCR", "solution": "x",
       "path": "./a.png"},
  ])
  questions, errors = read("video_r1", str(tmp_path / "Evaluation" / "eval_mvbench.json"))
  assert [(q.id, q.answer, q.question_type, q.category, q.video) for q in questions] == [
      ("1", "B", "multiple choice", "MVBench", video), ("2", "2.5", "regression", "object_abs_distance", video)]
  assert [(e.line, "not a video" in e.reason) for e in errors] == [(3, True)]


def test_mvbench_tasks(tmp_path):
  video = _clip(tmp_path / "video" / "clevrer" / "video_validation" / "video_10000.mp4")
  _json(tmp_path / "json" / "moving_direction.json", [
      {"video": "video_10000.mp4", "question": "Which direction does the cube move?",
       "candidates": ["left", "right", "up"], "answer": "right"},
      {"video": "video_10001.mp4", "question": "Q", "candidates": ["x", "y"], "answer": "z"},
  ])
  _json(tmp_path / "json" / "action_sequence.json", [
      {"video": "ZS9XR.mp4", "question": "What did the person do first?", "candidates": ["sat", "stood"],
       "answer": "sat", "start": 1.5, "end": 9.0}])
  questions, errors = read("mvbench", str(tmp_path))
  by_task = {q.category: q for q in questions}
  assert set(by_task) == {"moving_direction", "action_sequence"}
  assert (by_task["moving_direction"].answer, by_task["moving_direction"].video) == ("B", video)
  assert by_task["moving_direction"].options == ["left", "right", "up"]
  seq = by_task["action_sequence"]
  assert seq.answer == "A" and seq.extra == {"start": 1.5, "end": 9.0}
  assert seq.video == str(tmp_path / "video" / "star" / "Charades_v1_480" / "ZS9XR.mp4")  # missing: first candidate
  assert len(errors) == 1 and errors[0].line == 2 and errors[0].reason.startswith("moving_direction.json: ")
  assert len(read("mvbench", str(tmp_path / "json" / "moving_direction.json"))[0]) == 1


def test_videomme(tmp_path):
  video = _clip(tmp_path / "data" / "fFjv93ACGo8.mp4")
  _json(tmp_path / "videomme" / "test.json", [
      {"video_id": "001", "duration": "short", "domain": "Knowledge", "sub_category": "Humanity & History",
       "url": "https://www.youtube.com/watch?v=fFjv93ACGo8", "videoID": "fFjv93ACGo8", "question_id": "001-1",
       "task_type": "Counting Problem", "question": "How many people appear?",
       "options": ["A. 1.", "B. 2.", "C. 3.", "D. 4."], "answer": "C"},
      {"videoID": "fFjv93ACGo8", "question_id": "001-2", "task_type": "OCR Problems", "question": "Q",
       "options": ["A. x", "B. y"]},
  ])
  questions, errors = read("videomme", str(tmp_path / "videomme" / "test.json"))
  q = questions[0]
  assert (q.id, q.answer, q.category, q.video, q.extra["duration"]) == (
      "001-1", "C", "Counting Problem", video, "short")
  assert [(e.line, e.reason) for e in errors] == [(2, "missing field 'answer'")]


def test_tempcompass_nested_and_rows(tmp_path):
  video = _clip(tmp_path / "videos" / "1007239.mp4")
  _json(tmp_path / "questions" / "multi-choice.json", {
      "1007239": {
          "speed": [{"question": "How fast does the car move?\nA. slowly\nB. quickly", "answer": "B. quickly"}],
          "direction": [{"question": "Where does it go?\nA. left\nB. right\nC. up", "answer": "A. left"},
                        {"question": "No options here?", "answer": "yes"}]}})
  questions, errors = read("tempcompass", str(tmp_path / "questions" / "multi-choice.json"))
  assert [(q.category, q.question, q.answer, q.options, q.video) for q in questions] == [
      ("speed", "How fast does the car move?", "B", ["A. slowly", "B. quickly"], video),
      ("direction", "Where does it go?", "A", ["A. left", "B. right", "C. up"], video)]
  assert [e.line for e in errors] == [3]
  rows = _json(tmp_path / "multi-choice.jsonl", [
      {"video_id": "1007239", "question": "Speed?\nA. slow\nB. fast", "answer": "A. slow", "dim": "speed"}],
      lines=True)
  assert read("tempcompass", rows)[0][0].video == video  # lmms-lab layout: rows beside videos/


def test_vsibench_numeric_types_use_mra(tmp_path):
  video = _clip(tmp_path / "arkitscenes" / "41069025.mp4")
  _json(tmp_path / "test.jsonl", [
      {"id": 0, "dataset": "arkitscenes", "scene_name": "41069025", "question_type": "object_counting",
       "question": "How many chair(s) are in this room?", "options": None, "ground_truth": "4"},
      {"id": 1, "dataset": "arkitscenes", "scene_name": "41069025", "question_type": "object_rel_distance",
       "question": "Which is closest to the sofa?", "options": ["A. table", "B. lamp", "C. tv"], "ground_truth": "B"},
      {"id": 2, "dataset": "scannet", "scene_name": "scene0001_00", "question_type": "room_size_estimation",
       "question": "How big is the room (m^2)?", "options": None, "ground_truth": 21.7},
      {"id": 3, "dataset": "scannet", "scene_name": "s", "question_type": "weather", "question": "Q",
       "ground_truth": "1"},
  ], lines=True)
  questions, errors = read("vsibench", str(tmp_path / "test.jsonl"))
  assert [(q.question_type, q.answer, q.category) for q in questions] == [
      ("regression", "4", "object_counting"), ("multiple choice", "B", "object_rel_distance"),
      ("regression", "21.7", "room_size_estimation")]
  assert questions[0].video == video and questions[0].options is None
  assert questions[2].video == str(tmp_path / "scannet" / "scene0001_00.mp4")
  assert [e.line for e in errors] == [4]


def test_mmvu(tmp_path):
  video = _clip(tmp_path / "videos" / "Chemistry" / "0.mp4")
  url = "https://huggingface.co/datasets/yale-nlp/MMVU/resolve/main/videos/{}/0.mp4"
  _json(tmp_path / "validation.json", [
      {"id": "validation_1", "video": url.format("Chemistry"), "question_type": "multiple-choice",
       "metadata": {"subject": "Chemistry"}, "question": "How many grams of precipitate?",
       "choices": {"A": "10.0", "B": "5.0", "C": "12.0", "D": "15.0", "E": "20.0"}, "answer": "A"},
      {"id": "validation_0", "video": url.format("Art"), "question_type": "open-ended",
       "metadata": {"subject": "Art"}, "question": "Which cinematic technique is shown?",
       "choices": {"A": "", "B": "", "C": "", "D": "", "E": ""}, "answer": "Dolly Zoom"},
  ])
  questions, errors = read("mmvu", str(tmp_path / "validation.json"))
  assert errors == []
  mc, open_ended = questions
  assert (mc.question_type, mc.answer, mc.category, mc.video) == ("multiple choice", "A", "Chemistry", video)
  assert mc.options == ["A. 10.0", "B. 5.0", "C. 12.0", "D. 15.0", "E. 20.0"]
  assert (open_ended.question_type, open_ended.answer, open_ended.options) == ("free-form", "Dolly Zoom", None)


def test_videommmu(tmp_path):
  video = _clip(tmp_path / "Science" / "validation_Chemistry_3.mp4")
  _json(tmp_path / "Perception" / "validation.jsonl", [
      {"id": "validation_Chemistry_3", "question": "Which element is shown?", "options": ["Na", "K", "Li"],
       "answer": "B", "question_type": "multiple-choice", "link_selected": "https://youtu.be/x"},
      {"id": "validation_Chemistry_3", "question": "What mass (g)?", "options": [], "answer": "12.5",
       "question_type": "open"},
      {"id": "validation_Art_Theory_7", "question": "Which style?", "options": "['Baroque', 'Rococo']",
       "answer": "A", "question_type": "multiple-choice"},
  ], lines=True)
  questions, errors = read("videommmu", str(tmp_path / "Perception" / "validation.jsonl"))
  assert errors == []
  assert [(q.question_type, q.answer, q.category) for q in questions] == [
      ("multiple choice", "B", "Perception"), ("numerical", "12.5", "Perception"),
      ("multiple choice", "A", "Perception")]
  assert questions[0].video == video and questions[0].extra == {"subject": "Chemistry"}
  assert questions[2].options == ["Baroque", "Rococo"]
  assert questions[2].video.endswith("/Art/validation_Art_Theory_7.mp4")  # missing: named by its discipline folder


def test_registry_errors(tmp_path):
  assert set(readers.BENCHMARKS) == {"embedded", "video_r1", "mvbench", "videomme", "tempcompass", "vsibench",
                                     "mmvu", "videommmu"}
  with pytest.raises(ValueError, match="unknown benchmark"):
    read("kinetics", str(tmp_path))
  with pytest.raises(FileNotFoundError, match="nope"):
    read("mvbench", str(tmp_path / "nope"))
  parquet = tmp_path / "test.parquet"
  parquet.write_bytes(b"PAR1")
  try:
    import pyarrow  # noqa: F401
  except ImportError:
    with pytest.raises(RuntimeError, match="pyarrow"):
      read("vsibench", str(parquet))
