"""Benchmark readers: each released file layout -> `Question`s; rows with bad data -> `SkippedRow`s.

    read(bench, path, limit=None, split="test") -> (questions, skipped rows)

`path` is the benchmark's file or a folder holding its files (searched recursively; where a folder holds both
parquet and JSON copies, the parquet files are read). Layouts, as published on the Hugging Face hub:
  embedded    <split>.jsonl from `vlatent_jax.data.synthetic` {"id","video","question","answer","options"?,
              "question_type","task"}; `path` is the file or the benchmark folder (+ `split`)
  video_r1    Video-R1's eval_*.json {"problem_id","problem","problem_type","options","solution":
              "<answer>X</answer>","path":"./Evaluation/...","data_type","data_source"?}
  mvbench     OpenGVLab/MVBench json/<task>.json: [{"video","question","candidates": [...],"answer": the correct
              candidate's text,"start"?,"end"?}]; videos under video/<task folder>/ as released (mp4, webm for
              ssv2, avi for nturgbd, jpg frame folders for tvqa) or lmms-eval's pre-cut copies (<x>_segment,
              nturgbd_convert, ssv2_video_mp4, with or without video/ or data0613/ above them); `start` / `end`
              are applied when sampling frames, except on the pre-cut copies
  videomme    lmms-lab/Video-MME videomme/test-*.parquet {"video_id","duration": short|medium|long,"domain",
              "sub_category","url","videoID","question_id","task_type","question","options": ["A. ..",..],
              "answer": letter}; videos data/<videoID>.mp4
  tempcompass TempCompass questions/{multi-choice,yes_no,caption_matching}.json {video_id: {dim: [{"question",
              "answer"}]}} or lmms-lab/TempCompass <format>/test-*.parquet rows {"video_id","question","answer",
              "dim"}; videos videos/<video_id>.mp4; captioning files are skipped (scored by an LLM judge)
  vsibench    nyu-visionx/VSI-Bench test-*.parquet / test.jsonl {"id","dataset","scene_name","question_type",
              "question","options"|null,"ground_truth"}; videos <dataset>/<scene_name>.mp4; numeric types: MRA
  mmvu        yale-nlp/MMVU validation.json {"id","video": URL,"question_type": "multiple-choice"|"open-ended",
              "question","choices": {"A": ..},"answer","metadata": {"subject",..}}, or lmms-lab/MMVU rows with
              "video_path": "videos/<Subject>/<n>.mp4"; videos videos/<Subject>/<n>.mp4
  videommmu   lmms-lab/VideoMMMU <Track>/test-*.parquet {"id": "<split>_<Subject>_<n>","question","options",
              "answer","question_type": "multiple-choice"|"perception"|"open","image"?,"link_selected"?};
              videos <Discipline>/<id>.mp4; ids are prefixed with the track (an id recurs across tracks)

A relative video path is tried against the data file's folder and its parent (and each benchmark's own
folders); the first that exists wins, else the first candidate is kept and the harness reports it missing.
Answers are normalised like training manifests (`data.manifest`): option letter, number text, or free text.

Only bad data is skipped: a missing field, a value of the wrong type, an answer that is not among the options,
a repeated id; each `SkippedRow` names the file, the row (1-based line or element) and the field. Anything
else (a reader bug, an unreadable file) raises.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import os
import re
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any

# Shared with training manifests, so that eval answers normalise exactly as training targets do.
from vlatent_jax.data import manifest
from vlatent_jax.data.manifest import from_video_r1, make_row, parse_options, split_llava_question
from vlatent_jax.data.prompts import OPTION_LETTERS
from vlatent_jax.eval.rows import BadRow, SkippedRow, iter_rows
from vlatent_jax.eval.rows import data_files as _files
from vlatent_jax.eval.rows import number as _number
from vlatent_jax.eval.rows import string_list as _list
from vlatent_jax.eval.rows import text as _text

Window = tuple[float | None, float | None]


@dataclasses.dataclass(frozen=True)
class Question:
  id: str
  video: str                  # absolute path: a video file or a folder of frames
  question: str
  options: list[str] | None   # multiple choice only
  answer: str                 # option letter, number text, or free text
  question_type: str          # prompt template type, one of prompts.QUESTION_TYPES
  category: str               # group for per-type accuracy (task, dimension, subject, ...)
  line: int = 0               # 1-based row (or array element) in its file
  extra: dict = dataclasses.field(default_factory=dict)  # benchmark fields kept for reports (duration, track, ..)
  file: str = ""              # the data file the question came from
  window: Window | None = None   # (start, end) seconds of the video to sample from; None: all of it
  folder_fps: float | None = None  # frame rate of a frame-folder video
  match: str = ""             # scoring rule beyond the question type: "yes_no", "open" (scoring.score)


# ---------------------------------------------------------------------------- field access


_FIELD_IN_MESSAGE = re.compile(r"field '(\w+)'")


def _from_manifest(answer_field: str, fn: Callable, *args):
  """Calls a `data.manifest` parser; its bad-data error (manifest._Bad) becomes a BadRow naming the field."""
  try:
    return fn(*args)
  except manifest._Bad as e:  # noqa: SLF001  manifest's own "bad data" type: only these are skipped
    message = str(e)
    named = _FIELD_IN_MESSAGE.search(message)
    field = (named.group(1) if named else "options" if "option" in message and "answer" not in message
             else "question_type" if "question type" in message else answer_field)
    raise BadRow(message, field) from e


def _options(value) -> list[str] | None:
  return _from_manifest("options", parse_options, value)


def _question(line, row_id, video, question, answer, options, question_type, category, extra=None, *,
              answer_field="answer", **fields) -> Question:
  """A Question through the training manifests' normalisation (answer letter / number parsing)."""
  row = _from_manifest(answer_field, make_row, line, row_id, video, question, str(answer).strip(), options,
                       question_type, "/")
  if not row.question:
    raise BadRow("empty question", "question")
  return Question(row.id, row.video, row.question, row.options, row.answer, row.question_type, str(category), line,
                  dict(extra or {}), **fields)


