"""The headline experiment: a short run that must beat chance and use the video, the report's statistics by
hand, and the CLI end to end on a very small budget (outputs, exported models, reuse only when identical)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from vlatent_jax import experiment
from vlatent_jax.config import describe, load_config_file, parse
from vlatent_jax.experiment import report

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {**os.environ, "JAX_PLATFORMS": "cpu"}


@pytest.fixture(scope="module")
def final_position_run(tmp_path_factory):
  """sft from scratch on one single-moment task (chance 25%): the tiny config, 300 steps of batch 16."""
  from vlatent_jax.data import prepare, synthetic
  from vlatent_jax.train.loop import train
  root = tmp_path_factory.mktemp("final_position")
  raw = root / "raw"
  synthetic.generate(str(raw), seed=0, counts={"train": 400, "val": 100}, frames=16, size=56, fps=8,
                     vocab_size=1024, tasks=["final_position"])
  for split in ("train", "val"):
    prepare.prepare(prepare.parse_args(["--manifest", str(raw / f"{split}.jsonl"), "--out", str(root / split),
                                        "--fps", "8", "--max-frames", "16", "--workers", "1"]))
  c = load_config_file(os.path.join(ROOT, "configs", "tiny.py"))
  c.latent.mode = "sft"
  c.train.steps, c.train.eval_every_steps, c.train.log_every_steps = 300, 0, 100
  c.data.path, c.data.max_prompt_len, c.data.max_answer_len = str(root / "train"), 112, 2
  c.checkpoint.every_steps = 300
  train(parse(c), str(root / "run"))
  return root


def test_short_run_beats_chance_and_uses_the_video(final_position_run):
  import grain
  from vlatent_jax.data import pipeline, preprocess, records
  from vlatent_jax.eval import harness, readers
  root = final_position_run
  model, processor = harness.load(str(root / "run" / "model"))
  questions, errors = readers.read("embedded", str(root / "raw" / "val.jsonl"))
  assert not errors and len(questions) == 100
  scores = harness.evaluate(model, processor, questions, mode="sft", batch_size=50, progress=False)
  assert scores["accuracy"] >= 0.4, scores["accuracy"]  # chance: 25% (four quadrants)
  # The answer depends on the video: zeroing it moves the answer's log-prob by a clear margin.
  source = grain.sources.ArrayRecordDataSource(pipeline.shard_paths(str(root / "val")))
  config = pipeline.processor_config(str(root / "val"))
  shifts = []
  for i in range(20):
    r = records.decode(source[i])
    prompt, answer = np.asarray(r["prompt_ids"]), int(np.asarray(r["answer_ids"])[0])
    pixels = preprocess.normalize_patches(np.asarray(r["patches"], np.uint8), config)
    log_probs = []
    for video in (pixels, np.zeros_like(pixels)):
      logits = model.logits(prompt[None], None, video, np.asarray(r["video_grid_thw"]).reshape(-1, 3),
                            np.asarray(r["second_per_grid_ts"], np.float32).reshape(-1))[0, -1]
      log_probs.append(logits[answer] - np.logaddexp.reduce(logits))
    shifts.append(abs(log_probs[0] - log_probs[1]))
  assert np.mean(shifts) > 0.5, np.mean(shifts)


def test_summary_mean_and_std_by_hand():
  runs = [{"mode": "sft", "seed": s, "accuracy": a, "per_type": {"x": a}, "train_seconds": 10.0,
           "seconds_per_answer": 0.01} for s, a in ((0, 0.2), (1, 0.4), (2, 0.6))]
  table = experiment.summarize(runs)
  assert table["sft"]["accuracy"] == pytest.approx((0.4, 0.2))  # std with ddof=1: sqrt((0.04+0+0.04)/2)
  text = experiment.markdown(table, {"steps": 1, "batch_size": 2, "seeds": [0, 1, 2], "split": "test",
                                     "chance": "", "seconds": 1.0})
  assert "| sft | 40.0 ± 20.0 | 40.0 ± 20.0 | 10 | 10.0 |" in text


def test_comparison_counts_the_two_stds():
  def runs(mode, values):
    return [{"mode": mode, "seed": s, "accuracy": v, "per_type": {"t": v}, "train_seconds": 1.0,
             "seconds_per_answer": 0.01} for s, v in enumerate(values)]
  table = report.summarize(runs("sft", (0.5, 0.6, 0.7)) + runs("videolatent", (0.9, 0.95, 1.0))
                           + runs("continuous_thought", (0.55, 0.7, 0.85)))
  comp = report.comparisons(table)
  # videolatent: +0.35 against stds 0.1 + 0.05 -> beats; continuous_thought: +0.1 against 0.1 + 0.15 -> neither
  assert comp["videolatent"]["t"]["difference"] == pytest.approx(0.35)
  assert comp["videolatent"]["t"]["margin"] == pytest.approx(0.15)
  assert comp["videolatent"]["t"]["beats"] and not comp["continuous_thought"]["t"]["beats"]
  assert not comp["continuous_thought"]["t"]["loses"]
  assert "**beats**" in report.markdown(table, {"steps": 1, "batch_size": 2, "seeds": [0, 1, 2], "split": "test",
                                                 "chance": ""})


def _cli(workdir, *extra):
  cmd = [sys.executable, "-m", "vlatent_jax.experiment", f"--workdir={workdir}", "--counts=36,18,12",
         "--corpus-clips=48", "--perception-count=12", "--stage1-steps=4", "--steps=4", "--eval-every=2",
         "--seeds=0", "--eval-batch-size=12", *extra]
  proc = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return proc.stdout


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("experiment")
  out = _cli(workdir, "--modes=sft,cot,videolatent_curriculum,videolatent_lavit")
  return workdir, out


def test_experiment_writes_results_and_models(small_run, tmp_path):
  workdir, out = small_run
  with open(workdir / "results.json") as f:
    results = json.load(f)
  rows = {"sft", "cot", "videolatent_curriculum", "videolatent_lavit"}
  assert set(results["table"]) == rows and {r["mode"] for r in results["runs"]} == rows
  for run in results["runs"]:
    assert run["n"] == 12 and run["best_step"] in (2, 4)
  assert results["meta"]["stage1"]["n"] == 12 and set(results["meta"]["stage1"]["per_kind"])
  text = (workdir / "results.md").read_text()
  assert "| sft |" in text and "| cot |" in text and "Stage 1" in text
  for png in ("accuracy.png", "curves.png", "latents.png"):
    assert (workdir / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  assert (workdir / "pretrained" / "model").is_dir()
  # An exported stage-2 model answers a benchmark drawn with another seed through the eval CLI.
  data = tmp_path / "other"
  subprocess.run([sys.executable, "-m", "vlatent_jax.data.synthetic", "--out", str(data), "--seed", "7",
                  "--train", "0", "--val", "0", "--test", "6"], check=True, cwd=ROOT, env=ENV, capture_output=True)
  # The LaViT row learned from the stage-1 model's teacher targets, written beside both splits' shards.
  for split in ("train", "val"):
    [folder] = [d for d in (workdir / "data").rglob("teacher") if d.parent.name == f"{split}_shards"]
    spec = json.loads((folder / "spec.json").read_text())
    assert spec["teacher"] == str(workdir / "pretrained" / "model") and spec["note"]["stage1"]
  for mode in ("cot", "videolatent_curriculum", "videolatent_lavit"):
    proc = subprocess.run([sys.executable, "-m", "vlatent_jax.eval", "--ckpt", str(workdir / "runs" / f"{mode}_seed0" / "model"),
                           "--bench", "embedded", "--data", str(data / "test.jsonl"), "--out", str(tmp_path / mode),
                           "--no-progress"], cwd=ROOT, env=ENV, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    [summary] = [f for f in os.listdir(tmp_path / mode) if f.endswith(".json")]
    with open(tmp_path / mode / summary) as f:
      assert json.load(f)["n"] == 6


def test_experiment_reuses_only_identical_runs(small_run):
  workdir, _ = small_run
  before = {m: os.path.getmtime(workdir / "runs" / f"{m}_seed0" / "result.json") for m in ("sft", "cot")}
  out = _cli(workdir, "--modes=sft,cot")
  assert "0 of 2 runs to train (2 reused)" in out
  assert {m: os.path.getmtime(workdir / "runs" / f"{m}_seed0" / "result.json") for m in ("sft", "cot")} == before
  out = _cli(workdir, "--modes=sft", "--steps=2")  # another budget: retrained, never the old result
  assert "1 of 1 runs to train" in out
  with open(workdir / "runs" / "sft_seed0" / "result.json") as f:
    assert json.load(f)["steps"] == 2


def test_readme_config_table_is_current():
  with open(os.path.join(ROOT, "README.md")) as f:
    assert describe() in f.read(), "regenerate the README's config table with `python -m vlatent_jax.config`"
