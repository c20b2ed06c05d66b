"""Benchmark readers: each released file layout -> `Question`s, bad rows -> `RowError(line, reason, video)`.

    read(bench, path, limit=None, split="test") -> (questions, errors)

Layouts read (as released; `.parquet` needs pyarrow, `.json` / `.jsonl` are read directly):
  embedded    <split>.jsonl from `vlatent_jax.data.synthetic` {"id","video","question","answer","options"?,
              "question_type","task"}; `path` is the file or the benchmark folder (+ `split`)
  video_r1    Video-R1's eval_*.json {"problem_id","problem","problem_type","options","solution":
              "<answer>X</answer>","path":"./Evaluation/...","data_type","data_source"?}
  mvbench     OpenGVLab/MVBench: json/<task>.json lists {"video","question","candidates","answer": text}
              with videos under video/<task folder>/; `path` is the root, json/ or one task file
  videomme    lmms-lab/Video-MME videomme/test-*.parquet (or JSON) {"videoID","question_id","question",
              "options": ["A. ..."],"answer": letter,"task_type","duration","domain"}; videos data/<videoID>.mp4
  tempcompass TempCompass multi-choice: questions/multi-choice.json {video_id: {dim: [{"question": "Q\\nA. x..",
              "answer": "A. x"}]}} or lmms-lab's rows {"video_id","question","answer","dim"}; videos videos/<id>.mp4
  vsibench    nyu-visionx/VSI-Bench test {"id","dataset","scene_name","question_type","question","options"|null,
              "ground_truth"}; videos <dataset>/<scene_name>.mp4; numeric types are scored with MRA
  mmvu        yale-nlp/MMVU validation.json {"id","video": URL,"question_type": "multiple-choice"|"open-ended",
              "question","choices": {"A": ..},"answer","metadata": {"subject"}}; videos videos/<Subject>/<n>.mp4
  videommmu   lmms-lab/VideoMMMU <Track>/*.parquet (or JSON) {"id": "<split>_<Subject>_<n>","question","options",
              "answer","question_type": "multiple-choice"|"open"}; videos <Discipline>/<id>.mp4

A relative video path is tried against the data file's folder and its parent (and each benchmark's own
folders); the first that exists wins, else the first candidate is kept and the harness reports it missing.
Answers are normalised like training manifests (`data.manifest`): option letter, number text, or free text.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import os
import re
from collections.abc import Callable, Iterator
from typing import Any

# Shared with training manifests, so that eval answers normalise exactly as training targets do.
from vlatent_jax.data.manifest import (
  RowError,
  from_video_r1,
  iter_objects,
  make_row,
  parse_options,
  split_llava_question,
)


@dataclasses.dataclass(frozen=True)
class Question:
  id: str
  video: str                  # absolute path
  question: str
  options: list[str] | None   # multiple choice only
  answer: str                 # option letter, number text, or free text
  question_type: str          # prompt template type, one of prompts.QUESTION_TYPES
  category: str               # group for per-type accuracy (task, dimension, subject, ...)
  line: int = 0               # 1-based row (or array element) in its file
  extra: dict = dataclasses.field(default_factory=dict)  # benchmark fields kept for reports (duration, bounds)


class BadRow(ValueError):
  pass


def _question(line, row_id, video, question, answer, options, question_type, category, extra=None) -> Question:
  try:
    row = make_row(line, row_id, video, question, str(answer).strip(), options, question_type, "/")
  except ValueError as e:  # manifest._Bad
    raise BadRow(str(e)) from e
  if not row.question:
    raise BadRow("empty question")
  return Question(row.id, row.video, row.question, row.options, row.answer, row.question_type, str(category), line,
                  dict(extra or {}))


def _field(obj: dict, *keys: str) -> Any:
  for key in keys:
    if obj.get(key) not in (None, ""):
      return obj[key]
  raise BadRow(f"missing field '{keys[0]}'")


def _first_existing(candidates: list[str]) -> str:
  candidates = [os.path.abspath(os.path.expanduser(c)) for c in candidates]
  return next((c for c in candidates if os.path.isfile(c)), candidates[0])


def _near(path: str, relative: str, *subdirs: str) -> str:
  """`relative` under the data file's folder or its parent, optionally inside one of `subdirs`."""
  if os.path.isabs(relative):
    return relative
  here = os.path.dirname(os.path.abspath(path))
  bases = [here, os.path.dirname(here)]
  return _first_existing([os.path.join(b, s, relative) for s in (*subdirs, "") for b in bases])