def _choice(line, row_id, video, question, options: list[str], index: int, category, extra=None,
            **fields) -> Question:
  """A multiple-choice Question whose answer is the option at `index` (found by the reader itself)."""
  if not question:
    raise BadRow("empty question", "question")
  if len(options) > len(OPTION_LETTERS):
    raise BadRow(f"{len(options)} options; at most {len(OPTION_LETTERS)} are supported", "options")
  return Question(str(row_id), os.path.normpath(video), question, options, OPTION_LETTERS[index],
                  "multiple choice", str(category), line, dict(extra or {}), **fields)


def _first_existing(candidates: list[str]) -> str:
  """The first candidate that exists (a file, or a folder of frames), else the first one."""
  candidates = [os.path.abspath(os.path.expanduser(c)) for c in candidates]
  return next((c for c in candidates if os.path.exists(c)), candidates[0])


VIDEO_EXTENSIONS = (".mp4", ".MP4", ".webm", ".mkv", ".avi", ".mov")


def _alternatives(path: str) -> list[str]:
  """`path`, the same name with the other video extensions, and the bare name (a folder of frames)."""
  stem = os.path.splitext(path)[0]
  return [path] + [stem + ext for ext in VIDEO_EXTENSIONS if stem + ext != path] + [stem]


def _near(path: str, relative: str, *subdirs: str, any_extension: bool = False) -> str:
  """`relative` under the data file's folder or its parent, optionally inside one of `subdirs`; with
  `any_extension`, also under another video extension or as a frame folder."""
  if os.path.isabs(relative):
    return relative
  here = os.path.dirname(os.path.abspath(path))
  bases = [os.path.join(b, s) for s in (*subdirs, "") for b in (here, os.path.dirname(here))]
  names = _alternatives(relative) if any_extension else [relative]
  return _first_existing([os.path.join(b, n) for b in bases for n in names])


# ---------------------------------------------------------------------------- loading rows


