"""Manifest adapters: plain JSONL, Video-R1 (JSONL or JSON array) and LLaVA rows -> Row; bad rows -> RowError."""

import json
import os

import pytest

from vlatent_jax.data.manifest import Row, RowError, detect_format, read_manifest


def _write_jsonl(path, rows):
  with open(path, "w") as f:
    for r in rows:
      f.write(r if isinstance(r, str) else json.dumps(r))
      f.write("\n")
  return str(path)


def test_plain_jsonl(tmp_path):
  path = _write_jsonl(tmp_path / "m.jsonl", [
      {"video": "a.mp4", "question": "Color?", "answer": "B", "options": ["red", "blue"], "id": 7},
      {"video": "sub/b.mp4", "question": "Color?", "answer": "B. blue", "options": ["A. red", "B. blue"]},
      {"video": "/abs/c.mp4", "question": "Color?", "answer": "blue", "options": ["red", "blue"]},
      "",
      {"video": "d.mp4", "question": "How many?", "answer": 3},
      {"video": "e.mp4", "question": "What?", "answer": "a dog"},
      {"video": "f.mp4", "question": "Speed?", "answer": "2.5", "question_type": "regression"},
  ])
  rows, errors = read_manifest(path)
  assert errors == []
  assert [r.line for r in rows] == [1, 2, 3, 5, 6, 7]
  assert rows[0] == Row(1, "7", str(tmp_path / "a.mp4"), "Color?", "B", ["red", "blue"], "multiple choice")
  assert rows[1].video == str(tmp_path / "sub" / "b.mp4") and rows[1].answer == "B" and rows[1].id == "line-2"
  assert rows[2].video == "/abs/c.mp4" and rows[2].answer == "B"  # the option's text -> its letter
  assert (rows[3].question_type, rows[3].answer, rows[3].options) == ("numerical", "3", None)
  assert (rows[4].question_type, rows[4].answer) == ("free-form", "a dog")
  assert (rows[5].question_type, rows[5].answer) == ("regression", "2.5")


VIDEO_R1 = [
    {"problem_id": 1, "problem": "What is on the screen?", "data_type": "video", "problem_type": "multiple choice",
     "options": ["A. a cat", "B. a dog"], "solution": "<answer>B</answer>", "path": "./videos/x.mp4"},
    {"problem_id": 2, "problem": "How many cars?", "data_type": "video", "problem_type": "numerical",
     "options": [], "solution": "<answer>4</answer>", "path": "./videos/y.mp4"},
    {"problem_id": 3, "problem": "How fast?", "data_type": "video", "problem_type": "regression",
     "options": [], "solution": "<answer> 1.25 </answer>", "path": "./videos/y.mp4"},
    {"problem_id": 4, "problem": "What happens?", "data_type": "video", "problem_type": "free-form",
     "options": [], "solution": "<answer>He jumps.</answer>", "path": "z.mp4"},
    {"problem_id": 5, "problem": "What text?", "data_type": "video", "problem_type": "OCR",
     "options": [], "solution": "<answer>EXIT</answer>", "path": "z.mp4"},
    {"problem_id": 6, "problem": "Which?", "data_type": "image", "problem_type": "multiple choice",
     "options": ["A. x", "B. y"], "solution": "<answer>A</answer>", "path": "img.jpg"},
    {"problem_id": 7, "problem": "Which?", "data_type": "video", "problem_type": "multiple choice",
     "options": [], "solution": "<answer>A</answer>", "path": "z.mp4"},
    {"problem_id": 8, "problem": "Count?", "data_type": "video", "problem_type": "numerical",
     "options": [], "solution": "<answer>many</answer>", "path": "z.mp4"},
    {"problem_id": 9, "problem": "Which?", "data_type": "video", "problem_type": "multiple choice",
     "options": ["A. x", "B. y"], "solution": "<answer>E</answer>", "path": "z.mp4"},
    {"problem_id": 10, "problem": "Hmm?", "data_type": "video", "problem_type": "essay",
     "options": [], "solution": "<answer>x</answer>", "path": "z.mp4"},
]


