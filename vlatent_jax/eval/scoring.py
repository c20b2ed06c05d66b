"""Answer extraction and per-question scores, following Video-R1's `eval_bench.py`.

  extraction      the text inside <answer>...</answer> if present, else the whole output
  multiple choice 1 if the extracted option letter equals the answer letter (Video-R1 compares the
                  stripped text to the letter; we also read "B.", "(B)", "B. red" and an option's text)
  numerical       1 if both parse as numbers (commas dropped) and agree rounded to 2 decimals; as in
                  Video-R1, a decimal point (or comma) in one but not the other scores 0
  regression      mean relative accuracy (VSI-Bench's MRA, Video-R1's implementation): the fraction of
                  thresholds t in 0.50, 0.55, ..., 0.95 with |pred - gt| / (|gt| + 1e-8) < 1 - t
  free-form, OCR  1 on a normalised exact match (Video-R1's eval gives these 0 and its training uses
                  ROUGE / WER; a judge-free exact match is the honest local score)

Scores lie in [0, 1]; a benchmark's accuracy is their mean (VSI-Bench mixes accuracy and MRA the same way).
"""

from __future__ import annotations

import re

import numpy as np

from vlatent_jax.data.prompts import OPTION_LETTERS

_ANSWER_TAG = re.compile(r"<answer>\s*(.*?)\s*</answer>", re.DOTALL)  # Video-R1's extract_answer pattern
_LETTER = re.compile(r"^\(?([A-J])\)?(?:[.):,]|\s|$)")                # "B", "B.", "(B)", "B) x", "B. red"
_LETTERED = re.compile(r"^\(?([A-J])\s*[.):]\s*(.*)$", re.DOTALL)      # an option written "A. red"
MRA_THRESHOLDS = np.arange(0.5, 0.95 + 0.05 / 2, 0.05, dtype=np.float32)  # torch.arange(.5, .95 + .025, .05)


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
  """MRA over thresholds 0.50 .. 0.95 (step 0.05), in float32 like Video-R1's torch code."""
  pred32, target32 = np.float32(pred), np.float32(target)
  rel_error = np.abs(pred32 - target32) / (np.abs(target32) + np.float32(1e-8))
  return float(np.mean(rel_error < (np.float32(1) - MRA_THRESHOLDS)))


def _normalise_text(text: str) -> str:
  return " ".join(text.lower().split()).strip(" .")


def score(output: str, question_type: str, answer: str, options: list[str] | None = None) -> tuple[float, str]:
  """(score in [0, 1], the extracted prediction) for one model output."""
  pred = extract_answer(output)
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