def _collect(file: str, rows: Iterator[tuple[int, Any]], convert: Callable[[dict, int], Question]):
  questions, skipped = [], []
  for line, obj in rows:
    video = obj.get("video") if isinstance(obj, dict) else None
    try:
      if isinstance(obj, BadRow):
        raise obj
      if not isinstance(obj, dict):
        raise BadRow(f"row is a {type(obj).__name__}, not an object")
      questions.append(dataclasses.replace(convert(obj, line), file=file))
    except BadRow as e:
      skipped.append(SkippedRow(line, str(e), video if isinstance(video, str) else None, file, e.field))
  return questions, skipped


def _read_files(files: list[str], convert: Callable[[str], Callable[[dict, int], Question]], rows=iter_rows):
  questions, skipped = [], []
  for file in files:
    q, s = _collect(file, rows(file), convert(file))
    questions += q
    skipped += s
  return questions, skipped


_DATA = r"\.(parquet|json|jsonl)$"


# ---------------------------------------------------------------------------- benchmarks


def read_embedded(path: str, split: str = "test"):
  file = os.path.join(path, f"{split}.jsonl") if os.path.isdir(path) else path
  if not os.path.isfile(file):
    raise FileNotFoundError(f"embedded benchmark file not found: {file}")

  def convert(obj, line):
    return _question(line, obj.get("id"), _near(file, _text(obj, "video")), _text(obj, "question"),
                     _text(obj, "answer"), _options(obj.get("options")), _text(obj, "question_type", required=False),
                     _text(obj, "task", "question_type", required=False) or "all")
  return _collect(file, iter_rows(file), convert)


_R1_CATEGORY = ("original_question_type", "task_type", "question_type", "category", "dim", "data_source")


def read_video_r1(path: str):
  def for_file(file):
    def convert(obj, line):
      # "./Evaluation/..." is relative to src/r1-v/, the parent of the folder holding eval_*.json
      row = _from_manifest("solution", from_video_r1, {**obj, "path": _near(file, _text(obj, "path"))}, line, "/")
      category = next((obj[k] for k in _R1_CATEGORY if isinstance(obj.get(k), str) and obj[k]), row.question_type)
      source = obj.get("data_source")
      return Question(row.id, row.video, row.question, row.options, row.answer, row.question_type, category, line,
                      {"data_source": source} if isinstance(source, str) else {})
    return convert
  return _read_files(_files(path, r"\.(json|jsonl)$"), for_file)


# MVBench task -> video folders: the release's (data_list of its eval code) first, then lmms-eval's copies
# ("video" revision: clips already cut to start/end, converted to mp4).
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
    "episodic_reasoning": ("tvqa/frames_fps3_hq", "tvqa/video_fps3_hq_segment"),  # jpg frame folders, 3 fps
    "counterfactual_inference": ("clevrer/video_validation",),
}
MVBENCH_FRAME_FPS = 3.0  # tvqa/frames_fps3_hq


def _mvbench_root(file: str) -> str:
  folder = os.path.dirname(os.path.abspath(file))
  return os.path.dirname(folder) if os.path.basename(folder) == "json" else folder


def _candidate_index(candidates: list, answer: str) -> int:
  """MVBench's gold letter: the candidate equal to the answer (as its eval code compares), else equal up to
  case and surrounding space and a final period."""
  texts = [str(c) for c in candidates]
  if answer in texts:
    return texts.index(answer)
  norm = [t.strip().rstrip(".").lower() for t in texts]
  wanted = answer.strip().rstrip(".").lower()
  if wanted in norm:
    return norm.index(wanted)
  raise BadRow(f"answer {answer[:60]!r} is not one of the candidates {texts}", "answer")


def read_mvbench(path: str):
  files = _files(os.path.join(path, "json") if os.path.isdir(os.path.join(path, "json")) else path, r"\.json$")

  def for_file(file):
    task = os.path.splitext(os.path.basename(file))[0]
    root = _mvbench_root(file)

    def convert(obj, line):
      name = _text(obj, "video")
      candidates = _list(obj, "candidates")
      index = _candidate_index(candidates, _text(obj, "answer"))
      folders = [os.path.join(top, f) for f in (*MVBENCH_FOLDERS.get(task, ()), "")
                 for top in ("video", "", "data0613")]
      video = _first_existing([os.path.join(root, f, n) for f in folders for n in _alternatives(name)])
      start, end = _number(obj, "start"), _number(obj, "end")
      cut = "_segment" in os.path.relpath(video, root)  # lmms-eval's copies are cut to the bounds already
      window = None if cut or (start is None and end is None) else (start, end)
      extra = {"start": start, "end": end} if start is not None or end is not None else {}
      return _choice(line, f"{task}/{line}", video, _text(obj, "question"), [str(c).strip() for c in candidates],
                     index, task, extra, window=window,
                     folder_fps=MVBENCH_FRAME_FPS if task == "episodic_reasoning" else None)
    return convert
  return _read_files(files, for_file)