# ---------------------------------------------------------------------------- loading rows


def _parquet_rows(path: str) -> Iterator[tuple[int, Any]]:
  try:
    import pyarrow.parquet as pq
  except ImportError as e:
    raise RuntimeError(f"reading {path} needs pyarrow (pip install pyarrow), or convert it to JSON Lines") from e
  yield from enumerate(pq.read_table(path).to_pylist(), start=1)


def iter_rows(path: str) -> Iterator[tuple[int, Any]]:
  """(line, object or BadRow) per record of a .jsonl / .json (array, or {"data": [...]}) / .parquet file."""
  if path.endswith(".parquet"):
    yield from _parquet_rows(path)
    return
  with open(path, encoding="utf-8") as f:
    head = f.read(4096).lstrip()
  if head.startswith("{") and not path.endswith(".jsonl"):
    try:  # one JSON object: HF-style {"data": [...]} or a nested layout handled by its reader
      with open(path, encoding="utf-8") as f:
        obj = json.load(f)
      rows = obj.get("data") if isinstance(obj, dict) else None
      yield from enumerate(rows if isinstance(rows, list) else [obj], start=1)
      return
    except json.JSONDecodeError:
      pass  # JSON Lines with a .json name
  for line, obj in iter_objects(path):
    yield line, (BadRow(str(obj)) if isinstance(obj, ValueError) else obj)


def _collect(rows: Iterator[tuple[int, Any]], convert: Callable[[dict, int], Question], where: str = ""):
  questions, errors = [], []
  for line, obj in rows:
    video = obj.get("video") if isinstance(obj, dict) else None
    try:
      if isinstance(obj, Exception):
        raise obj
      if not isinstance(obj, dict):
        raise BadRow(f"row is a JSON {type(obj).__name__}, not an object")
      questions.append(convert(obj, line))
    except (BadRow, KeyError, TypeError, ValueError) as e:
      reason = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
      errors.append(RowError(line, f"{where}{reason}", video if isinstance(video, str) else None))
  return questions, errors


def _files(path: str, pattern: str) -> list[str]:
  """`path` itself, or the matching files under the folder `path` (recursively, sorted)."""
  if os.path.isfile(path):
    return [path]
  if not os.path.isdir(path):
    raise FileNotFoundError(f"benchmark data not found: {path}")
  found = sorted(os.path.join(d, n) for d, _, names in os.walk(path) for n in names if re.search(pattern, n))
  if not found:
    raise FileNotFoundError(f"no files matching {pattern!r} under {path}")
  return found


def _read_files(files: list[str], convert: Callable[[str], Callable[[dict, int], Question]], rows=iter_rows):
  questions, errors = [], []
  for file in files:
    q, e = _collect(rows(file), convert(file), f"{os.path.basename(file)}: " if len(files) > 1 else "")
    questions += q
    errors += e
  return questions, errors


# ---------------------------------------------------------------------------- benchmarks


def read_embedded(path: str, split: str = "test"):
  file = os.path.join(path, f"{split}.jsonl") if os.path.isdir(path) else path
  if not os.path.isfile(file):
    raise FileNotFoundError(f"embedded benchmark file not found: {file}")

  def convert(obj, line):
    return _question(line, obj.get("id"), _near(file, _field(obj, "video")), _field(obj, "question"),
                     _field(obj, "answer"), parse_options(obj.get("options")), obj.get("question_type"),
                     obj.get("task") or obj.get("question_type") or "all")
  return _collect(iter_rows(file), convert)


