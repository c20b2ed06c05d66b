"""The headline experiment end to end on a very small budget, and its table's statistics by hand."""

import json
import os
import subprocess
import sys

import pytest

from vlatent_jax import experiment
from vlatent_jax.config import describe

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_summary_mean_and_std_by_hand():
  runs = [{"mode": "sft", "seed": s, "accuracy": a, "per_type": {"x": a}, "train_seconds": 10.0,
           "seconds_per_answer": 0.01} for s, a in ((0, 0.2), (1, 0.4), (2, 0.6))]
  table = experiment.summarize(runs)
  assert table["sft"]["accuracy"] == pytest.approx((0.4, 0.2))  # std with ddof=1: sqrt((0.04+0+0.04)/2)
  text = experiment.markdown(table, {"steps": 1, "batch_size": 2, "seeds": [0, 1, 2], "split": "test",
                                     "chance": "", "seconds": 1.0})
  assert "| sft | 40.0 ± 20.0 | 40.0 ± 20.0 | 10 | 10.0 |" in text


def test_headline_experiment_small(tmp_path):
  cmd = [sys.executable, "-m", "vlatent_jax.experiment", f"--workdir={tmp_path}", "--steps=4", "--eval-every=2",
         "--seeds=0,1", "--modes=sft,videolatent", "--counts=32,16,12", "--eval-batch-size=12"]
  subprocess.run(cmd, check=True, cwd=ROOT, env={**os.environ, "JAX_PLATFORMS": "cpu"})
  with open(tmp_path / "results.json") as f:
    results = json.load(f)
  assert len(results["runs"]) == 4 and set(results["table"]) == {"sft", "videolatent"}
  for run in results["runs"]:
    assert run["n"] == 12 and 0.0 <= run["accuracy"] <= 1.0 and run["best_step"] in (2, 4)
  text = (tmp_path / "results.md").read_text()
  assert "| sft |" in text and "| videolatent |" in text
  for png in ("accuracy.png", "curves.png"):
    assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_readme_config_table_is_current():
  with open(os.path.join(ROOT, "README.md")) as f:
    assert describe() in f.read(), "regenerate the README's config table with `python -m vlatent_jax.config`"
