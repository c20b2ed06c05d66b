"""`python -m vlatent_jax.plot`: metrics.jsonl -> a valid PNG; malformed lines reported by number."""

import json
import os
import pathlib
import subprocess
import sys

import matplotlib.image
import pytest

from vlatent_jax import plot

ROOT = pathlib.Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def write_metrics(path, rows, extra_lines=()):
  with open(path, "w") as f:
    f.writelines(json.dumps(row) + "\n" for row in rows)
    f.writelines(line + "\n" for line in extra_lines)


def rows(mode_scale=1.0, steps=5):
  out = []
  for s in range(1, steps + 1):
    out.append({"step": s, "loss": 3.0 / s * mode_scale, "answer_loss": 2.5 / s, "align_loss": 0.4 / s,
                "diversity_loss": 0.1, "latent_cosine": 0.5, "learning_rate": 1e-3 * s / steps,
                "grad_norm": 1.0 + s, "steps_per_s": 2.0, "examples_per_s": 32.0})
  out.append({"step": steps, "val_loss": 2.0, "val_accuracy": 0.4})
  return out


def run_cli(*args):
  env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
  return subprocess.run([sys.executable, "-m", "vlatent_jax.plot", *map(str, args)], capture_output=True,
                        text=True, timeout=60, cwd=ROOT, env=env, check=False)


def check_png(path):
  data = path.read_bytes()
  assert len(data) > 0 and data[:8] == PNG_MAGIC
  image = matplotlib.image.imread(str(path))
  assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100 and image.shape[2] in (3, 4)


def test_cli_overlays_runs_and_reports_malformed_lines(tmp_path):
  sft, vl = tmp_path / "sft", tmp_path / "videolatent"
  sft.mkdir()
  vl.mkdir()
  write_metrics(sft / "metrics.jsonl", rows(1.2))
  # Line 7 is truncated JSON, line 8 blank: both skipped with a warning naming the file and lines.
  write_metrics(vl / "metrics.jsonl", rows(), extra_lines=['{"step": 6, "loss": ', ""])
  result = run_cli(vl, sft)
  assert result.returncode == 0, result.stderr
  check_png(vl / "curves.png")
  assert "metrics.jsonl" in result.stderr and "skipped 2 malformed" in result.stderr
  assert "line 7" in result.stderr and "line 8" in result.stderr

  out = tmp_path / "plots" / "compare.png"
  result = run_cli(sft, "--out", out)
  assert result.returncode == 0, result.stderr
  check_png(out)


def test_cli_errors_name_the_file(tmp_path):
  missing = run_cli(tmp_path / "nowhere")
  assert missing.returncode == 1 and "nowhere" in missing.stderr and "Traceback" not in missing.stderr
  write_metrics(tmp_path / "metrics.jsonl", [], extra_lines=["not json"])
  bad = run_cli(tmp_path)
  assert bad.returncode == 1 and "line 1" in bad.stderr and "no metrics rows" in bad.stderr
  assert not (tmp_path / "curves.png").exists()


def test_read_metrics_and_nothing_plottable(tmp_path):
  path = tmp_path / "metrics.jsonl"
  write_metrics(path, [{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.0}, {"step": 1, "loss": 1.5}])
  assert [r["step"] for r in plot.read_metrics(str(tmp_path))] == [1, 2, 1]
  # A resumed run re-logs step 1: the later row wins.
  assert plot.series(plot.read_metrics(str(path)))["loss"] == ([1, 2], [1.5, 1.0])
  with pytest.raises(ValueError, match="nothing to plot"):
    plot.plot_runs({"run": [{"step": 1}, {"step": 2, "note": "text"}]}, str(tmp_path / "x.png"))