_R1_CATEGORY = ("original_question_type", "task_type", "question_type", "category", "dim", "data_source")


def read_video_r1(path: str):
  def for_file(file):
    def convert(obj, line):
      # "./Evaluation/..." is relative to src/r1-v/, the parent of the folder holding eval_*.json
      row = from_video_r1({**obj, "path": _near(file, _field(obj, "path"))}, line, "/")
      category = next((obj[k] for k in _R1_CATEGORY if isinstance(obj.get(k), str) and obj[k]), row.question_type)
      return Question(row.id, row.video, row.question, row.options, row.answer, row.question_type, category, line)
    return convert
  return _read_files(_files(path, r"\.(json|jsonl)$"), for_file)


# MVBench task -> video folders: the release's data_list first, then lmms-eval's converted folders.
MVBENCH_FOLDERS = {
    "action_sequence": ("star/Charades_v1_480", "star/Charades_segment"),
    "action_prediction": ("star/Charades_v1_480", "star/Charades_segment"),
    "action_antonym": ("ssv2_video", "ssv2_video_mp4"),
    "fine_grained_action": ("Moments_in_Time_Raw/videos",),
    "unexpected_action": ("FunQA_test/test",),
    "object_existence": ("clevrer/video_validation",),
    "object_interaction": ("star/Charades_v1_480", "star/Charades_segment"),
    "object_shuffle": ("perception/videos",),
    "moving_direction": ("clevrer/video_validation",),
    "action_localization": ("sta/sta_video", "sta/sta_video_segment"),
    "scene_transition": ("scene_qa/video",),
    "action_count": ("perception/videos",),
    "moving_count": ("clevrer/video_validation",),
    "moving_attribute": ("clevrer/video_validation",),
    "state_change": ("perception/videos",),
    "fine_grained_pose": ("nturgbd", "nturgbd_convert"),
    "character_order": ("perception/videos",),
    "egocentric_navigation": ("vlnqa",),
    "episodic_reasoning": ("tvqa/frames_fps3_hq", "tvqa/video_fps3_hq_segment"),  # frame folders in the release
    "counterfactual_inference": ("clevrer/video_validation",),
}


def _mvbench_root(file: str) -> str:
  folder = os.path.dirname(os.path.abspath(file))
  return os.path.dirname(folder) if os.path.basename(folder) == "json" else folder


def read_mvbench(path: str):
  files = _files(os.path.join(path, "json") if os.path.isdir(os.path.join(path, "json")) else path, r"\.json$")

  def for_file(file):
    task = os.path.splitext(os.path.basename(file))[0]
    root = _mvbench_root(file)

    def convert(obj, line):
      name = _field(obj, "video")
      folders = MVBENCH_FOLDERS.get(task, ())
      video = _first_existing([os.path.join(root, top, f, name) for f in (*folders, "") for top in ("video", "")])
      bounds = {k: obj[k] for k in ("start", "end") if k in obj}
      return _question(line, f"{task}/{line}", video, _field(obj, "question"), _field(obj, "answer"),
                       parse_options(_field(obj, "candidates")), "multiple choice", task, bounds)
    return convert
  return _read_files(files, for_file)


def _with_extension(path: str) -> str:
  stem = os.path.splitext(path)[0]
  return _first_existing([path] + [stem + ext for ext in (".MP4", ".mkv", ".webm", ".avi")])


def read_videomme(path: str):
  def for_file(file):
    def convert(obj, line):
      vid = str(_field(obj, "videoID", "video_id"))
      video = _with_extension(_near(file, f"{vid}.mp4", "data", "videos"))
      extra = {k: obj[k] for k in ("duration", "domain", "sub_category") if k in obj}
      return _question(line, obj.get("question_id", f"{vid}/{line}"), video, _field(obj, "question"),
                       _field(obj, "answer"), parse_options(_field(obj, "options")), "multiple choice",
                       obj.get("task_type") or obj.get("duration") or "all", extra)
    return convert
  return _read_files(_files(path, r"\.(parquet|json|jsonl)$"), for_file)


