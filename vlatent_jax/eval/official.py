"""Each benchmark's own aggregate of per-question scores, next to plain accuracy (the mean over questions).

    aggregate(bench, records) -> {"metric", "score", "n", "tables": {name: {group: {"n", "score"}}}, "notes"}
                                 or None for benchmarks without one (embedded, video_r1)

  mvbench     the mean of the per-task accuracies (MVBench's 20 tasks)
  videomme    accuracy over all questions, and per duration (short / medium / long) and task type
  vsibench    per question type: accuracy (multiple choice) or mean relative accuracy (numeric); the three
              object_rel_direction_{easy,medium,hard} types averaged into one; the score is the mean over the
              resulting types (VSI-Bench's "overall", as its lmms-eval task aggregates)
  tempcompass per task format (multi-choice, yes_no, caption_matching): accuracy over its questions and per
              temporal dimension; per dimension over all formats; the score is the mean over the formats
  mmvu        accuracy over all questions, per discipline (Science, Engineering, Healthcare, Humanities and
              Social Science), per subject and per question type (multiple-choice / open-ended)
  videommmu   accuracy over all questions, per track (Perception, Comprehension, Adaptation), per discipline
              and per track x discipline

Records are `scoring.record` dicts: "category", "question_type", "score" and the question's "extra" fields.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

from vlatent_jax.eval.readers import VSI_MULTIPLE_CHOICE

VIDEOMME_DURATIONS = ("short", "medium", "long")
VSI_REL_DIRECTION = ("object_rel_direction_easy", "object_rel_direction_medium", "object_rel_direction_hard")


def _mean(values) -> float | None:
  values = list(values)
  return sum(values) / len(values) if values else None


def table(records: list[dict], key: Callable[[dict], str], order: tuple[str, ...] = ()) -> dict[str, dict]:
  """{group: {"n", "score": mean score}} over the groups `key` gives; `order` first, then the rest sorted."""
  scores = defaultdict(list)
  for r in records:
    scores[key(r)].append(r["score"])
  names = [g for g in order if g in scores] + sorted(g for g in scores if g not in order)
  return {g: {"n": len(scores[g]), "score": _mean(scores[g])} for g in names}


def _extra(name: str, default: str = "unknown") -> Callable[[dict], str]:
  return lambda r: str((r.get("extra") or {}).get(name) or default)


def _category(r: dict) -> str:
  return r["category"]


def _result(metric: str, score: float | None, records: list[dict], tables: dict, notes=()) -> dict:
  return {"metric": metric, "score": score, "n": len(records), "tables": tables, "notes": list(notes)}


def mvbench(records):
  tasks = table(records, _category)
  notes = [] if len(tasks) in (0, 20) else [f"{len(tasks)} of MVBench's 20 tasks present"]
  return _result("mean of the per-task accuracies", _mean(g["score"] for g in tasks.values()), records,
                 {"task": tasks}, notes)


def videomme(records):
  return _result("accuracy over all questions", _mean(r["score"] for r in records), records,
                 {"duration": table(records, _extra("duration"), VIDEOMME_DURATIONS),
                  "task type": table(records, _category)})


def vsibench(records):
  kinds = table(records, _category)
  merged = {k: g for k, g in kinds.items() if k not in VSI_REL_DIRECTION}
  parts = [kinds[k] for k in VSI_REL_DIRECTION if k in kinds]
  if parts:  # the mean of the three sub-types' scores, as VSI-Bench's aggregation pops and averages them
    merged["object_rel_direction"] = {"n": sum(p["n"] for p in parts), "score": _mean(p["score"] for p in parts)}
  rows = {k: {**g, "metric": "accuracy" if k in VSI_MULTIPLE_CHOICE or k == "object_rel_direction" else "MRA"}
          for k, g in sorted(merged.items())}
  notes = ["MRA: mean over thresholds 0.50, 0.55, .., 0.95 of 1[|pred - gt| / gt < 1 - threshold] (the paper's "
           "definition; lmms-eval's code uses 11 points spaced 0.045 and <=)"]
  return _result("mean over question types (accuracy / MRA)", _mean(g["score"] for g in rows.values()), records,
                 {"question type": rows, "question type (as released)": kinds}, notes)


def tempcompass(records):
  fmt = _extra("format")
  formats = table(records, fmt, ("multi-choice", "yes_no", "caption_matching"))
  tables = {"task format": formats, "dimension (all formats)": table(records, _category)}
  for name in formats:
    tables[f"{name} by dimension"] = table([r for r in records if fmt(r) == name], _category)
  return _result("mean over task formats of their accuracy", _mean(g["score"] for g in formats.values()), records,
                 tables, ["captioning is not scored (it needs an LLM judge)"])


def mmvu(records):
  notes = ["open-ended answers scored by MMMU's rule, not MMVU's GPT judge"] if any(
      r["question_type"] != "multiple choice" for r in records) else []
  return _result("accuracy over all questions", _mean(r["score"] for r in records), records,
                 {"discipline": table(records, _extra("discipline")), "subject": table(records, _category),
                  "question type": table(records, _extra("mmvu_type"))}, notes)


def videommmu(records):
  track, discipline = _extra("track"), _extra("discipline")
  tables = {"track": table(records, track, ("Perception", "Comprehension", "Adaptation")),
            "discipline": table(records, discipline)}
  for name in tables["track"]:
    tables[f"{name} by discipline"] = table([r for r in records if track(r) == name], discipline)
  return _result("accuracy over all questions", _mean(r["score"] for r in records), records, tables)


AGGREGATES: dict[str, Callable[[list[dict]], dict]] = {
    "mvbench": mvbench, "videomme": videomme, "vsibench": vsibench, "tempcompass": tempcompass, "mmvu": mmvu,
    "videommmu": videommmu}


def aggregate(bench: str, records: list[dict]) -> dict | None:
  """The benchmark's own aggregate of `records`, or None where it has none beyond plain accuracy."""
  fn = AGGREGATES.get(bench)
  return fn(records) if fn is not None else None
