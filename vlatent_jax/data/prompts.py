"""Prompt templates by question type (Video-R1's wording), applied through the tokenizer's chat template.

The answer target is what evaluation extracts: an option letter for multiple
choice, a number for numerical / regression questions, free text otherwise.
"""

from __future__ import annotations

QUESTION_TYPES = ("multiple choice", "numerical", "regression", "free-form", "OCR")

TEMPLATES = {
    "multiple choice": "{question}\nOptions:\n{options}\nAnswer with the option's letter from the given choices directly.",
    "numerical": "{question}\nAnswer with a single number directly.",
    "regression": "{question}\nAnswer with a single number directly.",
    "free-form": "{question}\nAnswer the question using a single word or phrase.",
    "OCR": "{question}\nAnswer with the text you read.",
}

OPTION_LETTERS = "ABCDEFGHIJ"


def format_options(options: list[str]) -> str:
  """['red', 'blue'] -> 'A. red\\nB. blue'; options already lettered ('A. red') are kept as they are."""
  lines = []
  for letter, option in zip(OPTION_LETTERS, options):
    text = str(option).strip()
    lines.append(text if text[:2] == f"{letter}." else f"{letter}. {text}")
  return "\n".join(lines)


def user_text(question: str, question_type: str, options: list[str] | None = None) -> str:
  if question_type not in TEMPLATES:
    raise ValueError(f"question_type must be one of {QUESTION_TYPES}, got {question_type!r}")
  if question_type == "multiple choice" and not options:
    raise ValueError("a multiple-choice question needs options")
  return TEMPLATES[question_type].format(question=question.strip(), options=format_options(options or []))


def chat_prompt(tokenizer, question: str, question_type: str, options: list[str] | None = None,
                with_video: bool = True) -> str:
  """The user turn (video placeholder + templated question) and the assistant header, as text."""
  content = ([{"type": "video"}] if with_video else []) + [
      {"type": "text", "text": user_text(question, question_type, options)}]
  return tokenizer.apply_chat_template([{"role": "user", "content": content}], tokenize=False,
                                       add_generation_prompt=True)


# Explicit reasoning (the `cot` mode and the latent curriculum), Video-R1's output format.
THINK_OPEN, THINK_CLOSE, ANSWER_OPEN, ANSWER_CLOSE = "<think>", "</think>", "<answer>", "</answer>"
STEP_SEPARATOR = "; "


def reasoning_texts(steps: list[str], answer: str) -> list[str]:
  """The target text after the first s rationale steps are dropped, for s = 0 .. len(steps).

  s = 0 is the full chain of thought `<think>step 1; step 2</think><answer>A</answer>`; a curriculum
  stage that replaces the first s steps by latent steps trains on text s; the last one keeps only
  `<answer>A</answer>`. Answers stay extractable by Video-R1's `<answer>` pattern at every stage.
  """
  if any(not isinstance(s, str) or not s.strip() for s in steps):
    raise ValueError(f"rationale steps must be non-empty strings, got {steps!r}")
  tail = f"{ANSWER_OPEN}{answer}{ANSWER_CLOSE}"
  return [(f"{THINK_OPEN}{STEP_SEPARATOR.join(s.strip() for s in steps[k:])}{THINK_CLOSE}" if k < len(steps) else "")
          + tail for k in range(len(steps) + 1)]