def read_videomme(path: str):
  def for_file(file):
    def convert(obj, line):
      vid = _text(obj, "videoID", "video_id")
      video = _near(file, f"{vid}.mp4", "data", "videos", any_extension=True)
      extra = {k: obj[k] for k in ("duration", "domain", "sub_category", "video_id") if isinstance(obj.get(k), str)}
      return _question(line, _text(obj, "question_id", required=False) or f"{vid}/{line}", video,
                       _text(obj, "question"), _text(obj, "answer"), _options(_list(obj, "options")),
                       "multiple choice", _text(obj, "task_type", "duration", required=False) or "all", extra)
    return convert
  return _read_files(_files(path, _DATA), for_file)


TEMPCOMPASS_FORMATS = ("multi-choice", "yes_no", "caption_matching", "captioning")
TEMPCOMPASS_DIMENSIONS = ("action", "speed", "direction", "order", "attribute_change")
_CAPTION_LINE = re.compile(r"^((?:Caption|Sentence|Option)\s+\w+)\s*:\s*(.+)$")


def tempcompass_format(file: str) -> str:
  """The task format a TempCompass file holds, from its name or its folder's (questions/yes_no.json,
  lmms-lab's caption_matching/test-*.parquet)."""
  for part in reversed(os.path.abspath(file).split(os.sep)):
    name = os.path.splitext(part)[0].lower().replace("-", "_")
    for fmt in TEMPCOMPASS_FORMATS:
      if fmt.replace("-", "_") in name:
        return fmt
  raise ValueError(f"cannot tell which TempCompass task format {file} holds: its file or folder name must "
                   f"contain one of {', '.join(TEMPCOMPASS_FORMATS)}")


def _tempcompass_rows(file: str) -> Iterator[tuple[int, Any]]:
  """Rows with "n" (the question's position among its video's questions of one dimension, so that the
  original nested {video_id: {dim: [{question, answer}]}} and lmms-lab's flat rows get the same ids)."""
  if file.endswith(".json"):
    with open(file, encoding="utf-8") as f:
      try:
        obj = json.load(f)
      except json.JSONDecodeError as e:
        yield e.lineno, BadRow(f"bad JSON: {e.msg} at line {e.lineno} column {e.colno}")
        return
    if isinstance(obj, dict) and not isinstance(obj.get("data"), list):
      line = 0
      for video_id, dims in obj.items():
        if not isinstance(dims, dict):
          line += 1
          yield line, BadRow(f"video {video_id!r}: expected {{dimension: [questions]}}, got {type(dims).__name__}",
                             "video_id")
          continue
        for dim, items in dims.items():
          for n, item in enumerate(items if isinstance(items, list) else [items], start=1):
            line += 1
            yield line, ({**item, "video_id": video_id, "dim": dim, "n": n} if isinstance(item, dict) else item)
      return
  counts = defaultdict(int)
  for line, obj in iter_rows(file):
    if isinstance(obj, dict):
      key = (obj.get("video_id"), obj.get("dim"))
      counts[key] += 1
      obj = {**obj, "n": counts[key]}
    yield line, obj