def _tempcompass_rows(file: str) -> Iterator[tuple[int, Any]]:
  """The original nested {video_id: {dim: [{question, answer}]}} flattened (line = position), else rows."""
  if file.endswith(".json"):
    with open(file, encoding="utf-8") as f:
      try:
        obj = json.load(f)
      except json.JSONDecodeError as e:
        yield e.lineno, BadRow(f"bad JSON: {e.msg} at line {e.lineno} column {e.colno}")
        return
    if isinstance(obj, dict) and not isinstance(obj.get("data"), list):
      n = 0
      for video_id, dims in obj.items():
        for dim, items in (dims.items() if isinstance(dims, dict) else [("?", dims)]):
          for item in items if isinstance(items, list) else [items]:
            n += 1
            yield n, ({**item, "video_id": video_id, "dim": dim} if isinstance(item, dict) else item)
      return
  yield from iter_rows(file)


def read_tempcompass(path: str):
  files = _files(path, r"multi-choice|multi_choice|\.parquet$")

  def for_file(file):
    def convert(obj, line):
      vid = str(_field(obj, "video_id"))
      question, options = split_llava_question(_field(obj, "question"))
      if not options:
        raise BadRow("no lettered options (A. ..) in the question")
      video = _with_extension(_near(file, f"{vid}.mp4", "videos"))
      return _question(line, f"{vid}/{obj.get('dim', '')}/{line}", video, question, _field(obj, "answer"),
                       options, "multiple choice", obj.get("dim") or "all")
    return convert
  return _read_files(files, for_file, _tempcompass_rows)


VSI_MULTIPLE_CHOICE = ("object_rel_direction_easy", "object_rel_direction_medium", "object_rel_direction_hard",
                       "object_rel_distance", "route_planning", "obj_appearance_order")
VSI_NUMERIC = ("object_abs_distance", "object_counting", "object_size_estimation", "room_size_estimation")


def read_vsibench(path: str):
  def for_file(file):
    def convert(obj, line):
      kind = _field(obj, "question_type")
      if kind not in VSI_MULTIPLE_CHOICE + VSI_NUMERIC:
        raise BadRow(f"unknown VSI-Bench question_type {kind!r}")
      video = _near(file, f"{_field(obj, 'dataset')}/{_field(obj, 'scene_name')}.mp4")
      mc = kind in VSI_MULTIPLE_CHOICE
      return _question(line, obj.get("id", f"line-{line}"), video, _field(obj, "question"),
                       _field(obj, "ground_truth"), parse_options(obj.get("options")) if mc else None,
                       "multiple choice" if mc else "regression", kind)  # VSI-Bench scores every numeric type by MRA
    return convert
  return _read_files(_files(path, r"\.(parquet|json|jsonl)$"), for_file)


def _hf_relative(url: str) -> str:
  """'https://huggingface.co/datasets/yale-nlp/MMVU/resolve/main/videos/Art/0.mp4' -> 'videos/Art/0.mp4'."""
  return url.split("/resolve/main/", 1)[1] if "/resolve/main/" in url else url


def read_mmvu(path: str):
  def for_file(file):
    def convert(obj, line):
      kind = _field(obj, "question_type")
      if kind not in ("multiple-choice", "open-ended"):
        raise BadRow(f"unknown MMVU question_type {kind!r}")
      choices = {k: v for k, v in (obj.get("choices") or {}).items() if str(v).strip()}
      subject = (obj.get("metadata") or {}).get("subject") or "all"
      mc = kind == "multiple-choice"
      return _question(line, obj.get("id", f"line-{line}"), _near(file, _hf_relative(_field(obj, "video"))),
                       _field(obj, "question"), _field(obj, "answer"), parse_options(choices) if mc else None,
                       "multiple choice" if mc else "free-form", subject, {"mmvu_type": kind})
    return convert
  return _read_files(_files(path, r"\.(json|jsonl|parquet)$"), for_file)


