"""Answer extraction and scores as Video-R1 computes them, with MRA values worked out by hand."""

import pytest

from vlatent_jax.eval import report, scoring
from vlatent_jax.eval.scoring import (
  extract_answer,
  mean_relative_accuracy,
  open_match,
  open_predictions,
  option_letter,
  score,
)


def test_extract_answer():
  assert extract_answer("<think>the red one came first</think> <answer> B </answer>") == "B"
  assert extract_answer("<answer>\n3.5\n</answer> trailing") == "3.5"
  assert extract_answer("<answer>A</answer><answer>C</answer>") == "A"  # the first tag, as re.search finds
  assert extract_answer("  C. red \n") == "C. red"  # no tag: the whole output
  assert extract_answer("<answer>unclosed") == "<answer>unclosed"


def test_option_letter():
  options = ["red", "B. blue", "green"]
  for text in ("B", "B.", "(B)", "B) blue", "B. blue", "blue", "Blue."):
    assert option_letter(text, options) == "B", text
  assert option_letter("D", options) is None  # not one of the three letters
  assert option_letter("purple", options) is None
  assert option_letter("Because it moves", options) is None  # a word starting with a letter is not a letter
  assert option_letter("A", None) == "A"
  assert option_letter("A dog", ["a cat", "A dog"]) == "B"  # an option's text wins over a leading letter


def test_multiple_choice_scores():
  options = ["red", "blue", "green", "white"]
  assert score("<answer>C</answer>", "multiple choice", "C", options) == (1.0, "C")
  assert score("C. green", "multiple choice", "C", options) == (1.0, "C")
  assert score("green", "multiple choice", "C", options) == (1.0, "C")
  assert score("<answer>B</answer>", "multiple choice", "C", options) == (0.0, "B")
  assert score("I think so", "multiple choice", "C", options) == (0.0, "I think so")


def test_numerical_scores_round_to_two_decimals():
  assert score("<answer>7</answer>", "numerical", "7") == (1.0, "7")
  assert score("1,234", "numerical", "1234")[0] == 0.0  # Video-R1: a comma on one side only scores 0
  assert score("1,234", "numerical", "1,234.0")[0] == 1.0
  assert score("3.141", "numerical", "3.14")[0] == 1.0  # round(3.141, 2) == 3.14
  assert score("3.146", "numerical", "3.14")[0] == 0.0  # 3.15 != 3.14
  assert score("7.0", "numerical", "7")[0] == 0.0  # decimal point in the output only
  assert score("seven", "numerical", "7") == (0.0, "seven")


# Thresholds t = .50, .55, ..., .95; a threshold passes when rel < 1 - t, i.e. for 1 - t in
# .50 .45 .40 .35 .30 .25 .20 .15 .10 .05.
@pytest.mark.parametrize("pred, target, expected", [
    (10.0, 10.0, 1.0),    # rel 0: all 10
    (9.0, 10.0, 0.8),     # rel .10 < .50 .. .15 (8); on the boundary .10 < .10 fails (strict, as defined)
    (11.0, 10.0, 0.8),    # the same from above
    (8.0, 10.0, 0.6),     # rel .20 < .50 .. .25 (6)
    (15.0, 10.0, 0.0),    # rel .50 < .50 fails: none
    (10.6, 10.0, 0.9),    # rel .06 < .50 .. .10 (9), not < .05
    (-3.2, -3.0, 0.9),    # rel .0667: the same 9 (|target| in the denominator)
    (12.2, 10.0, 0.6),    # rel .22 < .50 .. .25 (6)
    (7.3, 10.0, 0.5),     # rel .27 < .50 .. .30 (5)
    (13.6, 10.0, 0.3),    # rel .36 < .50, .45, .40 (3)
    (4.0, 10.0, 0.0),     # rel .60: none
    (0.0, 0.0, 1.0),      # 0 / (0 + 1e-8) = 0
])
def test_mean_relative_accuracy(pred, target, expected):
  assert mean_relative_accuracy(pred, target) == pytest.approx(expected)


def test_regression_and_free_form_scores():
  assert score("<answer>12.2</answer>", "regression", "10") == (pytest.approx(0.6), "12.2")
  assert score("about 12", "regression", "10") == (0.0, "about 12")
  assert score("<answer> Dolly  zoom. </answer>", "free-form", "dolly zoom")[0] == 1.0
  assert score("zoom", "free-form", "dolly zoom")[0] == 0.0
  assert score("", "OCR", "")[0] == 0.0  # an empty answer never matches


def test_yes_no_rule_as_tempcompass():
  assert score("Yes, the man is dunking.", "free-form", "yes", match="yes_no") == (1.0, "yes")
  assert score("<answer>no</answer>", "free-form", "yes", match="yes_no") == (0.0, "no")
  assert score("NO.", "free-form", "no", match="yes_no") == (1.0, "no")
  assert score("The man is dunking.", "free-form", "yes", match="yes_no") == (0.0, "The man is dunking.")
  with pytest.raises(ValueError, match="unknown scoring rule"):
    score("x", "free-form", "x", match="fuzzy")


def test_open_answers_by_mmmu_rule():
  # key phrase after the last indicator ("is "), then the numbers in it, rounded to 2 decimals
  assert set(open_predictions("The mass is 12.50 g")) == {"12.50 g", 12.5}
  assert open_match("The mass is 12.50 g", "12.5")
  assert open_match("1,250", "1250") and not open_match("1,251", "1250")
  assert open_match("It is a dolly zoom.", "Dolly Zoom")            # the answer text inside the key phrase
  assert not open_match("zoom", "Dolly Zoom")
  assert open_match("The algorithm is depth-first search (dfs)", "Depth-First Search (DFS)")
  assert not open_match("", "3")
  assert not open_match("b", "B.") and open_match("so the answer is b", "b")  # one letter needs a space after it
  assert score("<answer>therefore the value is 7.0</answer>", "numerical", "7", match="open") == (
      1.0, "therefore the value is 7.0")


def test_summarize_groups_by_category_and_type():
  records = [{"category": "a", "question_type": "multiple choice", "score": 1.0, "latent_steps": 4},
             {"category": "a", "question_type": "regression", "score": 0.6, "latent_steps": 4},
             {"category": "b", "question_type": "multiple choice", "score": 0.0, "latent_steps": 2}]
  out = report.summarize(records, [{"kind": "corrupt"}, {"kind": "missing"}, {"kind": "corrupt"}])
  assert out["accuracy"] == pytest.approx(1.6 / 3) and out["n"] == 3 and out["skipped"] == 3
  assert out["per_type"] == {"a": {"n": 2, "accuracy": pytest.approx(0.8)}, "b": {"n": 1, "accuracy": 0.0}}
  assert out["by_question_type"]["multiple choice"] == {"n": 2, "accuracy": 0.5}
  assert out["skipped_by_kind"] == {"corrupt": 2, "missing": 1}
  assert out["mean_latent_steps"] == pytest.approx(10 / 3)
  assert report.summarize([], [])["accuracy"] is None
  assert scoring.MRA_THRESHOLDS.tolist() == [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95]