@pytest.mark.parametrize("as_array", [True, False])
def test_video_r1(tmp_path, as_array):
  if as_array:  # Video-R1 ships a JSON list; `line` is then the element's position
    path = tmp_path / "r1.json"
    path.write_text(json.dumps(VIDEO_R1, indent=2))
  else:
    path = _write_jsonl(tmp_path / "r1.jsonl", VIDEO_R1)
  rows, errors = read_manifest(str(path))
  assert [(r.line, r.id, r.question_type, r.answer) for r in rows] == [
      (1, "1", "multiple choice", "B"), (2, "2", "numerical", "4"), (3, "3", "regression", "1.25"),
      (4, "4", "free-form", "He jumps."), (5, "5", "OCR", "EXIT")]
  assert rows[0].options == ["A. a cat", "B. a dog"] and rows[1].options is None
  assert rows[0].video == str(tmp_path / "videos" / "x.mp4")
  assert [e.line for e in errors] == [6, 7, 8, 9, 10]
  reasons = [e.reason for e in errors]
  assert "not a video" in reasons[0] and errors[0].video == "img.jpg"
  assert "without options" in reasons[1]
  assert "not a number" in reasons[2]
  assert "not one of the option letters" in reasons[3]
  assert "unknown question type 'essay'" in reasons[4]


def _conv(question, answer):
  return [{"from": "human", "value": question}, {"from": "gpt", "value": answer}]


def test_llava(tmp_path):
  path = _write_jsonl(tmp_path / "llava.jsonl", [
      {"id": "v1", "video": "a.mp4", "conversations": _conv(
          "<video>\nWhat is the man holding?\nA. A cup\nB. A phone\nC. A pen\n"
          "Answer with the option's letter from the given choices directly.", "B.")},
      {"id": "v2", "video": "a.mp4", "conversations": _conv("<video>\nDescribe the scene.", "A busy street.")
       + [{"from": "human", "value": "More?"}, {"from": "gpt", "value": "No."}]},
      {"id": "v3", "video": "b.mp4", "conversations": _conv("<video>\nHow many people?", "2")},
      {"id": "v4", "video": "b.mp4", "conversations": _conv("<video>\nPick.\n(A) up\n(B) down", "(A) up")},
      {"id": "v5", "video": "b.mp4", "conversations": [{"from": "human", "value": "<video>\nQ?"}]},
      {"id": "v6", "video": "b.mp4", "conversations": "not a list"},
  ])
  rows, errors = read_manifest(path)
  assert [(r.id, r.question_type, r.answer) for r in rows] == [
      ("v1", "multiple choice", "B"), ("v2", "free-form", "A busy street."), ("v3", "numerical", "2"),
      ("v4", "multiple choice", "A")]
  assert rows[0].question == "What is the man holding?"
  assert rows[0].options == ["A. A cup", "B. A phone", "C. A pen"]
  assert rows[1].question == "Describe the scene."  # later turns are ignored
  assert [(e.line, "gpt" in e.reason) for e in errors] == [(5, True), (6, False)]


def test_malformed_rows_are_reported_not_fatal(tmp_path):
  path = _write_jsonl(tmp_path / "m.jsonl", [
      '{"video": "a.mp4", "question": "q", "answer": "x"',   # truncated JSON
      '[1, 2]',                                              # not an object
      {"question": "q", "answer": "x"},                      # no video
      {"video": "a.mp4", "answer": "x"},                     # no question
      {"video": "a.mp4", "question": "q", "answer": "A", "question_type": "multiple choice"},  # no options
      {"video": "a.mp4", "question": "q", "answer": "x"},    # fine
  ])
  rows, errors = read_manifest(path)
  assert [r.line for r in rows] == [6]
  assert [e.line for e in errors] == [1, 2, 3, 4, 5]
  assert errors[0].reason.startswith("bad JSON") and "not an object" in errors[1].reason
  assert errors[2] == RowError(3, "missing field 'video'", None)
  assert errors[3].reason == "missing field 'question'" and errors[3].video == "a.mp4"
  assert "without options" in errors[4].reason


def test_forced_format_and_detection(tmp_path):
  rows = [{"video": "a.mp4", "question": "q", "answer": "x"}, VIDEO_R1[0]]
  path = _write_jsonl(tmp_path / "m.jsonl", rows)
  assert [detect_format(r) for r in rows] == ["jsonl", "video_r1"]
  good, errors = read_manifest(path, "video_r1")
  assert [r.line for r in good] == [2] and [e.line for e in errors] == [1]
  with pytest.raises(ValueError, match="format must be one of"):
    read_manifest(path, "csv")


def test_bad_json_array_is_one_error(tmp_path):
  path = tmp_path / "r1.json"
  path.write_text('[\n {"problem": "x"},\n {oops}\n]')
  rows, errors = read_manifest(str(path))
  assert rows == [] and len(errors) == 1 and errors[0].line == 3 and "bad JSON array" in errors[0].reason
  assert not os.path.exists(tmp_path / "missing.json")
  with pytest.raises(FileNotFoundError, match="missing.json"):
    read_manifest(str(tmp_path / "missing.json"))