def _caption_matching(question: str, answer: str) -> tuple[str, list[str], int]:
  """'Which caption ..?\\nCaption A: x\\nCaption B: y', 'Caption B: y' -> (question, [x, y], 1). The answer may
  be the whole option line, its label or its sentence (TempCompass' eval_rule accepts the same)."""
  first, *rest = [l.strip() for l in question.strip().splitlines() if l.strip()]
  parsed = [_CAPTION_LINE.match(l) for l in rest]
  if len(parsed) < 2 or not all(parsed):
    raise BadRow("caption-matching question without 'Caption A: ..' / 'Sentence A: ..' / 'Option 1: ..' lines",
                 "question")
  labels, sentences = [m.group(1) for m in parsed], [m.group(2).strip() for m in parsed]
  answer = answer.strip()
  for candidates in (rest, labels, sentences):
    if answer in candidates:
      return first, sentences, candidates.index(answer)
  label = answer.split(":")[0].strip()
  if label in labels:
    return first, sentences, labels.index(label)
  raise BadRow(f"answer {answer[:60]!r} is not one of the captions {labels}", "answer")


def read_tempcompass(path: str):
  if os.path.isdir(os.path.join(path, "questions")):  # the GitHub release: questions/ beside predictions/
    path = os.path.join(path, "questions")
  files = _files(path, _DATA)
  if os.path.isdir(path):  # a folder: its files named for a task format (meta_info.json and the like are not)
    files = [f for f in files if re.search(r"multi[-_]choice|yes[-_]no|caption[-_]matching|captioning",
                                           os.path.relpath(f, path).lower())]
    if not files:
      raise FileNotFoundError(f"no TempCompass files under {path} (names with {', '.join(TEMPCOMPASS_FORMATS)})")
  skipped = [SkippedRow(0, "TempCompass captioning is scored by an LLM judge (ChatGPT answering multi-choice "
                           "questions from the caption); file not evaluated", None, f, None)
             for f in files if tempcompass_format(f) == "captioning"]

  def for_file(file):
    fmt = tempcompass_format(file)

    def convert(obj, line):
      vid, dim = _text(obj, "video_id"), _text(obj, "dim")
      qid = f"{fmt}/{vid}/{dim}/{obj['n']}"
      video = _near(file, f"{vid}.mp4", "videos", any_extension=True)
      text, answer = _text(obj, "question"), _text(obj, "answer")
      extra = {"format": fmt, "video_id": vid}
      if fmt == "multi-choice":
        question, options = split_llava_question(text)
        if not options:
          raise BadRow("no lettered options (A. ..) in the question", "question")
        return _question(line, qid, video, question, answer, options, "multiple choice", dim, extra)
      if fmt == "yes_no":
        if answer.lower() not in ("yes", "no"):
          raise BadRow(f"yes/no answer {answer[:60]!r} is neither yes nor no", "answer")
        return _question(line, qid, video, text, answer.lower(), None, "free-form", dim, extra, match="yes_no")
      question, options, index = _caption_matching(text, answer)
      return _choice(line, qid, video, question, options, index, dim, extra)
    return convert
  questions, bad = _read_files([f for f in files if tempcompass_format(f) != "captioning"], for_file,
                               _tempcompass_rows)
  return questions, skipped + bad


VSI_MULTIPLE_CHOICE = ("object_rel_direction_easy", "object_rel_direction_medium", "object_rel_direction_hard",
                       "object_rel_distance", "route_planning", "obj_appearance_order")
VSI_NUMERIC = ("object_abs_distance", "object_counting", "object_size_estimation", "room_size_estimation")


def read_vsibench(path: str):
  def for_file(file):
    def convert(obj, line):
      kind = _text(obj, "question_type")
      if kind not in VSI_MULTIPLE_CHOICE + VSI_NUMERIC:
        raise BadRow(f"unknown VSI-Bench question_type {kind!r}", "question_type")
      video = _near(file, f"{_text(obj, 'dataset')}/{_text(obj, 'scene_name')}.mp4")
      mc = kind in VSI_MULTIPLE_CHOICE
      return _question(line, _text(obj, "id", required=False) or f"line-{line}", video, _text(obj, "question"),
                       _text(obj, "ground_truth"), _options(_list(obj, "options")) if mc else None,
                       "multiple choice" if mc else "regression", kind, answer_field="ground_truth")
    return convert
  return _read_files(_files(path, _DATA), for_file)


