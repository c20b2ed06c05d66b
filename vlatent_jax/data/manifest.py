"""Training manifests in the formats users already have, read into one `Row` type.

One small adapter per format, picked per row by its keys or forced with `fmt`:

    jsonl     {"video", "question", "answer", "options"?, "question_type"?, "id"?, "rationale"?: [steps]}
    video_r1  {"problem", "problem_type", "options", "data_type", "path", "solution": "<answer>B</answer>",
               "process"?: "<think>...</think>" (Video-R1-CoT's rationale)}
    llava     {"id", "video", "conversations": [{"from": "human", "value": "<video>\\n..."},
                                                {"from": "gpt", "value": "..."}]}

A file is JSON Lines, or one JSON array (Video-R1 ships .json lists). `line` is
the 1-based line in a JSONL file, the 1-based element position in an array.
Answers are normalised to what evaluation extracts: the option letter for
multiple choice, a number for numerical / regression. A bad row becomes a
`RowError(line, reason, video)` and is skipped; it never stops the run.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

from vlatent_jax.data.prompts import OPTION_LETTERS, QUESTION_TYPES

FORMATS = ("jsonl", "video_r1", "llava")
_LETTERED = re.compile(r"^\(?([A-J])\s*[.):]\s*(.*)$", re.DOTALL)       # "A. red", "(B) blue", "C: x"
_LETTER_ANSWER = re.compile(r"^\(?([A-J])\)?(?:[.):,]|\s|$)")          # "B", "B.", "(B)", "B. blue"
_ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_THINK_TAG = re.compile(r"<think>(.*?)</think>", re.DOTALL)
_NUMBER = re.compile(r"^[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$")
# Instructions some LLaVA-style rows carry; prompts.py adds its own per question type.
_INSTRUCTION = re.compile(r"^(answer|please (answer|respond|select)|respond|select|choose)\b.*"
                          r"(option|letter|choice|single word|phrase|number)", re.IGNORECASE)


@dataclasses.dataclass(frozen=True)
class Row:
  line: int
  id: str
  video: str                    # absolute path
  question: str
  answer: str                   # option letter for multiple choice, number text for numerical / regression
  options: list[str] | None
  question_type: str
  rationale: list[str] | None = None  # reasoning steps before the answer (cot / latent curriculum training)


class RowError(NamedTuple):
  line: int
  reason: str
  video: str | None = None


class _Bad(ValueError):
  pass


def _text(obj: dict, key: str) -> str:
  value = obj.get(key)
  if value is None or (isinstance(value, str) and not value.strip()):
    raise _Bad(f"missing field '{key}'")
  if isinstance(value, (int, float)) and not isinstance(value, bool):
    return str(value)
  if not isinstance(value, str):
    raise _Bad(f"field '{key}' must be a string, got {type(value).__name__}")
  return value.strip()


def parse_options(value: Any) -> list[str] | None:
  if value is None or value == [] or value == {}:
    return None
  if isinstance(value, dict):  # {"A": "red", "B": "blue"}
    value = [f"{k}. {v}" for k, v in sorted(value.items())]
  if not isinstance(value, list) or not all(isinstance(o, (str, int, float)) for o in value):
    raise _Bad("field 'options' must be a list of strings")
  if len(value) > len(OPTION_LETTERS):
    raise _Bad(f"{len(value)} options; at most {len(OPTION_LETTERS)} are supported")
  return [str(o).strip() for o in value]


def parse_rationale(value: Any) -> list[str] | None:
  """A list of step strings, or one text (Video-R1-CoT's "<think>...</think>") as a single step."""
  if value is None or value == [] or value == "":
    return None
  if isinstance(value, str):
    tagged = _THINK_TAG.search(value)
    value = [(tagged.group(1) if tagged else value).strip()]
  if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
    raise _Bad("field 'rationale' must be a list of non-empty strings")
  return [v.strip() for v in value]


def _option_text(option: str, letter: str) -> str:
  m = _LETTERED.match(option)
  return m.group(2).strip() if m and m.group(1) == letter else option


def _letter(answer: str, options: list[str]) -> str:
  """'B', 'B.', '(B)', 'B. blue' or the option's text -> 'B' (must name one of the options)."""
  letters = OPTION_LETTERS[:len(options)]
  texts = {_option_text(o, l).strip().lower(): l for l, o in zip(letters, options)}
  letter = texts.get(answer.strip().rstrip(".").lower())  # the option's text, checked first ("A dog")
  m = _LETTER_ANSWER.match(answer.strip())
  if letter is None and m and m.group(1) in letters:
    letter = m.group(1)
  if letter is None:
    raise _Bad(f"multiple-choice answer {answer[:60]!r} is not one of the option letters {letters}")
  return letter


def _number(answer: str) -> str:
  text = answer.strip().rstrip(".").replace(",", "")
  if not _NUMBER.match(text):
    raise _Bad(f"numerical answer {answer[:60]!r} is not a number")
  return text


def _video_path(video: str, base_dir: str) -> str:
  return os.path.normpath(os.path.join(base_dir, os.path.expanduser(video)))


def make_row(line: int, row_id: Any, video: str, question: str, answer: str, options: list[str] | None,
              question_type: str | None, base_dir: str, rationale: list[str] | None = None) -> Row:
  if question_type is None:  # infer: options -> multiple choice, number -> numerical, else free-form
    question_type = ("multiple choice" if options else
                     "numerical" if _NUMBER.match(answer.strip().rstrip(".").replace(",", "")) else "free-form")
  if question_type not in QUESTION_TYPES:
    raise _Bad(f"unknown question type {question_type!r} (expected one of {', '.join(QUESTION_TYPES)})")
  if question_type == "multiple choice":
    if not options:
      raise _Bad("multiple-choice question without options")
    answer = _letter(answer, options)
  elif question_type in ("numerical", "regression"):
    answer = _number(answer)
  elif not answer:
    raise _Bad("empty answer")
  return Row(line, str(row_id) if row_id is not None else f"line-{line}", _video_path(video, base_dir),
             question, answer, options if question_type == "multiple choice" else None, question_type, rationale)


def from_jsonl(obj: dict, line: int, base_dir: str) -> Row:
  """{"video", "question", "answer", "options"?, "question_type"?, "id"?, "rationale"?}."""
  return make_row(line, obj.get("id"), _text(obj, "video"), _text(obj, "question"), _text(obj, "answer"),
                   parse_options(obj.get("options")), obj.get("question_type"), base_dir,
                   parse_rationale(obj.get("rationale")))


def from_video_r1(obj: dict, line: int, base_dir: str) -> Row:
  """Video-R1: problem / problem_type / options / data_type / path / solution ("<answer>B</answer>")."""
  data_type = obj.get("data_type", "video")
  if data_type != "video":
    raise _Bad(f"data_type {data_type!r} is not a video")
  solution = _text(obj, "solution")
  tagged = _ANSWER_TAG.search(solution)
  answer = (tagged.group(1) if tagged else solution).strip()
  return make_row(line, obj.get("problem_id", obj.get("id")), _text(obj, "path"), _text(obj, "problem"), answer,
                   parse_options(obj.get("options")), _text(obj, "problem_type"), base_dir,
                   parse_rationale(obj.get("process")))


def split_llava_question(text: str) -> tuple[str, list[str] | None]:
  """'<video>\\nQ?\\nA. x\\nB. y\\nAnswer with the option's letter...' -> ('Q?', ['A. x', 'B. y'])."""
  lines = [l.strip() for l in text.replace("<video>", "").strip().splitlines()]
  options, first = [], None
  for i, l in enumerate(lines):
    m = _LETTERED.match(l)
    if m and m.group(1) == OPTION_LETTERS[len(options)]:
      first = i if first is None else first
      options.append(l)
    elif options:
      break
  keep = [l for l in (lines[:first] if first is not None else lines)
          if l and not _INSTRUCTION.match(l) and l.lower().rstrip(":") != "options"]
  return "\n".join(keep), (options if len(options) >= 2 else None)


def from_llava(obj: dict, line: int, base_dir: str) -> Row:
  """LLaVA-style conversations: the first human turn is the question, the next gpt turn the answer."""
  turns = obj.get("conversations")
  if not isinstance(turns, list) or not all(isinstance(t, dict) for t in turns):
    raise _Bad("field 'conversations' must be a list of {from, value} turns")
  human = next((i for i, t in enumerate(turns) if t.get("from") in ("human", "user")), None)
  if human is None:
    raise _Bad("no human turn in 'conversations'")
  reply = next((t for t in turns[human + 1:] if t.get("from") in ("gpt", "assistant")), None)
  if reply is None:
    raise _Bad("no gpt turn after the human turn in 'conversations'")
  question, options = split_llava_question(_text(turns[human], "value"))
  if not question:
    raise _Bad("empty question in the human turn")
  options = parse_options(obj.get("options")) or options
  return make_row(line, obj.get("id"), _text(obj, "video"), question, _text(reply, "value"), options,
                   obj.get("question_type"), base_dir)


ADAPTERS: dict[str, Callable[[dict, int, str], Row]] = {
    "jsonl": from_jsonl, "video_r1": from_video_r1, "llava": from_llava}


def detect_format(obj: dict) -> str:
  if "conversations" in obj:
    return "llava"
  if "problem" in obj or "solution" in obj or "problem_type" in obj:
    return "video_r1"
  return "jsonl"


def iter_objects(path: str) -> Iterator[tuple[int, Any]]:
  """(line, parsed JSON or _Bad) per record of a JSONL file or a JSON array file."""
  with open(path, encoding="utf-8") as f:
    text = f.read()
  if text.lstrip().startswith("["):
    try:
      items = json.loads(text)
    except json.JSONDecodeError as e:
      yield e.lineno, _Bad(f"bad JSON array: {e.msg} at line {e.lineno} column {e.colno}")
      return
    yield from enumerate(items, start=1)
    return
  for n, raw in enumerate(text.splitlines(), start=1):
    if not raw.strip():
      continue
    try:
      yield n, json.loads(raw)
    except json.JSONDecodeError as e:
      yield n, _Bad(f"bad JSON: {e.msg} at column {e.colno}")


def read_manifest(path: str, fmt: str | None = None) -> tuple[list[Row], list[RowError]]:
  """All usable rows of `path` in file order, and the skipped ones with their reasons."""
  if fmt is not None and fmt not in FORMATS:
    raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
  if not os.path.isfile(path):
    raise FileNotFoundError(f"manifest not found: {path}")
  base_dir = os.path.dirname(os.path.abspath(path))
  rows, errors = [], []
  for line, obj in iter_objects(path):
    if isinstance(obj, _Bad):
      errors.append(RowError(line, str(obj)))
      continue
    if not isinstance(obj, dict):
      errors.append(RowError(line, f"row is a JSON {type(obj).__name__}, not an object"))
      continue
    video = obj.get("path") if "path" in obj and "video" not in obj else obj.get("video")
    try:
      rows.append(ADAPTERS[fmt or detect_format(obj)](obj, line, base_dir))
    except _Bad as e:
      errors.append(RowError(line, str(e), video if isinstance(video, str) else None))
  return rows, errors
