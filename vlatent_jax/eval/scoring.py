"""Answer extraction and per-question scores, following Video-R1's `eval_bench.py`.

  extraction      the text inside <answer>...</answer> if present, else the whole output
  multiple choice 1 if the extracted option letter equals the answer letter (Video-R1 compares the
                  stripped text to the letter; we also read "B.", "(B)", "B. red" and an option's text)
  numerical       1 if both parse as numbers (commas dropped) and agree rounded to 2 decimals; as in
                  Video-R1, a decimal point (or comma) in one but not the other scores 0
  regression      mean relative accuracy (VSI-Bench's MRA as its paper defines it): the fraction of
                  thresholds t in 0.50, 0.55, ..., 0.95 with |pred - gt| / |gt| < 1 - t
  free-form, OCR  1 on a normalised exact match (Video-R1's eval gives these 0 and its training uses
                  ROUGE / WER; a judge-free exact match is the honest local score)

Rules a benchmark asks for beyond the question type (`Question.match`):
  yes_no          TempCompass' extract_pred: the output starting with "yes" / "no" (any case) is that answer
  open            MMMU's open-answer rule (VideoMMMU's open questions in lmms-eval, and our judge-free score of
                  MMVU's open-ended ones, which MMVU itself scores with a GPT judge): key phrases of the
                  response and the numbers in them; correct when a number equals the answer at 2 decimals or
                  the lower-cased answer text occurs in a key phrase

Scores lie in [0, 1]; a benchmark's accuracy is their mean (VSI-Bench mixes accuracy and MRA the same way).
"""

from __future__ import annotations

import re

import numpy as np

from vlatent_jax.data.prompts import OPTION_LETTERS

_ANSWER_TAG = re.compile(r"<answer>\s*(.*?)\s*</answer>", re.DOTALL)  # Video-R1's extract_answer pattern
_LETTER = re.compile(r"^\(?([A-J])\)?(?:[.):,]|\s|$)")                # "B", "B.", "(B)", "B) x", "B. red"
_LETTERED = re.compile(r"^\(?([A-J])\s*[.):]\s*(.*)$", re.DOTALL)      # an option written "A. red"
MRA_THRESHOLDS = np.arange(10, 20) / 20  # 0.50, 0.55, .., 0.95 (VSI-Bench's C)


def extract_answer(output: str) -> str:
  """The stripped content of the first <answer>...</answer>, else the whole stripped output."""
  match = _ANSWER_TAG.search(output)
  return (match.group(1) if match else output).strip()


def parse_number(text: str) -> float | None:
  """Video-R1's normalize_number: float() after dropping commas; None when that fails."""
  try:
    return float(text.replace(",", ""))
  except (ValueError, AttributeError):
    return None


def option_letter(text: str, options: list[str] | None = None) -> str | None:
  """The letter of the option whose text `text` is ("A dog" as an option wins over the letter A); else
  'B', 'B.', '(B)', 'B. red' -> 'B'; else None. As manifest.py reads answers."""
  text = text.strip()
  letters = OPTION_LETTERS[:len(options)] if options else OPTION_LETTERS
  wanted = text.rstrip(".").strip().lower()
  for letter, option in zip(letters, options or []):
    m = _LETTERED.match(str(option).strip())
    body = m.group(2) if m and m.group(1) == letter else str(option)
    if wanted and body.strip().rstrip(".").lower() == wanted:
      return letter
  match = _LETTER.match(text)
  return match.group(1) if match and match.group(1) in letters else None


def mean_relative_accuracy(pred: float, target: float) -> float:
  """MRA over thresholds t = 0.50, 0.55, .., 0.95: the fraction with |pred - gt| / |gt| < 1 - t.

  Compared as 20 |pred - gt| < (20 - 20 t) |gt|, with 20 t = 10 .. 19 whole numbers, so that a relative
  error on a threshold (9 for 10 at t = 0.9) is decided by the definition, not by the rounding of 0.9 in
  binary or by an epsilon added to |gt| (Video-R1's float32 code); a gt of 0 counts as 1e-8."""
  error, scale = abs(float(pred) - float(target)), abs(float(target)) or 1e-8
  return sum(20 * error < (20 - k) * scale for k in range(10, 20)) / 10


def _normalise_text(text: str) -> str:
  return " ".join(text.lower().split()).strip(" .")