# MMVU subject -> discipline, as MMVU reports them (lmms-eval's mmvu TASK_MAP; subjects as video folder names).
MMVU_DISCIPLINES = {
    "Science": ("Biology", "Chemistry", "Modern_Physics", "Astronomy", "Geography", "Materials_Science",
                "Neurobiology", "Electromagnetism", "Thermodynamics", "Mechanics"),
    "Engineering": ("Civil_Engineering", "Electrical_Engineering", "Mechanical_Engineering", "Biomedical_Engineering",
                    "Electronics_and_Communication", "Computer_Science"),
    "Healthcare": ("Clinical_Medicine", "Basic_Medicine", "Preventive_Medicine", "Pharmacy", "Dentistry"),
    "Humanities_and_Social_Science": ("Art", "Literature", "History", "Law", "Economics", "Management"),
}
_MMVU_DISCIPLINE = {s: d for d, subjects in MMVU_DISCIPLINES.items() for s in subjects}


def _hf_relative(url: str) -> str:
  """'https://huggingface.co/datasets/yale-nlp/MMVU/resolve/main/videos/Art/0.mp4' -> 'videos/Art/0.mp4'."""
  return url.split("/resolve/main/", 1)[1] if "/resolve/main/" in url else url


def _mmvu_choices(choices) -> list[str]:
  """{"A": "x", "B": "y", "C": "", ..} -> ['A. x', 'B. y']: the non-empty choices, which must be A, B, .. in order."""
  if not isinstance(choices, dict):
    raise BadRow(f"field 'choices' must be an object {{letter: text}}, got {type(choices).__name__}", "choices")
  kept = sorted((str(k).strip(), str(v).strip()) for k, v in choices.items() if v is not None and str(v).strip())
  if [k for k, _ in kept] != list(OPTION_LETTERS[:len(kept)]) or len(kept) < 2:
    raise BadRow(f"choices {[k for k, _ in kept]} are not two or more options lettered from A", "choices")
  return [f"{k}. {v}" for k, v in kept]


def read_mmvu(path: str):
  def for_file(file):
    def convert(obj, line):
      kind = _text(obj, "question_type")
      if kind not in ("multiple-choice", "open-ended"):
        raise BadRow(f"unknown MMVU question_type {kind!r}", "question_type")
      relative = _hf_relative(_text(obj, "video_path", "video"))
      metadata = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
      subject = (_text(metadata, "subject", required=False) or os.path.basename(os.path.dirname(relative))
                 or "unknown").replace(" ", "_")
      extra = {"subject": subject, "discipline": _MMVU_DISCIPLINE.get(subject, "unknown"), "mmvu_type": kind}
      video = _near(file, relative)
      mc = kind == "multiple-choice"
      return _question(line, _text(obj, "id", required=False) or f"line-{line}", video, _text(obj, "question"),
                       _text(obj, "answer"), _mmvu_choices(obj.get("choices")) if mc else None,
                       "multiple choice" if mc else "free-form", subject, extra, match="" if mc else "open")
    return convert
  return _read_files(_files(path, _DATA), for_file)


# VideoMMMU subject -> (video folder, discipline as its results name them: lmms-eval's DOMAIN_CAT2SUB_CAT).
VIDEOMMMU_DISCIPLINES = {
    ("Art", "Art and Design"): ("Art", "Art_Theory", "Design", "Music"),
    ("Science", "Science"): ("Biology", "Chemistry", "Geography", "Math", "Physics"),
    ("Humanities", "Humanities and Social Science"): ("History", "Literature", "Sociology", "Psychology"),
    ("Engineering", "Tech and Engineering"): ("Agriculture", "Architecture_and_Engineering", "Computer_Science",
                                              "Electronics", "Energy_and_Power", "Materials", "Mechanical_Engineering"),
    ("Medicine", "Health and Medicine"): ("Basic_Medical_Science", "Clinical_Medicine",
                                          "Diagnostics_and_Laboratory_Medicine", "Pharmacy", "Public_Health"),
    ("Business", "Business"): ("Accounting", "Economics", "Finance", "Manage", "Marketing"),
}
_VIDEOMMMU_SUBJECT = {s: names for names, subjects in VIDEOMMMU_DISCIPLINES.items() for s in subjects}
VIDEOMMMU_TRACKS = ("Perception", "Comprehension", "Adaptation")


