"""Each benchmark's own aggregate on hand-made per-question scores, every number worked out by hand."""

import pytest

from vlatent_jax.eval import official, report


def _records(rows):
  """(category, question_type, score, extra) -> scoring.record-like dicts."""
  return [{"id": str(i), "category": c, "question_type": t, "score": s, "extra": e}
          for i, (c, t, s, e) in enumerate(rows)]


MC = "multiple choice"


def test_mvbench_mean_over_tasks():
  recs = _records([("action_sequence", MC, s, {}) for s in (1, 0, 0, 1)] + [("moving_count", MC, 1, {})]
                  + [("object_shuffle", MC, 0, {})] * 3)
  out = official.aggregate("mvbench", recs)
  assert out["score"] == pytest.approx((0.5 + 1.0 + 0.0) / 3)  # 0.5, where plain accuracy is 3 / 8
  assert report.summarize(recs, [])["accuracy"] == pytest.approx(3 / 8)
  assert out["tables"]["task"] == {"action_sequence": {"n": 4, "score": 0.5}, "moving_count": {"n": 1, "score": 1.0},
                                   "object_shuffle": {"n": 3, "score": 0.0}}
  assert out["notes"] == ["3 of MVBench's 20 tasks present"]


def test_videomme_by_duration():
  rows = [("Counting Problem", MC, 1, {"duration": "long"}), ("OCR Problems", MC, 1, {"duration": "short"}),
          ("OCR Problems", MC, 1, {"duration": "short"}), ("Counting Problem", MC, 0, {"duration": "short"}),
          ("OCR Problems", MC, 0, {"duration": "medium"}), ("OCR Problems", MC, 0, {"duration": "long"})]
  out = official.aggregate("videomme", _records(rows))
  assert out["score"] == pytest.approx(3 / 6)
  assert list(out["tables"]["duration"]) == ["short", "medium", "long"]  # the benchmark's order, not sorted
  assert out["tables"]["duration"]["short"] == {"n": 3, "score": pytest.approx(2 / 3)}
  assert out["tables"]["duration"]["medium"]["score"] == 0.0 and out["tables"]["duration"]["long"]["score"] == 0.5
  assert out["tables"]["task type"]["OCR Problems"] == {"n": 4, "score": 0.5}


def test_vsibench_mean_over_types_with_mra_and_merged_directions():
  mra = "regression"
  rows = [("object_rel_direction_easy", MC, 1, {}), ("object_rel_direction_easy", MC, 0, {}),
          ("object_rel_direction_medium", MC, 1, {}), ("object_rel_direction_hard", MC, 0, {}),
          ("object_counting", mra, 0.8, {}),   # prediction 9 for 10: MRA 0.8 (8 of 10 thresholds)
          ("object_counting", mra, 1.0, {}),   # exact
          ("route_planning", MC, 1, {})]
  out = official.aggregate("vsibench", _records(rows))
  types = out["tables"]["question type"]
  assert types["object_rel_direction"] == {"n": 4, "score": pytest.approx(0.5), "metric": "accuracy"}  # (.5+1+0)/3
  assert types["object_counting"] == {"n": 2, "score": pytest.approx(0.9), "metric": "MRA"}
  assert types["route_planning"]["score"] == 1.0 and len(types) == 3
  assert out["score"] == pytest.approx((0.5 + 0.9 + 1.0) / 3)  # 0.8
  assert report.summarize(_records(rows), [])["accuracy"] == pytest.approx(4.8 / 7)
  assert out["tables"]["question type (as released)"]["object_rel_direction_easy"]["score"] == 0.5


def test_tempcompass_per_format_and_dimension():
  rows = ([("action", MC, s, {"format": "multi-choice"}) for s in (1, 0)] + [("speed", MC, 1, {"format": "multi-choice"})]
          + [("action", "free-form", s, {"format": "yes_no"}) for s in (1, 1, 0, 0)]
          + [("direction", MC, 1, {"format": "caption_matching"})])
  out = official.aggregate("tempcompass", _records(rows))
  assert out["tables"]["task format"] == {"multi-choice": {"n": 3, "score": pytest.approx(2 / 3)},
                                          "yes_no": {"n": 4, "score": 0.5},
                                          "caption_matching": {"n": 1, "score": 1.0}}
  assert out["score"] == pytest.approx((2 / 3 + 0.5 + 1.0) / 3)  # 13 / 18, where plain accuracy is 5 / 8
  assert out["tables"]["dimension (all formats)"]["action"] == {"n": 6, "score": 0.5}
  assert out["tables"]["multi-choice by dimension"] == {"action": {"n": 2, "score": 0.5}, "speed": {"n": 1, "score": 1.0}}


def test_mmvu_per_discipline_and_videommmu_per_track():
  rows = [("Chemistry", MC, 1, {"discipline": "Science", "mmvu_type": "multiple-choice"}),
          ("Chemistry", MC, 0, {"discipline": "Science", "mmvu_type": "multiple-choice"}),
          ("Biology", "free-form", 1, {"discipline": "Science", "mmvu_type": "open-ended"}),
          ("Computer_Science", "free-form", 0, {"discipline": "Engineering", "mmvu_type": "open-ended"})]
  out = official.aggregate("mmvu", _records(rows))
  assert out["score"] == 0.5
  assert out["tables"]["discipline"] == {"Engineering": {"n": 1, "score": 0.0},
                                         "Science": {"n": 3, "score": pytest.approx(2 / 3)}}
  assert out["tables"]["question type"]["open-ended"] == {"n": 2, "score": 0.5}
  assert "GPT judge" in out["notes"][0]

  def mmmu(track, score, discipline="Science"):
    return (track, MC, score, {"track": track, "discipline": discipline})
  rows = [mmmu("Perception", 1), mmmu("Perception", 1, "Business"), mmmu("Perception", 0), mmmu("Comprehension", 0),
          mmmu("Adaptation", 1), mmmu("Adaptation", 0, "Business")]
  out = official.aggregate("videommmu", _records(rows))
  assert list(out["tables"]["track"]) == ["Perception", "Comprehension", "Adaptation"]
  assert [g["score"] for g in out["tables"]["track"].values()] == [pytest.approx(2 / 3), 0.0, 0.5]
  assert out["tables"]["discipline"] == {"Business": {"n": 2, "score": 0.5}, "Science": {"n": 4, "score": 0.5}}
  assert out["tables"]["Perception by discipline"]["Science"] == {"n": 2, "score": 0.5}
  assert out["score"] == 0.5
  assert official.aggregate("embedded", _records(rows)) is None


def test_markdown_shows_the_official_tables():
  recs = _records([("object_counting", "regression", 0.8, {}), ("route_planning", MC, 1, {})])
  results = {**report.summarize(recs, []), "official": official.aggregate("vsibench", recs)}
  text = report.markdown(results, "vsibench")
  assert "**Official aggregate** (mean over question types (accuracy / MRA)): **90.0** over 2 questions" in text
  assert "| object_counting | 1 | 80.0 | MRA |" in text and "| route_planning | 1 | 100.0 | accuracy |" in text
