"""`python -m vlatent_jax.eval.score`: a predictions file scored against released benchmark files, no model."""

import json
import os
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from vlatent_jax.eval import predictions, score

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _lines(path, rows):
  with open(path, "w") as f:
    f.writelines((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows)
  return str(path)


@pytest.fixture
def vsibench(tmp_path):
  schema = pa.schema([("id", pa.int64()), ("dataset", pa.string()), ("scene_name", pa.string()),
                      ("question_type", pa.string()), ("question", pa.string()),
                      ("options", pa.list_(pa.string())), ("ground_truth", pa.string())])
  rows = [(0, "object_counting", None, "10"), (1, "object_counting", None, "4"),
          (2, "object_rel_direction_easy", ["A. left", "B. right"], "A"),
          (3, "object_rel_direction_hard", ["A. left", "B. right", "C. back"], "C"),
          (4, "room_size_estimation", None, "20"), (5, "route_planning", ["A. x", "B. y"], "B")]
  pq.write_table(pa.Table.from_pylist([
      {"id": i, "dataset": "scannet", "scene_name": "scene0000_00", "question_type": t, "question": f"Q{i}?",
       "options": o, "ground_truth": g} for i, t, o, g in rows], schema=schema),
      tmp_path / "test-00000-of-00001.parquet")
  return tmp_path


def test_score_vsibench_predictions(vsibench, tmp_path, capsys):
  preds = _lines(tmp_path / "run.predictions.jsonl", [
      {"id": "0", "output": "<answer>9</answer>"},   # MRA(9, 10) = 0.8
      {"id": "1", "output": "4"},                    # MRA = 1
      {"id": "2", "output": "A. left"},              # correct
      {"id": "3", "output": "B", "extra": "ignored"},  # wrong
      {"id": 5, "output": "<answer>B</answer>"},      # an integer id names question "5": correct
      {"id": "99", "output": "A"},                   # no such question
      '{"id": "4", "output": ',                      # bad JSON: question 4 stays unanswered
      {"id": "2", "output": "B"},                    # repeated id: the first prediction counts
      {"id": "6"},                                   # no output
  ])
  assert score.main(["--bench", "vsibench", "--data", str(vsibench), "--predictions", preds]) == 0
  results = json.loads((tmp_path / "run_score.json").read_text())
  assert results["n"] == 5 and results["unanswered"] == 1 and results["unanswered_ids"] == ["4"]
  assert results["unknown_ids"] == ["99"]
  assert [(r["line"], r["field"]) for r in results["bad_predictions"]] == [(7, None), (8, "id"), (9, "output")]
  assert results["accuracy"] == pytest.approx((0.8 + 1 + 1 + 0 + 1) / 5)
  off = results["official"]
  # counting (0.8 + 1) / 2 = 0.9; rel_direction = mean(easy 1, hard 0) = 0.5; route_planning 1 -> mean 0.8
  assert off["tables"]["question type"]["object_counting"]["score"] == pytest.approx(0.9)
  assert off["tables"]["question type"]["object_rel_direction"]["score"] == pytest.approx(0.5)
  assert off["score"] == pytest.approx((0.9 + 0.5 + 1.0) / 3)
  out = capsys.readouterr()
  assert "**Official aggregate**" in out.out and "questions without a prediction: 1" in out.out
  assert "skipped row 7" in out.err and "field 'output'" in out.err
  assert (tmp_path / "run_score.md").read_text().strip() in out.out


def test_score_mvbench_release_and_round_trip(tmp_path):
  root = tmp_path / "MVBench"
  os.makedirs(root / "json")
  (root / "json" / "action_count.json").write_text(json.dumps([
      {"video": "a.mp4", "question": "How many?", "candidates": ["3", "2", "5"], "answer": "2"},
      {"video": "b.mp4", "question": "How many?", "candidates": ["1", "4"], "answer": "1"}]))
  (root / "json" / "object_shuffle.json").write_text(json.dumps([
      {"video": "c.mp4", "question": "Where is the ball?", "candidates": ["left", "middle"], "answer": "middle"}]))
  # eval's records -> its predictions file -> scored again: same outputs, same scores
  path = predictions.write(str(tmp_path / "p.jsonl"), [{"id": "action_count/1", "output": "(B) 2"},
                                                       {"id": "action_count/2", "output": "B"},
                                                       {"id": "object_shuffle/1", "output": "middle"}])
  assert predictions.read(path) == ({"action_count/1": "(B) 2", "action_count/2": "B", "object_shuffle/1": "middle"}, [])
  results = score.score("mvbench", str(root), path)
  assert [r["score"] for r in results["records"]] == [1.0, 0.0, 1.0]
  assert results["accuracy"] == pytest.approx(2 / 3)
  assert results["official"]["score"] == pytest.approx((0.5 + 1.0) / 2)  # mean over the two tasks


def test_score_cli_module_and_bad_input(vsibench, tmp_path):
  preds = _lines(tmp_path / "p.jsonl", [{"id": "5", "output": "B"}])
  proc = subprocess.run([sys.executable, "-m", "vlatent_jax.eval.score", "--bench", "vsibench", "--data",
                         str(vsibench), "--predictions", preds, "--out", str(tmp_path / "o")], cwd=ROOT,
                        capture_output=True, text=True, timeout=120)
  assert proc.returncode == 0, proc.stderr
  assert json.loads((tmp_path / "o" / "p_score.json").read_text())["official"]["score"] == 1.0
  assert score.main(["--bench", "vsibench", "--data", str(vsibench), "--predictions", str(tmp_path / "none")]) == 2
  empty = _lines(tmp_path / "empty.jsonl", [{"id": "x", "output": "B"}])
  assert score.main(["--bench", "vsibench", "--data", str(vsibench), "--predictions", empty]) == 1