def _videommmu_options(value) -> list[str] | None:
  if isinstance(value, str):  # some exports store the list as its Python repr
    try:
      value = ast.literal_eval(value)
    except (ValueError, SyntaxError) as e:
      raise BadRow(f"options {value[:60]!r} is not a list", "options") from e
  if value is not None and not isinstance(value, list):
    raise BadRow(f"field 'options' must be a list, got {type(value).__name__}", "options")
  return _options([o for o in (value or []) if str(o).strip()])


def read_videommmu(path: str):
  def for_file(file):
    track = next((t for t in VIDEOMMMU_TRACKS if t.lower() in os.path.abspath(file).lower()), None)

    def convert(obj, line):
      qid = _text(obj, "id")
      subject = "_".join(qid.split("_")[1:-1])
      folder, discipline = _VIDEOMMMU_SUBJECT.get(subject, ("", "unknown"))
      video = _near(file, f"{qid}.mp4", folder, "videos")
      options = _videommmu_options(obj.get("options"))
      kind = _text(obj, "question_type", required=False)
      answer = _text(obj, "answer")
      extra = {"subject": subject, "discipline": discipline, "track": track or "unknown"}
      row_id = f"{track}/{qid}" if track else qid  # the same id names a video's question in each track
      if kind in ("multiple-choice", "perception") and options:
        return _question(line, row_id, video, _text(obj, "question"), answer, options, "multiple choice",
                         track or subject or "all", extra)
      # open questions: MMMU's open-answer rule (numbers at 2 decimals, else the answer inside the response)
      prompt = "numerical" if re.fullmatch(r"[-+]?\d[\d,]*(\.\d+)?", answer) else "free-form"
      return _question(line, row_id, video, _text(obj, "question"), answer, None, prompt, track or subject or "all",
                       extra, match="open")
    return convert
  return _read_files(_files(path, _DATA), for_file)


READERS: dict[str, Callable[..., tuple[list[Question], list[SkippedRow]]]] = {
    "embedded": read_embedded, "video_r1": read_video_r1, "mvbench": read_mvbench, "videomme": read_videomme,
    "tempcompass": read_tempcompass, "vsibench": read_vsibench, "mmvu": read_mmvu, "videommmu": read_videommmu}
BENCHMARKS = tuple(READERS)
_ALIASES = {"video-r1": "video_r1", "videor1": "video_r1", "video-mme": "videomme", "video_mme": "videomme",
            "vsi-bench": "vsibench", "vsi_bench": "vsibench", "video-mmmu": "videommmu", "video_mmmu": "videommmu"}


def benchmark_name(bench: str) -> str:
  name = _ALIASES.get(bench.lower(), bench.lower())
  if name not in READERS:
    raise ValueError(f"unknown benchmark {bench!r}; known: {', '.join(BENCHMARKS)}")
  return name


def _unique(questions: list[Question]) -> tuple[list[Question], list[SkippedRow]]:
  """Questions with an id seen before are skipped: predictions files map ids to answers."""
  first: dict[str, Question] = {}
  kept, skipped = [], []
  for q in questions:
    if q.id in first:
      seen = first[q.id]
      skipped.append(SkippedRow(q.line, f"duplicate id {q.id!r} (first in {os.path.basename(seen.file)} row "
                                        f"{seen.line})", q.video, q.file, "id"))
    else:
      first[q.id] = q
      kept.append(q)
  return kept, skipped


def read(bench: str, path: str, limit: int | None = None, split: str = "test") -> tuple[list[Question], list[SkippedRow]]:
  """Questions of benchmark `bench` from its local files at `path` (first `limit`), and the rows skipped."""
  name = benchmark_name(bench)
  if not os.path.exists(path):
    raise FileNotFoundError(f"benchmark data not found: {path}")
  questions, skipped = read_embedded(path, split) if name == "embedded" else READERS[name](path)
  questions, repeated = _unique(questions)
  return (questions if limit is None else questions[:limit]), skipped + repeated
