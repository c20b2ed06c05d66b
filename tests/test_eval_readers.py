"""Benchmark readers on small files in each benchmark's released schema (field names, nesting, value types, file
type: JSON as released, parquet written with pyarrow as the hub serves it), one per layout and variant: the gold
letter / number / text per row, videos, time windows, categories, and the bad rows with file, row and field."""

import json
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from vlatent_jax.eval import readers
from vlatent_jax.eval.readers import Question, SkippedRow, read


def _touch(path):
  """A video file the readers find (they check existence; decoding is the harness's and video.py's job)."""
  os.makedirs(os.path.dirname(path), exist_ok=True)
  open(path, "wb").close()
  return str(path)


def _frames(folder, n=6):
  os.makedirs(folder, exist_ok=True)
  for i in range(1, n + 1):
    open(os.path.join(folder, f"{i:05d}.jpg"), "wb").close()
  return str(folder)


def _json(path, obj, lines=False):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "w") as f:
    if lines:
      f.writelines((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in obj)
    else:
      json.dump(obj, f, indent=2)
  return str(path)


def _parquet(path, rows, schema):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  pq.write_table(pa.Table.from_pylist(rows, schema=schema), str(path))
  return str(path)


def _skips(errors):
  return [(os.path.basename(e.file or ""), e.line, e.field) for e in errors]


def test_embedded_rows_from_file_and_folder(tmp_path):
  video = _touch(tmp_path / "videos" / "test_00000.mp4")
  _json(tmp_path / "test.jsonl", [
      {"id": "test_00000", "video": "videos/test_00000.mp4", "question": "Which colour appeared first?",
       "answer": "C", "options": ["red", "blue", "green", "white"], "question_type": "multiple choice",
       "task": "color_order"},
      {"id": "test_00001", "video": "videos/test_00001.mp4", "question": "How many shapes?", "answer": "3",
       "question_type": "numerical", "task": "count_events"},
      '{"id": "broken", "video": ',
      {"id": "test_00003", "video": "videos/x.mp4", "question": "Q?", "answer": "E", "options": ["a", "b"],
       "question_type": "multiple choice", "task": "color_order"},
      {"id": "test_00004", "video": ["videos/x.mp4"], "question": "Q?", "answer": "3", "task": "count_events"},
      {"id": "test_00000", "video": "videos/test_00000.mp4", "question": "Again?", "answer": "1",
       "question_type": "numerical", "task": "count_events"},
  ], lines=True)
  file = str(tmp_path / "test.jsonl")
  questions, errors = read("embedded", str(tmp_path))  # the folder + split "test"
  assert questions[0] == Question("test_00000", video, "Which colour appeared first?", ["red", "blue", "green", "white"],
                                  "C", "multiple choice", "color_order", 1, file=file)
  assert (questions[1].answer, questions[1].question_type, questions[1].category) == ("3", "numerical", "count_events")
  assert len(questions) == 2
  assert _skips(errors) == [("test.jsonl", 3, None), ("test.jsonl", 4, "answer"), ("test.jsonl", 5, "video"),
                            ("test.jsonl", 6, "id")]
  assert "JSON" in errors[0].reason and "not one of the option letters" in errors[1].reason
  assert "must be text, got list" in errors[2].reason and "duplicate id 'test_00000'" in errors[3].reason
  assert read("embedded", file, limit=1)[0] == questions[:1]


def test_video_r1_eval_json(tmp_path):
  video = _touch(tmp_path / "Evaluation" / "MVBench" / "clip.mp4")  # paths are relative to src/r1-v/
  _json(tmp_path / "Evaluation" / "eval_mvbench.json", [
      {"problem_id": 1, "problem": "What happens?", "data_type": "video", "problem_type": "multiple choice",
       "options": ["A. a cup falls", "B. a door opens"], "process": "", "solution": "<answer>B</answer>",
       "path": "./Evaluation/MVBench/clip.mp4", "data_source": "MVBench"},
      {"problem_id": 2, "problem": "How far?", "data_type": "video", "problem_type": "regression", "options": [],
       "solution": "<answer>2.5</answer>", "path": "./Evaluation/MVBench/clip.mp4",
       "original_question_type": "object_abs_distance"},
      {"problem_id": 3, "problem": "Image?", "data_type": "image", "problem_type": "OCR", "solution": "x",
       "path": "./a.png"},
      {"problem_id": 4, "problem": "Which?", "data_type": "video", "problem_type": "multiple choice",
       "options": ["A. x", "B. y"], "solution": "<answer>C</answer>", "path": "./Evaluation/MVBench/clip.mp4"},
  ])
  questions, errors = read("video_r1", str(tmp_path / "Evaluation" / "eval_mvbench.json"))
  assert [(q.id, q.answer, q.question_type, q.category, q.video) for q in questions] == [
      ("1", "B", "multiple choice", "MVBench", video), ("2", "2.5", "regression", "object_abs_distance", video)]
  assert _skips(errors) == [("eval_mvbench.json", 3, "solution"), ("eval_mvbench.json", 4, "solution")]
  assert "not a video" in errors[0].reason and "not one of the option letters" in errors[1].reason


def test_mvbench_release_layout(tmp_path):
  """OpenGVLab/MVBench: json/<task>.json, answers as candidate text, videos under video/ in the release's formats
  (mp4, webm, avi, tvqa frame folders), start / end bounds applied as the sampling window."""
  root = tmp_path / "MVBench"
  clevrer = _touch(root / "video" / "clevrer" / "video_validation" / "video_10000.mp4")
  charades = _touch(root / "video" / "star" / "Charades_v1_480" / "ZS9XR.mp4")
  ssv2 = _touch(root / "video" / "ssv2_video" / "74225.webm")
  ntu = _touch(root / "video" / "nturgbd" / "S001C001P001R001A001_rgb.avi")
  tvqa = _frames(root / "video" / "tvqa" / "frames_fps3_hq" / "castle_s07e04_seg02_clip_14")
  _json(root / "json" / "moving_direction.json", [
      {"video": "video_10000.mp4", "question": "Which direction does the cube move?",
       "candidates": ["left", "right", "up"], "answer": "right"},
      {"video": "video_10001.mp4", "question": "Q", "candidates": ["x", "y"], "answer": "z"},
      {"video": "video_10002.mp4", "question": "Q", "candidates": "x, y", "answer": "x"},
      {"video": "video_10000.mp4", "question": "Which one?", "candidates": ["B", "A"], "answer": "A"},
  ])
  _json(root / "json" / "action_sequence.json", [
      {"video": "ZS9XR.mp4", "question": "What did the person do first?", "candidates": ["sat", "stood"],
       "answer": "stood", "start": 1.5, "end": 9.0},
      {"video": "ZS9XR.mp4", "question": "Then?", "candidates": ["sat", "stood"], "answer": "sat", "start": "1.5",
       "end": 9.0}])
  _json(root / "json" / "action_antonym.json", [
      {"video": "74225.webm", "question": "What is happening?", "candidates": ["opening", "closing", "none"],
       "answer": "closing"}])
  _json(root / "json" / "fine_grained_pose.json", [
      {"video": "S001C001P001R001A001_rgb.avi", "question": "Which pose?", "candidates": ["sit", "stand"],
       "answer": "Stand."}])
  _json(root / "json" / "action_count.json", [
      {"video": "video_x.mp4", "question": "How many times?", "candidates": [3, 2, 5], "answer": 2}])
  _json(root / "json" / "episodic_reasoning.json", [
      {"video": "castle_s07e04_seg02_clip_14", "question": "Why does Castle leave?", "candidates": ["a", "b", "c"],
       "answer": "c", "start": 0.5, "end": 1.5}])
  questions, errors = read("mvbench", str(root))
  by_id = {q.id: q for q in questions}
  assert sorted(by_id) == ["action_antonym/1", "action_count/1", "action_sequence/1", "episodic_reasoning/1",
                           "fine_grained_pose/1", "moving_direction/1", "moving_direction/4"]
  q = by_id["moving_direction/1"]
  assert (q.answer, q.options, q.video, q.window, q.category) == ("B", ["left", "right", "up"], clevrer, None,
                                                                   "moving_direction")
  assert by_id["moving_direction/4"].answer == "B"  # the candidate "A" is the second one: letter B, not A
  seq = by_id["action_sequence/1"]
  assert (seq.answer, seq.video, seq.window, seq.extra) == ("B", charades, (1.5, 9.0), {"start": 1.5, "end": 9.0})
  assert (by_id["action_antonym/1"].answer, by_id["action_antonym/1"].video) == ("B", ssv2)
  assert (by_id["fine_grained_pose/1"].answer, by_id["fine_grained_pose/1"].video) == ("B", ntu)
  assert (by_id["action_count/1"].answer, by_id["action_count/1"].options) == ("B", ["3", "2", "5"])
  # a missing video keeps the release's folder for the report
  assert by_id["action_count/1"].video == str(root / "video" / "perception" / "videos" / "video_x.mp4")
  er = by_id["episodic_reasoning/1"]
  assert (er.answer, er.video, er.window, er.folder_fps) == ("C", tvqa, (0.5, 1.5), 3.0)
  assert _skips(errors) == [("action_sequence.json", 2, "start"), ("moving_direction.json", 2, "answer"),
                            ("moving_direction.json", 3, "candidates")]
  assert "not one of the candidates" in errors[1].reason
  assert len(read("mvbench", str(root / "json" / "moving_direction.json"))[0]) == 2  # one task file


def test_mvbench_lmms_eval_layout(tmp_path):
  """lmms-eval's copies (OpenGVLab/MVBench "video" revision unpacked in its cache): no video/ folder, clips
  already cut to their bounds (*_segment: no window), nturgbd converted to mp4, tvqa as cut mp4 clips."""
  root = tmp_path / "mvbench_video"
  cut = _touch(root / "star" / "Charades_segment" / "ZS9XR.mp4")
  ntu = _touch(root / "nturgbd_convert" / "S001C001P001R001A001_rgb.mp4")
  tvqa = _touch(root / "tvqa" / "video_fps3_hq_segment" / "castle_s07e04_seg02_clip_14.mp4")
  clevrer = _touch(root / "data0613" / "clevrer" / "video_validation" / "video_10000.mp4")
  _json(root / "json" / "action_sequence.json", [
      {"video": "ZS9XR.mp4", "question": "First?", "candidates": ["sat", "stood"], "answer": "sat", "start": 1.5,
       "end": 9.0}])
  _json(root / "json" / "fine_grained_pose.json", [
      {"video": "S001C001P001R001A001_rgb.avi", "question": "Pose?", "candidates": ["sit", "stand"], "answer": "sit"}])
  _json(root / "json" / "episodic_reasoning.json", [
      {"video": "castle_s07e04_seg02_clip_14", "question": "Why?", "candidates": ["a", "b"], "answer": "b",
       "start": 0.5, "end": 1.5}])
  _json(root / "json" / "moving_count.json", [
      {"video": "video_10000.mp4", "question": "How many?", "candidates": ["1", "2"], "answer": "2"}])
  questions, errors = read("mvbench", str(root))
  assert errors == []
  got = {q.category: (q.answer, q.video, q.window) for q in questions}
  assert got == {"action_sequence": ("A", cut, None), "fine_grained_pose": ("A", ntu, None),
                 "episodic_reasoning": ("B", tvqa, None), "moving_count": ("B", clevrer, None)}


_VIDEOMME_SCHEMA = pa.schema([("video_id", pa.string()), ("duration", pa.string()), ("domain", pa.string()),
                              ("sub_category", pa.string()), ("url", pa.string()), ("videoID", pa.string()),
                              ("question_id", pa.string()), ("task_type", pa.string()), ("question", pa.string()),
                              ("options", pa.list_(pa.string())), ("answer", pa.string())])


def test_videomme_parquet(tmp_path):
  """lmms-lab/Video-MME: videomme/test-00000-of-00001.parquet, videos unzipped into data/."""
  video = _touch(tmp_path / "data" / "fFjv93ACGo8.mp4")
  mkv = _touch(tmp_path / "data" / "Lr5Ne5ts1tw.mkv")
  base = {"domain": "Knowledge", "sub_category": "Humanity & History", "url": "https://www.youtube.com/watch?v=x",
          "task_type": "Counting Problem", "question": "How many people appear?"}
  _parquet(tmp_path / "videomme" / "test-00000-of-00001.parquet", [
      {**base, "video_id": "001", "duration": "short", "videoID": "fFjv93ACGo8", "question_id": "001-1",
       "options": ["A. 1.", "B. 2.", "C. 3.", "D. 4."], "answer": "C"},
      {**base, "video_id": "601", "duration": "long", "videoID": "Lr5Ne5ts1tw", "question_id": "601-1",
       "task_type": "OCR Problems", "options": ["A. x", "B. y", "C. z", "D. w"], "answer": "A"},
      {**base, "video_id": "002", "duration": "short", "videoID": "fFjv93ACGo8", "question_id": "002-1",
       "options": ["A. x", "B. y", "C. z", "D. w"], "answer": "E"},
      {**base, "video_id": "003", "duration": "medium", "videoID": "fFjv93ACGo8", "question_id": "003-1",
       "options": ["A. x", "B. y"], "answer": None},
  ], _VIDEOMME_SCHEMA)
  questions, errors = read("videomme", str(tmp_path))  # the folder: its parquet file
  assert [(q.id, q.answer, q.category, q.video, q.extra["duration"]) for q in questions] == [
      ("001-1", "C", "Counting Problem", video, "short"), ("601-1", "A", "OCR Problems", mkv, "long")]
  assert questions[0].options == ["A. 1.", "B. 2.", "C. 3.", "D. 4."]
  assert _skips(errors) == [("test-00000-of-00001.parquet", 3, "answer"), ("test-00000-of-00001.parquet", 4, "answer")]
  assert errors[1].reason == "missing field 'answer'"


def _tempcompass_nested(root):
  _json(root / "questions" / "multi-choice.json", {
      "1034419625": {
          "action": [{"question": "What is the man doing?\nA. dunking\nB. dribbling\nC. passing",
                      "answer": "A. dunking"}],
          "direction": [{"question": "Where does he go?\nA. left\nB. right", "answer": "B. right"},
                        {"question": "No options here?", "answer": "yes"}]}})
  _json(root / "questions" / "yes_no.json", {
      "1034419625": {"action": [{"question": "Is the man dunking?", "answer": "yes"},
                                {"question": "Is the man dribbling a basketball?", "answer": "no"},
                                {"question": "Is he?", "answer": "maybe"}]},
      "1034419625_reverse": {"direction": [{"question": "Is the man moving from right to left?", "answer": "yes"}]}})
  _json(root / "questions" / "caption_matching.json", {
      "1034419625": {"action": [
          {"question": "Which description is a more suitable match for the video?\nOption 1: The man is dribbling a "
                       "basketball.\nOption 2: A man is dunking a basketball.",
           "answer": "Option 2: A man is dunking a basketball."},
          {"question": "Which caption matches the video better?\nCaption A: A man is dunking a basketball.\n"
                       "Caption B: The man is shooting a basketball.", "answer": "Caption A: A man is dunking a basketball."},
          {"question": "Which caption matches the video better?\nCaption A: x.\nCaption B: y.", "answer": "Caption C: z."}]}})
  _json(root / "questions" / "captioning.json", {
      "1034419625": {"action": [{"question": "Describe the video.", "answer": "...", "mc_question": "?",
                                 "mc_answer": "A. x"}]}})


def test_tempcompass_release_json(tmp_path):
  """llyx97/TempCompass questions/<format>.json {video_id: {dim: [{question, answer}]}}; captioning skipped."""
  video = _touch(tmp_path / "videos" / "1034419625.mp4")
  reverse = _touch(tmp_path / "videos" / "1034419625_reverse.mp4")
  _tempcompass_nested(tmp_path)
  questions, errors = read("tempcompass", str(tmp_path))  # the release root: its questions/ folder
  got = [(q.id, q.question_type, q.answer, q.options, q.match) for q in questions]
  assert got == [
      ("caption_matching/1034419625/action/1", "multiple choice", "B",
       ["The man is dribbling a basketball.", "A man is dunking a basketball."], ""),
      ("caption_matching/1034419625/action/2", "multiple choice", "A",
       ["A man is dunking a basketball.", "The man is shooting a basketball."], ""),
      ("multi-choice/1034419625/action/1", "multiple choice", "A", ["A. dunking", "B. dribbling", "C. passing"], ""),
      ("multi-choice/1034419625/direction/1", "multiple choice", "B", ["A. left", "B. right"], ""),
      ("yes_no/1034419625/action/1", "free-form", "yes", None, "yes_no"),
      ("yes_no/1034419625/action/2", "free-form", "no", None, "yes_no"),
      ("yes_no/1034419625_reverse/direction/1", "free-form", "yes", None, "yes_no")]
  assert questions[0].question == "Which description is a more suitable match for the video?"
  assert [(q.category, q.extra["format"], q.video) for q in questions[4:]] == [
      ("action", "yes_no", video), ("action", "yes_no", video), ("direction", "yes_no", reverse)]
  assert _skips(errors) == [("captioning.json", 0, None), ("caption_matching.json", 3, "answer"),
                            ("multi-choice.json", 3, "question"), ("yes_no.json", 3, "answer")]
  assert "captioning" in errors[0].reason and "LLM judge" in errors[0].reason


def test_tempcompass_lmms_parquet_matches_release_ids(tmp_path):
  """lmms-lab/TempCompass <format>/test-*.parquet rows {video_id, question, answer, dim}: same ids as the JSON."""
  _touch(tmp_path / "videos" / "1034419625.mp4")
  _tempcompass_nested(tmp_path / "release")
  schema = pa.schema([("video_id", pa.string()), ("dim", pa.string()), ("question", pa.string()),
                      ("answer", pa.string())])
  for fmt in ("multi-choice", "yes_no", "caption_matching"):
    with open(tmp_path / "release" / "questions" / f"{fmt}.json") as f:
      nested = json.load(f)
    rows = [{"video_id": v, "dim": d, **item} for v, dims in nested.items() for d, items in dims.items()
            for item in items]
    _parquet(tmp_path / "lmms" / fmt / "test-00000-of-00001.parquet", rows, schema)
  from_json, _ = read("tempcompass", str(tmp_path / "release" / "questions"))
  from_parquet, errors = read("tempcompass", str(tmp_path / "lmms"))
  assert [(q.id, q.answer, q.options) for q in from_parquet] == [(q.id, q.answer, q.options) for q in from_json]
  assert len(from_parquet) == 7 and [e.line for e in errors] == [3, 3, 3]
  with pytest.raises(ValueError, match="task format"):
    read("tempcompass", _json(tmp_path / "other.json", {"1": {"action": []}}))


_VSI_SCHEMA = pa.schema([("id", pa.int64()), ("dataset", pa.string()), ("scene_name", pa.string()),
                         ("question_type", pa.string()), ("question", pa.string()),
                         ("options", pa.list_(pa.string())), ("ground_truth", pa.string())])
_VSI_ROWS = [
    {"id": 0, "dataset": "arkitscenes", "scene_name": "41069025", "question_type": "object_counting",
     "question": "How many chair(s) are in this room?", "options": None, "ground_truth": "4"},
    {"id": 1, "dataset": "arkitscenes", "scene_name": "41069025", "question_type": "object_rel_distance",
     "question": "Which is closest to the sofa?", "options": ["A. table", "B. lamp", "C. tv"], "ground_truth": "B"},
    {"id": 2, "dataset": "scannet", "scene_name": "scene0001_00", "question_type": "room_size_estimation",
     "question": "How big is the room (m^2)?", "options": None, "ground_truth": "21.7"},
    {"id": 3, "dataset": "scannet", "scene_name": "s", "question_type": "weather", "question": "Q", "options": None,
     "ground_truth": "1"},
    {"id": 4, "dataset": "scannetpp", "scene_name": "s", "question_type": "object_abs_distance", "question": "Q",
     "options": None, "ground_truth": "about two"},
]


def test_vsibench_parquet_and_jsonl(tmp_path):
  """nyu-visionx/VSI-Bench test-00000-of-00001.parquet (and its test.jsonl copy beside it: read once)."""
  video = _touch(tmp_path / "arkitscenes" / "41069025.mp4")
  _parquet(tmp_path / "test-00000-of-00001.parquet", _VSI_ROWS, _VSI_SCHEMA)
  _json(tmp_path / "test.jsonl", _VSI_ROWS, lines=True)
  for data in (str(tmp_path), str(tmp_path / "test.jsonl")):
    questions, errors = read("vsibench", data)
    assert [(q.id, q.question_type, q.answer, q.category) for q in questions] == [
        ("0", "regression", "4", "object_counting"), ("1", "multiple choice", "B", "object_rel_distance"),
        ("2", "regression", "21.7", "room_size_estimation")]
    assert questions[0].video == video and questions[0].options is None
    assert questions[1].options == ["A. table", "B. lamp", "C. tv"]
    assert questions[2].video == str(tmp_path / "scannet" / "scene0001_00.mp4")
    assert [(e.line, e.field) for e in errors] == [(4, "question_type"), (5, "ground_truth")]
  assert errors[1].file == str(tmp_path / "test.jsonl")


def test_mmvu_release_json(tmp_path):
  video = _touch(tmp_path / "videos" / "Chemistry" / "0.mp4")
  url = "https://huggingface.co/datasets/yale-nlp/MMVU/resolve/main/videos/{}/0.mp4"
  blank = {"A": "", "B": "", "C": "", "D": "", "E": ""}
  _json(tmp_path / "validation.json", [
      {"id": "validation_1", "video": url.format("Chemistry"), "youtube_url": "https://www.youtube.com/watch?v=x",
       "question_type": "multiple-choice", "metadata": {"subject": "Chemistry", "textbook": "T", "knowledge": [],
                                                        "rationale": "R"},
       "question": "How many grams of precipitate?",
       "choices": {"A": "10.0", "B": "5.0", "C": "12.0", "D": "15.0", "E": "20.0"}, "answer": "A"},
      {"id": "validation_2", "video": url.format("Computer_Science"), "question_type": "open-ended",
       "metadata": {"subject": "Computer Science"}, "question": "What is the algorithm used in the video?",
       "choices": blank, "answer": "Depth-First Search (DFS)"},
      {"id": "validation_3", "video": url.format("Art"), "question_type": "multiple-choice",
       "metadata": {"subject": "Art"}, "question": "Q", "choices": {"A": "x", "B": "", "C": "z", "D": "", "E": ""},
       "answer": "C"},
      {"id": "validation_4", "video": url.format("Art"), "question_type": "multiple-choice",
       "metadata": {"subject": "Art"}, "question": "Q", "choices": {"A": "x", "B": "y", "C": "", "D": "", "E": ""},
       "answer": "C"},
  ])
  questions, errors = read("mmvu", str(tmp_path / "validation.json"))
  mc, open_ended = questions
  assert (mc.question_type, mc.answer, mc.category, mc.video, mc.match) == ("multiple choice", "A", "Chemistry",
                                                                           video, "")
  assert mc.options == ["A. 10.0", "B. 5.0", "C. 12.0", "D. 15.0", "E. 20.0"]
  assert mc.extra == {"subject": "Chemistry", "discipline": "Science", "mmvu_type": "multiple-choice"}
  assert (open_ended.question_type, open_ended.answer, open_ended.options, open_ended.match) == (
      "free-form", "Depth-First Search (DFS)", None, "open")
  assert (open_ended.category, open_ended.extra["discipline"]) == ("Computer_Science", "Engineering")
  assert _skips(errors) == [("validation.json", 3, "choices"), ("validation.json", 4, "answer")]


def test_mmvu_lmms_parquet(tmp_path):
  """lmms-lab/MMVU rows: "video_path" relative to the data folder, choices as a struct column."""
  video = _touch(tmp_path / "videos" / "Clinical_Medicine" / "3.mp4")
  choices = pa.struct([(k, pa.string()) for k in "ABCDE"])
  schema = pa.schema([("id", pa.string()), ("video_path", pa.string()), ("question_type", pa.string()),
                      ("question", pa.string()), ("choices", choices), ("answer", pa.string())])
  _parquet(tmp_path / "validation-00000-of-00001.parquet", [
      {"id": "validation_9", "video_path": "videos/Clinical_Medicine/3.mp4", "question_type": "multiple-choice",
       "question": "Which organ?", "choices": {"A": "liver", "B": "heart", "C": "lung", "D": "kidney", "E": "skin"},
       "answer": "D"}], schema)
  (q,), errors = read("mmvu", str(tmp_path))
  assert errors == [] and (q.answer, q.video, q.category, q.extra["discipline"]) == (
      "D", video, "Clinical_Medicine", "Healthcare")


def test_videommmu_track_parquets(tmp_path):
  """lmms-lab/VideoMMMU <Track>/test-*.parquet; Adaptation rows carry an image struct; ids recur per track."""
  video = _touch(tmp_path / "Science" / "test_Chemistry_3.mp4")
  schema = pa.schema([("id", pa.string()), ("question", pa.string()), ("options", pa.list_(pa.string())),
                      ("answer", pa.string()), ("link_selected", pa.string()), ("question_type", pa.string())])
  _parquet(tmp_path / "Perception" / "test-00000-of-00001.parquet", [
      {"id": "test_Chemistry_3", "question": "Which element is shown?", "options": ["Na", "K", "Li"], "answer": "B",
       "link_selected": "https://youtu.be/x", "question_type": "perception"},
      {"id": "test_Art_Theory_7", "question": "Which style?", "options": ["Baroque", "Rococo"], "answer": "C",
       "link_selected": "", "question_type": "multiple-choice"}], schema)
  image = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
  _parquet(tmp_path / "Adaptation" / "test-00000-of-00001.parquet", [
      {"id": "test_Chemistry_3", "question": "What mass (g) forms?", "options": [], "answer": "12.5",
       "link_selected": "", "question_type": "open", "image": {"bytes": b"\x89PNG", "path": "q.png"}},
      {"id": "test_Chemistry_4", "question": "Which law applies?", "options": [], "answer": "Boyle's law",
       "link_selected": "", "question_type": "open", "image": None}],
      schema.append(pa.field("image", image)))
  questions, errors = read("videommmu", str(tmp_path))
  got = [(q.id, q.question_type, q.answer, q.category, q.match, q.extra["discipline"]) for q in questions]
  assert got == [("Adaptation/test_Chemistry_3", "numerical", "12.5", "Adaptation", "open", "Science"),
                 ("Adaptation/test_Chemistry_4", "free-form", "Boyle's law", "Adaptation", "open", "Science"),
                 ("Perception/test_Chemistry_3", "multiple choice", "B", "Perception", "", "Science")]
  assert questions[0].video == questions[2].video == video
  assert _skips(errors) == [("test-00000-of-00001.parquet", 2, "answer")]
  assert errors[0].file.endswith(os.path.join("Perception", "test-00000-of-00001.parquet"))


def test_reader_bugs_raise_and_registry_errors(tmp_path, monkeypatch):
  assert set(readers.BENCHMARKS) == {"embedded", "video_r1", "mvbench", "videomme", "tempcompass", "vsibench",
                                     "mmvu", "videommmu"}
  with pytest.raises(ValueError, match="unknown benchmark"):
    read("kinetics", str(tmp_path))
  with pytest.raises(FileNotFoundError, match="nope"):
    read("mvbench", str(tmp_path / "nope"))
  _json(tmp_path / "json" / "object_shuffle.json", [
      {"video": "a.mp4", "question": "Where?", "candidates": ["x", "y"], "answer": "x"}])

  def broken(*args, **kwargs):
    raise KeyError("options")  # a reader bug, not bad data: it must surface, not become a skipped row

  monkeypatch.setattr(readers, "_choice", broken)
  with pytest.raises(KeyError):
    read("mvbench", str(tmp_path))
  assert SkippedRow(1, "r")._asdict() == {"line": 1, "reason": "r", "video": None, "file": None, "field": None}