def yes_no(text: str) -> str | None:
  """TempCompass' yes/no rule: 'yes' / 'no' when the text starts with it (any case), else None."""
  text = text.lower()
  return "yes" if text.startswith("yes") else "no" if text.startswith("no") else None


# MMMU's parse_open_response / eval_open (lmms-eval videommmu/utils.py), kept rule for rule.
_KEY_INDICATORS = ("could be ", "so ", "is ", "thus ", "therefore ", "final ", "answer ", "result ", "are ",
                   "in total ", "total ", "identify ", "recognize ", "calculated as ", "counted as ", "measured as ",
                   "observed as ", "concluded as ", "found to be ", "equals ", "determined to be ", "number of ",
                   "value is ", "adds up to ", "have ", "has ")
_NUMBER_PATTERNS = (re.compile(r"-?\b\d{1,3}(?:,\d{3})+\b"),                     # 1,234,567
                    re.compile(r"-?\d+(?:\.\d+)?[eE][+-]?\d+"),                   # 1.5e3
                    re.compile(r"-?(?:\d+\.\d+|\.\d+|\d+\b)(?![eE][+-]?\d+)(?![,\d])"))  # 3, 3.5, .5


def _open_normalise(text: str) -> list:
  """A number -> [its value rounded to 2 decimals]; text -> [lower-cased] (one letter padded with a space)."""
  text = text.strip()
  number = parse_number(text)
  if number is not None:
    return [round(number, 2)]
  text = text.lower()
  return [" " + text, text + " "] if len(text) == 1 else [text]


def _key_responses(response: str) -> list[str]:
  response = response.strip().strip(".").lower()
  parts = re.split(r"\.\s(?=[A-Z])|\n", response)  # as in MMMU: after lower() only newlines split
  keys = []
  for i, part in enumerate(parts):
    indicators = _KEY_INDICATORS + (("=",) if i == len(parts) - 1 else ())
    tails = [part.split(ind)[-1].strip() for ind in indicators if ind in part]
    shortest = min(tails, key=len) if tails else None
    if shortest and shortest.strip() not in (":", ",", ".", "!", "?", ";", "'"):
      keys.append(shortest)
  return keys or [response]


def open_predictions(response: str) -> list:
  """MMMU's parse_open_response: the key phrases of `response` and the numbers in them, normalised."""
  keys = _key_responses(response)
  found = keys + [n for key in keys for pattern in _NUMBER_PATTERNS for n in pattern.findall(key)]
  return list({item for text in found for item in _open_normalise(text)})


def open_match(response: str, answer: str) -> bool:
  """MMMU's eval_open: a number equal to the answer's, or the answer's text inside a key phrase."""
  if not response.strip():
    return False
  golds = _open_normalise(answer)
  for pred in open_predictions(response):
    if isinstance(pred, str):
      if any(isinstance(g, str) and g in pred for g in golds):
        return True
    elif pred in golds:
      return True
  return False


def score(output: str, question_type: str, answer: str, options: list[str] | None = None,
          match: str = "") -> tuple[float, str]:
  """(score in [0, 1], the extracted prediction) for one model output; `match` picks a benchmark's own rule."""
  pred = extract_answer(output)
  if match == "yes_no":
    got = yes_no(pred)
    return float(got is not None and got == answer.strip().lower()), got or pred
  if match == "open":
    return float(open_match(pred, answer)), pred
  if match:
    raise ValueError(f"unknown scoring rule {match!r}")
  if question_type == "multiple choice":
    letter = option_letter(pred, options)
    return float(letter is not None and letter == answer.strip()), letter or pred
  if question_type == "numerical":
    if ("." in pred or "," in pred) != ("." in answer or "," in answer):
      return 0.0, pred
    got, want = parse_number(pred), parse_number(answer)
    if got is None or want is None:
      return 0.0, pred
    return float(round(got, 2) == round(want, 2)), pred
  if question_type == "regression":
    got, want = parse_number(pred), parse_number(answer)
    if got is None or want is None:
      return 0.0, pred
    return mean_relative_accuracy(got, want), pred
  return float(_normalise_text(pred) == _normalise_text(answer) != ""), pred


def record(question, output: str) -> dict:
  """One scored answer for the reports: the question's identity and groups, the output, the score."""
  value, prediction = score(output, question.question_type, question.answer, question.options, question.match)
  return {"id": question.id, "category": question.category, "question_type": question.question_type,
          "video": question.video, "answer": question.answer, "output": output, "prediction": prediction,
          "score": value, "line": question.line, "extra": dict(question.extra)}