VIDEOMMMU_DISCIPLINES = {
    "Art": ("Art", "Art_Theory", "Design", "Music"),
    "Science": ("Biology", "Chemistry", "Geography", "Math", "Physics"),
    "Humanities": ("History", "Literature", "Sociology", "Psychology"),
    "Engineering": ("Agriculture", "Architecture_and_Engineering", "Computer_Science", "Electronics",
                    "Energy_and_Power", "Materials", "Mechanical_Engineering"),
    "Medicine": ("Basic_Medical_Science", "Clinical_Medicine", "Diagnostics_and_Laboratory_Medicine", "Pharmacy",
                 "Public_Health"),
    "Business": ("Accounting", "Economics", "Finance", "Manage", "Marketing"),
}
VIDEOMMMU_TRACKS = ("Perception", "Comprehension", "Adaptation")


def _videommmu_options(value) -> list[str] | None:
  if isinstance(value, str):  # some exports store the list as its Python repr
    try:
      value = ast.literal_eval(value)
    except (ValueError, SyntaxError) as e:
      raise BadRow(f"options {value[:60]!r} is not a list") from e
  return parse_options([o for o in (value or []) if str(o).strip()])


def read_videommmu(path: str):
  def for_file(file):
    track = next((t for t in VIDEOMMMU_TRACKS if t.lower() in os.path.abspath(file).lower()), None)

    def convert(obj, line):
      qid = str(_field(obj, "id"))
      subject = "_".join(qid.split("_")[1:-1])
      folder = next((d for d, subjects in VIDEOMMMU_DISCIPLINES.items() if subject in subjects), "")
      video = _near(file, f"{qid}.mp4", folder, "videos")
      options = _videommmu_options(obj.get("options"))
      kind = "multiple choice" if obj.get("question_type") in ("multiple-choice", "perception") and options else None
      if kind is None:  # open questions: numbers are compared as numbers, the rest as text
        options = None
        answer = str(_field(obj, "answer")).strip()
        kind = "numerical" if re.fullmatch(r"[-+]?\d[\d,]*(\.\d+)?", answer) else "free-form"
      return _question(line, qid, video, _field(obj, "question"), _field(obj, "answer"), options, kind,
                       track or subject or "all", {"subject": subject})
    return convert
  return _read_files(_files(path, r"\.(parquet|json|jsonl)$"), for_file)


READERS: dict[str, Callable[..., tuple[list[Question], list[RowError]]]] = {
    "embedded": read_embedded, "video_r1": read_video_r1, "mvbench": read_mvbench, "videomme": read_videomme,
    "tempcompass": read_tempcompass, "vsibench": read_vsibench, "mmvu": read_mmvu, "videommmu": read_videommmu}
BENCHMARKS = tuple(READERS)
_ALIASES = {"video-r1": "video_r1", "videor1": "video_r1", "video-mme": "videomme", "video_mme": "videomme",
            "vsi-bench": "vsibench", "vsi_bench": "vsibench", "video-mmmu": "videommmu", "video_mmmu": "videommmu"}


def read(bench: str, path: str, limit: int | None = None, split: str = "test") -> tuple[list[Question], list[RowError]]:
  """Questions of benchmark `bench` from its local files at `path` (first `limit`), and the rows skipped."""
  name = _ALIASES.get(bench.lower(), bench.lower())
  if name not in READERS:
    raise ValueError(f"unknown benchmark {bench!r}; known: {', '.join(BENCHMARKS)}")
  if not os.path.exists(path):
    raise FileNotFoundError(f"benchmark data not found: {path}")
  questions, errors = read_embedded(path, split) if name == "embedded" else READERS[name](path)
  return (questions if limit is None else questions[:limit]), errors
